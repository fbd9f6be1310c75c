package route

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/addr"
)

func refNames() *addr.Names {
	return addr.NewNames("refhost.example.org", "localhost", "[192.0.2.2]", "[127.0.0.1]", "[127.0.1.1]", "refhost")
}

const table = `# test mailertable
example.com       esmtp:[mail.example.com]
example.net       esmtp:[10.0.0.5]:2525
.example.org      smtp:mx.example.org
a.example.org     relay:[a-gw.example]
shop.example      local:Shopmaster
intra.example     local:
bad.example       error:5.7.1:550 we do not take mail for bad.example
later.example     error:4.3.2:450 try later
broken            nothing
odd.example       carrier-pigeon:coop
`

func testRouter(t *testing.T, smart string, withTable bool) *Router {
	t.Helper()
	cfg := Config{Names: refNames(), SmartHost: smart}
	if withTable {
		mt, err := ParseMailerTable(strings.NewReader(table))
		if err != nil {
			t.Fatal(err)
		}
		cfg.MailerTable = mt
	}
	return New(cfg)
}

func TestResolve(t *testing.T) {
	r := testRouter(t, "", true)
	tests := []struct {
		in                 string
		mailer, host, user string
		local              bool
		domain             string
		noAlias            bool
		errCode            int
	}{
		{"alice", Local, "", "alice", true, "", false, 0},
		{"Alice@LOCALHOST.", Local, "", "alice", true, "", false, 0},
		{"<alice@[127.0.0.1]>", Local, "", "alice", true, "", false, 0},
		{"Alice Example <alice@refhost.example.org>", Local, "", "alice", true, "", false, 0},
		{`\alice`, Local, "", "alice", true, "", true, 0},
		{"someone@remote.example", ESMTP, "remote.example", "someone@remote.example", false, "remote.example", false, 0},
		{"Someone@Remote.Example.", ESMTP, "remote.example", "Someone@remote.example", false, "remote.example", false, 0},
		{"alice%remote.example@localhost", ESMTP, "remote.example", "alice@remote.example", false, "remote.example", false, 0},
		{"remote.example!alice@localhost", ESMTP, "remote.example", "alice@remote.example", false, "remote.example", false, 0},
		{"remote.example!alice", ESMTP, "remote.example", "alice@remote.example", false, "remote.example", false, 0},
		{"a!b!user", ESMTP, "a", "b!user@a", false, "a", false, 0},
		{"<@localhost:alice@remote.example>", ESMTP, "remote.example", "alice@remote.example", false, "remote.example", false, 0},
		// Routes never carry mail anywhere: the mailbox counts.
		{"<@x@remote.example:someuser>", Local, "", "someuser", true, "", false, 0},
		{"<@remote.example:nosuchuser@localhost>", Local, "", "nosuchuser", true, "", false, 0},
		{"<@[192.0.2.99]:user@localhost>", Local, "", "user", true, "", false, 0},
		{`"alice@remote.example"@localhost`, Local, "", "alice@remote.example", true, "", false, 0},
		{"|/usr/bin/logger x", Prog, "", "|/usr/bin/logger x", true, "", false, 0},
		{"/var/tmp/box", File, "", "/var/tmp/box", true, "", false, 0},
		{"error:4.2.2:450 mailbox full", Error, "", "error:4.2.2:450 mailbox full", true, "", false, 450},
		// mailertable
		{"u@example.com", ESMTP, "[mail.example.com]", "u@example.com", false, "example.com", false, 0},
		{"u@EXAMPLE.NET", ESMTP, "[10.0.0.5]:2525", "u@example.net", false, "example.net", false, 0},
		{"u@x.example.org", SMTP, "mx.example.org", "u@x.example.org", false, "x.example.org", false, 0},
		{"u@deep.x.example.org", SMTP, "mx.example.org", "u@deep.x.example.org", false, "deep.x.example.org", false, 0},
		{"u@example.org", ESMTP, "example.org", "u@example.org", false, "example.org", false, 0}, // ".example.org" is for subdomains only
		{"u@a.example.org", Relay, "[a-gw.example]", "u@a.example.org", false, "a.example.org", false, 0},
		{"anyone@shop.example", Local, "", "shopmaster", false, "shop.example", false, 0},
		{"Bob@intra.example", Local, "", "bob", false, "intra.example", false, 0},
		{"u@bad.example", Error, "", "u@bad.example", false, "bad.example", false, 550},
		{"u@later.example", Error, "", "u@later.example", false, "later.example", false, 450},
		{"u@broken", ESMTP, "broken", "u@broken", false, "broken", false, 0},
		{"u@odd.example", ESMTP, "odd.example", "u@odd.example", false, "odd.example", false, 0},
		// Host names that no mailer can take.
		{`"0@a"!user`, Error, "", `"0@a"!user`, true, `"0@a"`, false, 553},
		{"u%a..b@localhost", Error, "", "u%a..b@localhost", true, "a..b", false, 553},
		{"u@[192.0.2.1]", ESMTP, "[192.0.2.1]", "u@[192.0.2.1]", false, "[192.0.2.1]", false, 0},
	}
	for _, tt := range tests {
		got, err := r.ResolveString(tt.in)
		if err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if got.Mailer != tt.mailer || got.Host != tt.host || got.User != tt.user || got.Local != tt.local || got.Domain != tt.domain || got.NoAlias != tt.noAlias {
			t.Errorf("%q = {%s %q %q local=%v domain=%q noalias=%v}, want {%s %q %q local=%v domain=%q noalias=%v}",
				tt.in, got.Mailer, got.Host, got.User, got.Local, got.Domain, got.NoAlias, tt.mailer, tt.host, tt.user, tt.local, tt.domain, tt.noAlias)
		}
		if (got.Err == nil) != (tt.errCode == 0) || (got.Err != nil && got.Err.Code != tt.errCode) {
			t.Errorf("%q: error %v, want code %d", tt.in, got.Err, tt.errCode)
		}
		if len(got.Steps) == 0 {
			t.Errorf("%q: no steps to explain the route", tt.in)
		}
	}
	if w := strings.Join(mustTable(t).Warnings(), "\n"); !strings.Contains(w, "line 10: broken: value is not mailer:host") || !strings.Contains(w, "unknown mailer carrier-pigeon") {
		t.Errorf("warnings:\n%s", w)
	}
}

