package addr

import (
	"strings"
	"testing"
)

const refDomain = "refhost.example.org"

// self is this host's own names in the reference lab.
func self(d string) bool {
	switch strings.TrimSuffix(strings.ToLower(d), ".") {
	case "localhost", "refhost", "[127.0.0.1]", refDomain:
		return true
	}
	return false
}

// 03-dsn-msp-generated-full-message.txt: the MSP's DSN had
// "From: Mail Delivery Subsystem <MAILER-DAEMON>" and "To: <root>" and
// reached the MTA with both qualified; 02-mbox-alice.txt: "To:
// staff@localhost" was delivered as "staff@refhost.example.org".
func TestRewriteHeader(t *testing.T) {
	tests := []struct {
		in      string
		qualify bool
		want    string
	}{
		{"Mail Delivery Subsystem <MAILER-DAEMON>", true, "Mail Delivery Subsystem <MAILER-DAEMON@refhost.example.org>"},
		{"<root>", true, "<root@refhost.example.org>"},
		{"root <root>", true, "root <root@refhost.example.org>"},
		{"root <root>", false, "root <root>"},
		{"Alice Example <alice>", true, "Alice Example <alice@refhost.example.org>"},
		{"alice (Alice Example)", true, "alice@refhost.example.org (Alice Example)"},
		{"someone@remote.example, other@multi.example", true, "someone@remote.example, other@multi.example"},
		{"alice, bob@x,\n\tcarol", true, "alice@refhost.example.org, bob@x,\n\tcarol@refhost.example.org"},
		{"friends: alice, <bob>;, dave", true, "friends: alice@refhost.example.org, <bob@refhost.example.org>;, dave@refhost.example.org"},
		{"undisclosed-recipients:;", true, "undisclosed-recipients:;"},
		{"<>", true, "<>"},
		{"<<alice>>", true, "<<alice@refhost.example.org>>"},
		{`"Doe, John" <john>`, true, `"Doe, John" <john@refhost.example.org>`},
		{`"quoted user"`, true, `"quoted user"@refhost.example.org`},
		{"alice bob", true, "alice bob"},
		{"<bad, alice", true, "<bad, alice"},
		{"|/bin/prog", true, "|/bin/prog"},
		{"<@route:u@d>", true, "<@route:u@d>"},
		// this host's names become $j, with or without Qualify
		{"staff@localhost, incl-list@localhost, carol@localhost", false,
			"staff@refhost.example.org, incl-list@refhost.example.org, carol@refhost.example.org"},
		{"Bob <bob@LocalHost.> (the boss), x@remote.example", false, "Bob <bob@refhost.example.org> (the boss), x@remote.example"},
		{"alice@refhost, bob@[127.0.0.1]", false, "alice@refhost.example.org, bob@refhost.example.org"},
		{"team: a@localhost, b;", true, "team: a@refhost.example.org, b@refhost.example.org;"},
		{`"a@localhost" <a@localhost>`, false, `"a@localhost" <a@refhost.example.org>`},
		{"a@local (c) host", false, "a@local (c) host"},
		{"alice@refhost.example.org", false, "alice@refhost.example.org"},
		{"a@b@localhost", false, "a@b@refhost.example.org"},
		{"accalice, Bob <accbob@acc.test>", true, "accalice@refhost.example.org, Bob <accbob@acc.test>"},
	}
	for _, tt := range tests {
		rw := HeaderRewrite{Domain: refDomain, Qualify: tt.qualify, Self: self}
		if got := RewriteHeader(tt.in, rw); got != tt.want {
			t.Errorf("RewriteHeader(%q, qualify=%v) = %q, want %q", tt.in, tt.qualify, got, tt.want)
		}
	}
}

// FuzzRewriteHeader: rewriting never loses bytes when only qualifying, is
// idempotent, and only ever changes addresses: with every "@domain" it
// added taken out again, the original comes back.
func FuzzRewriteHeader(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Add("a@localhost, (c) <b@[127.0.0.1]>, g: c, d@refhost;")
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "@d.example") {
			return
		}
		q := HeaderRewrite{Domain: "d.example", Qualify: true}
		out := RewriteHeader(s, q)
		if strings.ReplaceAll(out, "@d.example", "") != s {
			t.Fatalf("%q: qualifying changed more than addresses: %q", s, out)
		}
		if RewriteHeader(out, q) != out {
			t.Fatalf("%q: not idempotent: %q", s, out)
		}
		full := HeaderRewrite{Domain: "d.example", Qualify: true, Self: self}
		out = RewriteHeader(s, full)
		if RewriteHeader(out, full) != out {
			t.Fatalf("%q: not idempotent with Self: %q", s, out)
		}
	})
}
