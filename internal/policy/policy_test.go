package policy

import (
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/route"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func mustAccess(t *testing.T, text string) *Access {
	t.Helper()
	a, err := ParseAccess(strings.NewReader(text), "access")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAccessFile(t *testing.T) {
	a, err := LoadAccess(filepath.Join("testdata", "access"))
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		got  Decision
		want Action
		err  string
	}{
		{"exact address", a.Connect(ip("127.0.0.66"), ""), OK, ""},
		{"network prefix", a.Connect(ip("127.1.2.3"), ""), Relay, ""},
		{"more specific wins", a.Connect(ip("10.1.2.3"), ""), Error, "550 5.0.0 go away"},
		{"enhanced code given", a.Connect(ip("10.2.0.1"), ""), Error, "421 4.7.1 slow down"},
		{"host name and parents", a.Connect(ip("192.0.2.9"), "mx.spammer.example"), Reject, ""},
		{"no entry", a.Connect(ip("192.0.2.9"), "good.example"), None, ""},
		{"IPv6", a.Connect(ip("2001:db8::1"), ""), Relay, ""},
		{"From user@", a.From("spammer@anywhere.example"), Reject, ""},
		{"From full address", a.From("friend@example.org"), OK, ""},
		{"From domain", a.From("x@bad.example"), Discard, ""},
		{"untagged applies to From", a.From("x@badguy.example"), Discard, ""},
		{"To domain", a.To("u@example.com"), Relay, ""},
		{"To subdomain", a.To("u@sub.example.com"), Relay, ""},
		{"To ERROR quoted", a.To("abuse@example.net"), Error, "550 5.7.1 not here"},
		{"SKIP stops the walk", a.To("u@skip.example.com"), None, ""},
		{"case-insensitive", a.To("U@EXAMPLE.COM"), Relay, ""},
		{"other value kept", a.From("x@friend.example"), Other, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.Action != tt.want {
				t.Errorf("action %v, want %v (%+v)", tt.got.Action, tt.want, tt.got)
			}
			if tt.err != "" && (tt.got.Err == nil || tt.got.Err.Error() != tt.err) {
				t.Errorf("error %v, want %q", tt.got.Err, tt.err)
			}
		})
	}
}

func TestAccessErrors(t *testing.T) {
	for _, text := range []string{"Connect:1.2.3.4\n", "From:x ERROR:\"abc\"\n", "To:x ERROR:250 fine\n"} {
		if _, err := ParseAccess(strings.NewReader(text), "access"); err == nil || !strings.HasPrefix(err.Error(), "access: line 1: ") {
			t.Errorf("%q: error %v", text, err)
		}
	}
	a, err := LoadAccess(filepath.Join(t.TempDir(), "missing"))
	if err != nil || a.Connect(netip.MustParseAddr("1.2.3.4"), "").Action != None {
		t.Errorf("missing file: %v", err)
	}
}

func refPolicy(t *testing.T) *Policy {
	return &Policy{
		RelayHosts:   []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
		Router:       route.New(route.Config{Names: addr.NewNames("localhost", "refhost.example.org", "[127.0.0.1]")}),
		RelayDomains: map[string]bool{"relayed.example": true},
		Access: mustAccess(t, "Connect:127 RELAY\nConnect:127.0.0.66 OK\nConnect:127.0.0.67 OK\n"+
			"To:torelay.example RELAY\nTo:blocked@localhost REJECT\nTo:err.example ERROR:\"451 4.3.2 later\"\nTo:trash@localhost DISCARD\n"),
	}
}

