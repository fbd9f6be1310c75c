package aliases

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzParse: any aliases file parses without panicking, every entry has a
// lower-case non-empty name and a value, and line numbers never go back.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"a: b\n", "a: b,\n\tc\n", "a: \\\nb\n", " x\n", "x\n", "\"q: k\": v\n",
		"u@localhost: x\n", "u@else: x\n", "a:\n \n", "a: b\r\n", "#\n\t\n",
		string(mustReadF(f, "testdata/ref/aliases")), string(mustReadF(f, "testdata/ref/bad-aliases")),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(strings.NewReader(s), refLocal)
		if err != nil {
			t.Fatal(err)
		}
		last := 0
		for _, e := range p.Entries {
			if e.Name == "" || e.Name != strings.ToLower(e.Name) || strings.TrimSpace(e.Value) == "" {
				t.Fatalf("bad entry %+v", e)
			}
			if e.Line < last {
				t.Fatalf("line numbers go back: %+v", p.Entries)
			}
			last = e.Line
		}
		var out bytes.Buffer
		for _, d := range p.Diags {
			out.WriteString(d.Format("f"))
		}
	})
}

// FuzzParseForward: any .forward content yields trimmed, non-comment lines
// with increasing line numbers, and expanding it terminates.
func FuzzParseForward(f *testing.F) {
	for _, s := range []string{"bob\n", "# c\n\n\\carol, \"|/bin/x\"\n", "a #@# c\r\n", "<x,\n(y\n", "\"\n"} {
		f.Add(s)
	}
	users := UserTable{"bob": {Name: "bob", UID: 1}, "carol": {Name: "carol", UID: 2}}
	f.Fuzz(func(t *testing.T, s string) {
		last := 0
		for _, l := range ParseForward([]byte(s)) {
			if l.Text == "" || l.Text[0] == '#' || l.Text != strings.TrimSpace(l.Text) || l.Line <= last {
				t.Fatalf("bad line %+v", l)
			}
			last = l.Line
		}
		// The same text as an alias value: expansion ends, and loops
		// back to the alias are cut.
		x := New(Options{Aliases: StaticMap{"list": s, "loop": "list, " + s}, Users: users, IsLocal: refLocal})
		res := x.Expand("", "list", "loop")
		x.Verify(io.Discard, []string{s}, true)
		for _, r := range res.Recipients {
			if r.Mailer == "" {
				t.Fatalf("recipient without mailer: %+v", r)
			}
		}
	})
}

// FuzzAddress: the address parser and list splitter never panic and
// always classify.
func FuzzAddress(f *testing.F) {
	for _, s := range []string{"a@b", "<a", "\"|x\"", "Name <a@b> (c)", "\\a", ":include:/x", "error:5.1.1:550 x", "a,b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range splitList(s) {
			p, _ := parseAddress(e)
			if c := classify(p, refRouter); c.mailer == "" {
				t.Fatalf("no mailer for %q", e)
			}
		}
	})
}

func mustReadF(f *testing.F, path string) []byte {
	data, err := readFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return data
}
