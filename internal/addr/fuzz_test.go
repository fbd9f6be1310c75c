package addr

import (
	"strings"
	"testing"
)

var fuzzSeeds = []string{
	"<alice@localhost>", "alice@localhost", "<<alice@localhost>>", "<a b@localhost>",
	"<@route,@other:alice@localhost>", "<alice@[127.0.0.1]>", `<"quoted local"@localhost>`,
	"<>", "<alice@localhost", "alice@localhost>", "<remote.example!alice@localhost>",
	"<alice%remote.example@localhost>", "Alice <a@b> (c)", `"a\"b"@c`, "(((", "a@b@c",
	"friends: a@x, b@y;", "|/bin/true", "user@[IPv6:::1]", "<a(b)c@d> SIZE=1",
}

// FuzzParsePath: SMTP arguments never panic; an accepted address re-parses
// to itself from its canonical String form.
func FuzzParsePath(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, arg string, rcpt bool) {
		kind := Sender
		if rcpt {
			kind = Recipient
		}
		a, params, err := ParsePath(arg, kind)
		if len(params) > len(arg) {
			t.Fatalf("params longer than argument")
		}
		if err == nil && strings.ContainsAny(a.String()+a.Raw, "\r\n\x00") {
			t.Fatalf("%q: accepted with a line break or NUL: %q", arg, a.String())
		}
		if err != nil || a.Null || a.Flags&(Program|File) != 0 {
			return
		}
		b, _, err := ParsePath(a.Path(), kind)
		if err != nil {
			return // e.g. a re-joined token now over the limit
		}
		if b.String() != a.String() {
			t.Fatalf("%q: String %q re-parses as %q", arg, a.String(), b.String())
		}
		_ = a.Resolve(NewNames("localhost", "[127.0.0.1]")).String()
	})
}

// FuzzParse: command-line/alias addresses never panic.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(s)
		if err == nil && !a.Null && a.String() == "" {
			t.Fatalf("%q: empty String for a non-null address", s)
		}
		_ = a.Resolve(nil)
	})
}

// FuzzListParser: header lists never panic and never return the null address.
func FuzzListParser(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, old bool) {
		p := ListParser{OldStyle: old}
		as, _ := p.Parse(s)
		for _, a := range as {
			if a.Null {
				t.Fatalf("%q: null address in list", s)
			}
		}
	})
}

func BenchmarkParsePath(b *testing.B) {
	n := NewNames("localhost", "refhost.example.org", "[127.0.0.1]")
	for b.Loop() {
		a, _, err := ParsePath("<Someone.Else@Remote.Example> SIZE=1000 BODY=8BITMIME", Recipient)
		if err != nil {
			b.Fatal(err)
		}
		_ = a.Resolve(n).String()
	}
}