func TestCheckRecipient(t *testing.T) {
	p := refPolicy(t)
	ip := netip.MustParseAddr
	named := Client{Addr: ip("127.0.0.67"), Name: "client.example"}
	noptr := Client{Addr: ip("127.0.0.66"), NoPTR: true}
	forged := Client{Addr: ip("192.0.2.68"), Name: "forged.example", Forged: true}
	relay := Client{Addr: ip("127.0.0.1"), Name: "localhost"}
	tests := []struct {
		name string
		c    Client
		rcpt string
		want string // "" = accepted
		act  Action
	}{
		{"local user", named, "alice@localhost", "", None},
		{"bare local", named, "alice", "", None},
		{"our literal", named, "alice@[127.0.0.1]", "", None},
		{"remote from outsider", named, "u@remote.example", "550 5.7.1 <u@remote.example>... Relaying denied", None},
		{"no PTR", noptr, "u@remote.example", "550 5.7.1 <u@remote.example>... Relaying denied. IP name lookup failed [127.0.0.66]", None},
		{"forged", forged, "u@remote.example", "550 5.7.1 <u@remote.example>... Relaying denied. IP name possibly forged [192.0.2.68]", None},
		{"percent hack", named, "u%remote.example@localhost", "550 5.7.1 <u%remote.example@localhost>... Relaying denied", None},
		{"percent hack to local", named, "alice%localhost@localhost", "", None},
		{"bang path", named, "remote.example!u@localhost", "550 5.7.1 <remote.example!u@localhost>... Relaying denied", None},
		{"bare bang path", named, "remote.example!u", "550 5.7.1 <remote.example!u>... Relaying denied", None},
		{"source route", named, "@localhost:u@remote.example", "550 5.7.1 <@localhost:u@remote.example>... Relaying denied", None},
		{"source route to us", named, "@remote.example:alice@localhost", "", None},
		{"source route elsewhere", named, "@localhost:u@remote.example", "550 5.7.1 <@localhost:u@remote.example>... Relaying denied", None},
		{"route hop with @", named, "@x@remote.example:someuser", "", None}, // the mailbox is local someuser: the backend says if it exists
		// A quoted local part is one local user name (it is never split),
		// so nothing leaves: the backend refuses the unknown user.
		{"quoted local part", named, `"u@remote.example"@localhost`, "", None},
		{"quoted percent", named, `"u%remote.example"@localhost`, "", None},
		{"foreign literal", named, "u@[192.0.2.1]", "550 5.7.1 <u@[192.0.2.1]>... Relaying denied", None},
		{"nested tricks", named, "a%b%remote.example@localhost", "550 5.7.1 <a%b%remote.example@localhost>... Relaying denied", None},
		{"access Connect RELAY", relay, "u@remote.example", "", None},
		{"RelayHosts", Client{Addr: ip("10.9.1.1")}, "u@remote.example", "", None},
		{"IPv4-mapped RelayHosts", Client{Addr: ip("::ffff:10.9.1.1")}, "u@remote.example", "", None},
		{"authenticated", Client{Addr: ip("192.0.2.5"), Authenticated: true}, "u@remote.example", "", None},
		{"local -bs", Client{Local: true}, "u@remote.example", "", None},
		{"class R", named, "u@relayed.example", "", None},
		{"class R subdomain", named, "u@mx.relayed.example", "", None},
		{"To RELAY", named, "u@torelay.example", "", Relay},
		{"To REJECT", relay, "blocked@localhost", "550 5.7.1 <blocked@localhost>... Access denied", Reject},
		{"To ERROR", relay, "u@err.example", "451 4.3.2 later", Error},
		{"To DISCARD", named, "trash@localhost", "", Discard},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, perr := addr.Parse(tt.rcpt)
			if perr != nil {
				t.Fatal(perr)
			}
			d, err := p.CheckRecipient(tt.c, tt.rcpt, p.Router.Resolve(a))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if d.Action != tt.act {
				t.Errorf("action %v, want %v", d.Action, tt.act)
			}
		})
	}
}

func TestCheckSender(t *testing.T) {
	p := &Policy{Access: mustAccess(t, "From:spammer@ REJECT\nFrom:<> ERROR:\"550 5.7.1 no bounces\"\nFrom:junk.example DISCARD\n")}
	for _, tt := range []struct {
		from, want string
		act        Action
	}{
		{"spammer@x.example", "550 5.7.1 <spammer@x.example>... Access denied", Reject},
		{"", "550 5.7.1 no bounces", Error},
		{"a@junk.example", "", Discard},
		{"a@good.example", "", None},
	} {
		d, err := p.CheckSender(tt.from)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.want || d.Action != tt.act {
			t.Errorf("%q: got %q %v, want %q %v", tt.from, got, d.Action, tt.want, tt.act)
		}
	}
}

