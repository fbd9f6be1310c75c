package addr

import (
	"reflect"
	"testing"
)

// $=w as the reference host printed it (04-sendmail-bt-session.txt).
func refNames() *Names {
	return NewNames("refhost.example.org", "localhost", "[192.0.2.2]", "[127.0.0.1]", "[127.0.1.1]", "refhost")
}

func TestNames(t *testing.T) {
	n := refNames()
	for _, d := range []string{"localhost", "LOCALHOST", "refhost.example.org.", "[127.0.0.1]", "[IPv6:::ffff:127.0.0.1]", "[192.0.2.2]"} {
		if !n.Contains(d) {
			t.Errorf("Contains(%q) = false", d)
		}
	}
	for _, d := range []string{"", "remote.example", "[127.0.0.2]", "[bogus]", "example.org"} {
		if n.Contains(d) {
			t.Errorf("Contains(%q) = true", d)
		}
	}
	var empty *Names
	if empty.Contains("localhost") {
		t.Error("nil Names contains localhost")
	}
	if ip, ok := LiteralIP("[IPv6:2001:db8::1]"); !ok || ip.String() != "2001:db8::1" {
		t.Errorf("LiteralIP = %v %v", ip, ok)
	}
}

// The RCPT forms of 01-smtp-rcpt-local-and-relay.txt: sendmail treated the
// three relay tricks as one recipient, alice@remote.example, and
// alice@[127.0.0.1] as alice@localhost (it echoed the first spelling).
func TestResolve(t *testing.T) {
	n := refNames()
	tests := []struct {
		in   string
		want Dest
	}{
		{"<alice@localhost>", Dest{Local: true, User: "alice"}},
		{"<alice@[127.0.0.1]>", Dest{Local: true, User: "alice"}},
		{"<Postmaster@[127.0.0.1]>", Dest{Local: true, User: "postmaster"}},
		{"<postmaster>", Dest{Local: true, User: "postmaster"}},
		{"<Alice>", Dest{Local: true, User: "alice"}},
		{"<someone@Remote.Example.>", Dest{User: "someone", Domain: "remote.example"}},
		{"<Someone@remote.example>", Dest{User: "Someone", Domain: "remote.example"}},
		{"<alice%remote.example@localhost>", Dest{User: "alice", Domain: "remote.example", Tricks: PercentHack}},
		{"<remote.example!alice@localhost>", Dest{User: "alice", Domain: "remote.example", Tricks: BangPath}},
		{"<@localhost:alice@remote.example>", Dest{User: "alice", Domain: "remote.example", Tricks: SourceRoute}},
		{"<@localhost,@refhost:alice@localhost>", Dest{Local: true, User: "alice", Tricks: SourceRoute}},
		// Routes are dropped whatever they name: what counts is the mailbox.
		{"<@relay.example,@b.example:alice@localhost>", Dest{Local: true, User: "alice", Tricks: SourceRoute}},
		{"<@remote.example:nosuchuser@localhost>", Dest{Local: true, User: "nosuchuser", Tricks: SourceRoute}},
		{"<@[192.0.2.99]:user@localhost>", Dest{Local: true, User: "user", Tricks: SourceRoute}},
		{"<@x@remote.example:someuser>", Dest{Local: true, User: "someuser", Tricks: SourceRoute}},
		{"<@localhost:alice%remote.example@localhost>", Dest{User: "alice", Domain: "remote.example", Tricks: SourceRoute | PercentHack}},
		{"<a%b%c@localhost>", Dest{User: "a%b", Domain: "c", Tricks: PercentHack}},
		{"<a%localhost@localhost>", Dest{Local: true, User: "a", Tricks: PercentHack}},
		{"<x!y!z@localhost>", Dest{User: "y!z", Domain: "x", Tricks: BangPath}},
		{"<remote.example!alice>", Dest{User: "alice", Domain: "remote.example", Tricks: BangPath}},
		{`<"alice@remote.example"@localhost>`, Dest{Local: true, User: "alice@remote.example"}},
		{`<"a%b"@localhost>`, Dest{Local: true, User: "a%b"}},
		{"<alice%remote.example@elsewhere.example>", Dest{User: "alice%remote.example", Domain: "elsewhere.example"}},
	}
	for _, tt := range tests {
		a, _, err := ParsePath(tt.in, Recipient)
		if err != nil {
			t.Errorf("ParsePath(%q): %v", tt.in, err)
			continue
		}
		got := a.Resolve(n)
		got.Via = "" // checked below
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Resolve(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	for in, via := range map[string]string{"<alice@LocalHost.>": "localhost", "<alice>": "", "<a%localhost@refhost>": "localhost", "<alice@[127.0.0.1]>": "[127.0.0.1]"} {
		a, _, _ := ParsePath(in, Recipient)
		if d := a.Resolve(n); d.Via != via {
			t.Errorf("Resolve(%q).Via = %q, want %q", in, d.Via, via)
		}
	}
	// The echo-the-first-spelling rule needs equal keys.
	key := func(s string) string {
		a, _, _ := ParsePath(s, Recipient)
		return a.Resolve(n).String()
	}
	if k1, k2, k3 := key("<alice%remote.example@localhost>"), key("<remote.example!alice@localhost>"), key("<@localhost:alice@remote.example>"); k1 != k2 || k2 != k3 || k1 != "alice@remote.example" {
		t.Errorf("keys %q %q %q", k1, k2, k3)
	}
	if key("<alice@[127.0.0.1]>") != key("alice@localhost") {
		t.Error("literal and name differ")
	}
}

func TestListParser(t *testing.T) {
	type a struct{ addr, name, group string }
	tests := []struct {
		value    string
		oldStyle bool
		want     []a
		err      string
	}{
		{value: "someone@remote.example, other@multi.example", want: []a{{"someone@remote.example", "", ""}, {"other@multi.example", "", ""}}},
		{value: `Alice Example <alice@x>, "Doe, John" <john@y>, bob`, want: []a{{"alice@x", "Alice Example", ""}, {"john@y", "Doe, John", ""}, {"bob", "", ""}}},
		{value: "carol@z (Carol C), (lead) dave", want: []a{{"carol@z", "Carol C", ""}, {"dave", "lead", ""}}},
		{value: "friends: a@x, b@y;, c@z", want: []a{{"a@x", "", "friends"}, {"b@y", "", "friends"}, {"c@z", "", ""}}},
		{value: "undisclosed-recipients:;", want: nil},
		{value: "team: <@relay:u@d>;", want: []a{{"@relay:u@d", "", "team"}}},
		{value: "alice bob", oldStyle: true, want: []a{{"alice", "", ""}, {"bob", "", ""}}},
		{value: "alice bob", want: []a{{"alice.bob", "", ""}}},
		{value: "alice, <bad, bob", err: "553 5.0.0 <bad, bob... Unbalanced '<'", want: []a{{"alice", "", ""}}},
		{value: "alice>, bob", err: "553 5.0.0 alice>... Unbalanced '>'", want: []a{{"bob", "", ""}}},
		{value: " , ,", want: nil},
		{value: "\n\tfolded@x,\n\tnext@y", want: []a{{"folded@x", "", ""}, {"next@y", "", ""}}},
	}
	for _, tt := range tests {
		p := ListParser{OldStyle: tt.oldStyle}
		got, err := p.Parse(tt.value)
		if e := errText(err); e != tt.err {
			t.Errorf("Parse(%q) error %q, want %q", tt.value, e, tt.err)
		}
		var g []a
		for _, x := range got {
			g = append(g, a{x.String(), x.Name, x.Group})
		}
		if !reflect.DeepEqual(g, tt.want) {
			t.Errorf("Parse(%q) = %q, want %q", tt.value, g, tt.want)
		}
	}
	// A new-style list ends old style for the message.
	p := ListParser{OldStyle: true}
	p.Parse("a, b")
	if got, _ := p.Parse("c d"); len(got) != 1 {
		t.Errorf("old style not cleared: %v", got)
	}
}
