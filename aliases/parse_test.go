package aliases

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseGolden parses every testdata/parse/*.aliases file and compares
// the stored entries and the diagnostics (as newaliases prints them) with
// the .golden file next to it.
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/parse/*.aliases")
	if err != nil || len(files) == 0 {
		t.Fatal("no parse test files", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".aliases")
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			p, err := Parse(f, refLocal)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			b.WriteString("entries:\n")
			var st Stats
			for _, e := range p.Entries {
				fmt.Fprintf(&b, "  %d %q -> %q\n", e.Line, e.Name, e.Value)
				st.Aliases++
				st.Total += len(e.Name) + len(e.Value)
				st.Longest = max(st.Longest, len(e.Value))
			}
			b.WriteString("diagnostics:\n")
			for _, d := range p.Diags {
				fmt.Fprintf(&b, "  %s\n", d.Format("/etc/mail/aliases"))
			}
			fmt.Fprintf(&b, "stats: %s\nerrors: %v\n", st, p.Errors())
			golden(t, "parse/"+name+".golden", b.String())
		})
	}
}

// TestSplitList checks how a stored value is cut into recipients.
func TestSplitList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"alice, bob", []string{"alice", "bob"}},
		{"alice,\tbob,\troot", []string{"alice", "bob", "root"}},
		{`"|/bin/cat > /dev/null", x`, []string{`"|/bin/cat > /dev/null"`, "x"}},
		{`"a,b"@x, c`, []string{`"a,b"@x`, "c"}},
		{"Name <a@b>, (c, d) e", []string{"Name <a@b>", "(c, d) e"}},
		{`a\,b, c`, []string{`a\,b`, "c"}},
		{" , ,, ", nil},
		{"", nil},
	} {
		got := splitList(tc.in)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
			t.Errorf("splitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestClassify checks the mailer chosen for each target form.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"alice", "local user=alice"},
		{"Alice@LocalHost", "local user=alice"}, // the local mailer ignores case (no F=u)
		{"alice@refhost.example.org.", "local user=alice"},
		{"alice@[127.0.0.1]", "local user=alice"},
		{`\alice`, "local user=alice quoted"},
		{"Alice Example <alice@localhost>", "local user=alice"},
		{"<bob@remote.example>", "esmtp host=remote.example user=bob@remote.example"},
		{"bob@Remote.Example.", "esmtp host=remote.example user=bob@remote.example"},
		{"alice%remote.example@localhost", "esmtp host=remote.example user=alice@remote.example"},
		{"<@remote.example:alice@localhost>", "local user=alice"},
		{"/var/tmp/f", "*file* user=/var/tmp/f path=/var/tmp/f"},
		{`"/var/tmp/with space"`, `*file* user="/var/tmp/with space" path=/var/tmp/with space`},
		{`"|/usr/bin/logger -t x"`, `prog user="|/usr/bin/logger -t x" path=/usr/bin/logger -t x`},
		{"|/bin/true", "prog user=|/bin/true path=/bin/true"},
		{":include:/etc/l", ":include: user=:include:/etc/l path=/etc/l"},
		{":INCLUDE: /etc/l", ":include: user=:INCLUDE: /etc/l path=/etc/l"},
		{"error:5.1.1:550 no such list", "error err=550 5.1.1 no such list"},
		{"error:450 later", "error err=450 4.0.0 later"},
		{"error:4.2.2:quota", "error err=450 4.2.2 quota"},
		{"error:", "error err=550 5.0.0 Unknown error"},
		{`"quoted key"`, `local user="quoted key"`},
	} {
		p, _ := parseAddress(tc.in)
		c := classify(p, refRouter)
		got := c.mailer
		if c.host != "" {
			got += " host=" + c.host
		}
		if c.mailer == mailerError {
			got += " err=" + c.err.Error()
		} else {
			got += " user=" + c.user
		}
		if c.path != "" {
			got += " path=" + c.path
		}
		if c.quoted {
			got += " quoted"
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestParseAddressErrors checks sendmail's complaints about bad syntax.
func TestParseAddressErrors(t *testing.T) {
	for _, tc := range []struct{ in, err, addr string }{
		{"<bad", "553 5.0.0 <bad... Unbalanced '<'", "bad"},
		{"bad>", "553 5.0.0 bad>... Unbalanced '>'", "bad"},
		{`"open`, `553 5.0.0 "open... Unbalanced '"'`, `"open"`},
		{"a (comment", "553 5.0.0 a (comment... Unbalanced '('", "a"},
		{"a) b", "553 5.0.0 a) b... Unbalanced ')'", "a b"},
		{"<<alice@localhost>>", "", "alice@localhost"},
		{"<>", "", ""},
	} {
		p, err := parseAddress(tc.in)
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tc.err || p.addr != tc.addr {
			t.Errorf("%q: %q %q, want %q %q", tc.in, got, p.addr, tc.err, tc.addr)
		}
	}
}

// TestParseForward checks the .forward / :include: line rules.
func TestParseForward(t *testing.T) {
	in := "# comment\n\nbob\n  alice, carol  \n\t# indented comment\ndave #@# trailing comment\r\n\\eve\n"
	var got []string
	for _, l := range ParseForward([]byte(in)) {
		got = append(got, fmt.Sprintf("%d:%s", l.Line, l.Text))
	}
	want := "3:bob|4:alice, carol|6:dave|7:\\eve"
	if strings.Join(got, "|") != want {
		t.Errorf("got %q want %q", strings.Join(got, "|"), want)
	}
}

// TestParseTooLong: an over-long line or entry is an error, skipped with
// its continuation lines, and the file goes on.
func TestParseTooLong(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	in := "a: " + long + "\n\tcont\nb: ok\nc: y,\n\t" + long + "\nd: fine\n"
	p, err := Parse(strings.NewReader(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range p.Diags {
		got = append(got, d.Format("f"))
	}
	want := "f: line 1: alias line too long|f: line 5: alias too long"
	if strings.Join(got, "|") != want {
		t.Errorf("diags %q, want %q", got, want)
	}
	if m := p.Map(); len(m) != 2 || m["b"] != "ok" || m["d"] != "fine" {
		t.Errorf("entries %v", m)
	}
}