func TestSenderBelongs(t *testing.T) {
	p := refPolicy(t)
	for _, tt := range []struct {
		user, from string
		want       bool
	}{
		{"alice", "alice@refhost.example.org", true},
		{"alice", "Alice@LOCALHOST", true},
		{"alice", "alice", true},
		{"alice", "", true},
		{"alice", "bob@refhost.example.org", false},
		{"alice", "alice@gmail.example", false},
	} {
		if got := p.SenderBelongs(tt.user, tt.from); got != tt.want {
			t.Errorf("%s as %q: %v", tt.user, tt.from, got)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := &Limiter{MaxChildren: 2, RatePerSec: 2}
	t0 := time.Unix(1000, 0)
	r1, d1, e1 := l.Admit(t0)
	r2, d2, e2 := l.Admit(t0)
	_, _, e3 := l.Admit(t0)
	if e1 != nil || e2 != nil || d1 != 0 || d2 != 0 {
		t.Fatalf("first two refused: %v %v", e1, e2)
	}
	if e3 == nil || e3.Error() != "421 4.3.2 Too many open connections" {
		t.Fatalf("third: %v", e3)
	}
	r1()
	r1() // releasing twice is harmless
	if l.Active() != 1 {
		t.Fatalf("active %d", l.Active())
	}
	r3, d3, _ := l.Admit(t0) // 3rd connection this second: over the rate of 2
	if d3 != time.Second {
		t.Errorf("delay %v, want 1s", d3)
	}
	r2()
	r3()
	_, d4, _ := l.Admit(t0.Add(time.Second))
	if d4 != 0 {
		t.Errorf("new second: delay %v", d4)
	}
}

func TestAuthFile(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	path := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(path, []byte("# users\nalice:"+string(h)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Authenticate("alice", "secret") || a.Authenticate("alice", "wrong") || a.Authenticate("bob", "secret") {
		t.Error("wrong answers")
	}
	if _, err := ParseAuthFile(strings.NewReader("bob:plaintext\n"), "auth"); err == nil {
		t.Error("plain-text password accepted")
	}
}

func FuzzParseAccess(f *testing.F) {
	f.Add("Connect:127 RELAY\nTo:x ERROR:\"550 5.7.1 no\"\nFrom:a@ REJECT\n")
	f.Add("ClientRate:10.1.2.3 0\nClientRate: 1\nClientConn:10 -1\n")
	f.Fuzz(func(t *testing.T, text string) {
		a, err := ParseAccess(strings.NewReader(text), "access")
		if err != nil {
			return
		}
		ip := netip.MustParseAddr("10.1.2.3")
		_ = a.Connect(ip, "a.b.example")
		_ = a.From("user@a.b.example")
		_ = a.To("user@a.b.example")
		for _, tag := range []string{"ClientRate", "ClientConn"} {
			if n := a.ClientLimit(tag, ip); n < 0 {
				t.Fatalf("%s limit %d", tag, n)
			}
		}
		if e := a.CheckClient(ip, 1, 1); e != nil && e != ErrClientRate && e != ErrClientConn {
			t.Fatalf("CheckClient: %v", e)
		}
	})
}

// FuzzRecipient checks that the relay decision never panics and that an
// outsider is never allowed to relay: whatever the address, an accepted
// recipient is one the router delivers on this host (local, or a local
// user of a program/file form that the backend then refuses).
func FuzzRecipient(f *testing.F) {
	for _, s := range []string{"u%remote.example@localhost", "@a,@b:u@c", `"a@b"@localhost`, "a!b!c@localhost", "u@[1.2.3.4]", "@x@remote.example:u"} {
		f.Add(s)
	}
	p := &Policy{Router: route.New(route.Config{Names: addr.NewNames("localhost")})}
	outsider := Client{Addr: netip.MustParseAddr("192.0.2.1"), Name: "x.example"}
	f.Fuzz(func(t *testing.T, rcpt string) {
		a, err := addr.Parse(rcpt)
		if err != nil {
			return
		}
		tr := p.Router.Resolve(a)
		if _, err := p.CheckRecipient(outsider, rcpt, tr); err == nil && (!tr.Local || route.IsSMTP(tr.Mailer)) {
			t.Fatalf("%q: relaying to %s %q allowed", rcpt, tr.Mailer, tr.Host)
		}
	})
}