func mustTable(t *testing.T) *Table {
	mt, err := ParseMailerTable(strings.NewReader(table))
	if err != nil {
		t.Fatal(err)
	}
	return mt
}

func TestSmartHost(t *testing.T) {
	for _, tt := range []struct{ smart, mailer, host string }{
		{"[mail-out.example]", Relay, "[mail-out.example]"},
		{"mail-out.example", Relay, "mail-out.example"},
		{"[10.1.1.1]:2525", Relay, "[10.1.1.1]:2525"},
		{"esmtp:[mail-out.example]", ESMTP, "[mail-out.example]"},
		{"local:postmaster", Relay, "local:postmaster"},
	} {
		r := testRouter(t, tt.smart, true)
		got, _ := r.ResolveString("u@remote.example")
		if got.Mailer != tt.mailer || got.Host != tt.host || got.User != "u@remote.example" {
			t.Errorf("smart %q: %s %q %q", tt.smart, got.Mailer, got.Host, got.User)
		}
		// The mailertable comes first, local mail stays local.
		if got, _ := r.ResolveString("u@example.com"); got.Host != "[mail.example.com]" {
			t.Errorf("smart %q: mailertable entry lost: %+v", tt.smart, got)
		}
		if got, _ := r.ResolveString("alice@localhost"); got.Mailer != Local {
			t.Errorf("smart %q: local mail routed %+v", tt.smart, got)
		}
	}
	r := testRouter(t, "", false)
	if got, _ := r.ResolveString("u@remote.example"); got.Mailer != ESMTP || got.Host != "remote.example" {
		t.Errorf("no smart host: %+v", got)
	}
}

func TestCatchAllEntry(t *testing.T) {
	mt, _ := ParseMailerTable(strings.NewReader(".  esmtp:[fallback.example]\nexample.com esmtp:[mx.example.com]\n"))
	r := New(Config{Names: refNames(), MailerTable: mt})
	if got, _ := r.ResolveString("u@any.where"); got.Host != "[fallback.example]" {
		t.Errorf("catch-all: %+v", got)
	}
	if got, _ := r.ResolveString("u@example.com"); got.Host != "[mx.example.com]" {
		t.Errorf("exact before catch-all: %+v", got)
	}
}

func TestKey(t *testing.T) {
	r := testRouter(t, "", false)
	key := func(s string) string {
		tr, err := r.ResolveString(s)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Key()
	}
	same := [][]string{
		{"alice", "Alice@localhost", "<alice@[127.0.0.1]>", "ALICE@refhost.example.org."},
		{"alice%remote.example@localhost", "remote.example!alice@localhost", "<@localhost:alice@remote.example>", "alice@REMOTE.example"},
	}
	for _, group := range same {
		for _, s := range group[1:] {
			if key(s) != key(group[0]) {
				t.Errorf("%q and %q are different destinations", group[0], s)
			}
		}
	}
	if key("Alice@remote.example") == key("alice@remote.example") {
		t.Error("remote local parts compared without case")
	}
	if key("alice") == key("alice@remote.example") {
		t.Error("local and remote alice are one")
	}
}

func TestErrorTarget(t *testing.T) {
	tests := []struct {
		spec string
		code int
		enh  string
		text string
	}{
		{"5.1.1:550 no such list", 550, "5.1.1", "no such list"},
		{"550 go away", 550, "5.0.0", "go away"},
		{"450 later", 450, "4.0.0", "later"},
		{"4.2.2:mailbox full", 450, "4.2.2", "mailbox full"},
		{"just text", 550, "5.0.0", "just text"},
		{"", 550, "5.0.0", "Unknown error"},
		{"5.7.1:550 with: a colon", 550, "5.7.1", "with: a colon"},
		{"nouser 550 No such user here", 550, "5.1.1", "No such user here"},
		{"nouser User unknown", 550, "5.1.1", "User unknown"},
		{"tempfail try later", 451, "4.0.0", "try later"},
		{"nohost 5.1.2:550 no such host", 550, "5.1.2", "no such host"},
	}
	for _, tt := range tests {
		e := ParseErrorTarget(tt.spec)
		if e.Code != tt.code || e.Enhanced != tt.enh || e.Text != tt.text {
			t.Errorf("ParseErrorTarget(%q) = %d %s %q", tt.spec, e.Code, e.Enhanced, e.Text)
		}
		// Through the queue and back: a temporary failure stays one.
		back := ParseErrorTarget(strings.TrimPrefix(FormatErrorTarget(e), "error:"))
		if back.Code != e.Code || back.Enhanced != e.Enhanced || back.Text != e.Text {
			t.Errorf("round trip of %q: %v, want %v", tt.spec, back, e)
		}
	}
}

func TestMailerTableFileReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailertable")
	clock := time.Unix(1e9, 0)
	now := func() time.Time { return clock }
	mt, err := LoadMailerTable(path, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := mt.Lookup("example.com"); ok {
		t.Fatal("entry in a missing file")
	}
	if err := os.WriteFile(path, []byte("example.com esmtp:[a]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	if _, v, ok := mt.Lookup("example.com"); !ok || v != "esmtp:[a]" {
		t.Fatalf("after the file appeared: %q %v", v, ok)
	}
	os.WriteFile(path, []byte("example.com esmtp:[bb]\n"), 0o644)
	if _, v, _ := mt.Lookup("example.com"); v != "esmtp:[a]" {
		t.Errorf("re-read within a second: %q", v)
	}
	clock = clock.Add(2 * time.Second)
	if _, v, _ := mt.Lookup("example.com"); v != "esmtp:[bb]" {
		t.Errorf("not re-read after the change: %q", v)
	}
}

// FuzzResolve: any text resolves without a panic to a triple with a
// mailer; a remote triple carries a valid host name.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"alice", "u@remote.example", `"a@b"!c`, "u%a..b@localhost", "<()0%[>", "@a,@b:u@c", "u@shop.example", "error:450 x"} {
		f.Add(s)
	}
	r := New(Config{Names: refNames(), MailerTable: mustTableF(f)})
	f.Fuzz(func(t *testing.T, s string) {
		tr, err := r.ResolveString(s)
		if err != nil {
			return
		}
		if tr.Mailer == "" {
			t.Fatalf("%q: no mailer", s)
		}
		if !tr.Local && tr.Mailer != Error && tr.Mailer != Local && !validHost(tr.Domain) {
			t.Fatalf("%q: remote triple with host %q", s, tr.Domain)
		}
	})
}

func mustTableF(f *testing.F) *Table {
	mt, err := ParseMailerTable(strings.NewReader(table))
	if err != nil {
		f.Fatal(err)
	}
	return mt
}

func TestVirtUserTable(t *testing.T) {
	vt, err := ParseVirtUserTable(strings.NewReader(`info@virtual.example      alice
sales@virtual.example     bob@remote.example
bob+*@virtual.example     bob-%2@remote.example
@virtual.example          catch-%1
spam@virtual.example      error:5.7.1:550 go away
@other.example            %1@virtual.example
postmaster@refhost.example.org  root
loop@loop.example         loop@loop.example
`))
	if err != nil {
		t.Fatal(err)
	}
	r := New(Config{Names: refNames(), VirtUserTable: vt,
		VirtHosts: LocalFunc(func(d string) bool { return d == "virtual.example" || d == "other.example" || d == "loop.example" })})
	for _, tt := range []struct {
		in, mailer, host, user string
		code                   int
	}{
		{"info@virtual.example", Local, "", "alice", 0},
		{"Info@Virtual.Example", Local, "", "alice", 0},
		{"sales@virtual.example", ESMTP, "remote.example", "bob@remote.example", 0},
		{"bob+list@virtual.example", ESMTP, "remote.example", "bob-list@remote.example", 0},
		{"nobody@virtual.example", Local, "", "catch-nobody", 0},
		{"spam@virtual.example", Error, "", "", 550},
		{"x@other.example", Local, "", "catch-x", 0},
		{"postmaster@refhost.example.org", Local, "", "root", 0},
		{"alice@refhost.example.org", Local, "", "alice", 0}, // $=w without an entry: as ever
		{"loop@loop.example", Error, "", "", 554},
	} {
		got, err := r.ResolveString(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got.Mailer != tt.mailer || got.Host != tt.host || (tt.user != "" && got.User != tt.user) || !got.Local {
			t.Errorf("%s = %s %q %q local=%v, want %s %q %q local", tt.in, got.Mailer, got.Host, got.User, got.Local, tt.mailer, tt.host, tt.user)
		}
		if (got.Err == nil) != (tt.code == 0) || (got.Err != nil && got.Err.Code != tt.code) {
			t.Errorf("%s: error %v, want %d", tt.in, got.Err, tt.code)
		}
	}
	// A virtual domain without a matching entry nor a catch-all is an
	// unknown user, refused at RCPT.
	r2 := New(Config{Names: refNames(), VirtUserTable: vt, VirtHosts: LocalFunc(func(d string) bool { return d == "bare.example" })})
	if got, _ := r2.ResolveString("x@bare.example"); got.Mailer != Error || got.Err.Code != 550 || got.Err.Enhanced != "5.1.1" {
		t.Errorf("unmatched virtual address: %+v", got)
	}
}
