package addr

import "testing"

// 03-dsn-msp-generated-full-message.txt: the MSP's DSN had
// "From: Mail Delivery Subsystem <MAILER-DAEMON>" and "To: <root>" and
// reached the MTA with both qualified.
func TestQualify(t *testing.T) {
	const d = "refhost.example.org"
	tests := []struct{ in, want string }{
		{"Mail Delivery Subsystem <MAILER-DAEMON>", "Mail Delivery Subsystem <MAILER-DAEMON@refhost.example.org>"},
		{"<root>", "<root@refhost.example.org>"},
		{"root <root>", "root <root@refhost.example.org>"},
		{"Alice Example <alice>", "Alice Example <alice@refhost.example.org>"},
		{"alice (Alice Example)", "alice@refhost.example.org (Alice Example)"},
		{"someone@remote.example, other@multi.example", "someone@remote.example, other@multi.example"},
		{"alice, bob@x,\n\tcarol", "alice@refhost.example.org, bob@x,\n\tcarol@refhost.example.org"},
		{"friends: alice, <bob>;, dave", "friends: alice@refhost.example.org, <bob@refhost.example.org>;, dave@refhost.example.org"},
		{"undisclosed-recipients:;", "undisclosed-recipients:;"},
		{"<>", "<>"},
		{"<<alice>>", "<<alice@refhost.example.org>>"},
		{`"Doe, John" <john>`, `"Doe, John" <john@refhost.example.org>`},
		{`"quoted user"`, `"quoted user"@refhost.example.org`},
		{"alice bob", "alice bob"},
		{"<bad, alice", "<bad, alice"},
		{"|/bin/prog", "|/bin/prog"},
		{"<@route:u@d>", "<@route:u@d>"},
	}
	for _, tt := range tests {
		if got := Qualify(tt.in, d); got != tt.want {
			t.Errorf("Qualify(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzQualify(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Qualify(s, "d.example")
		if len(out) < len(s) {
			t.Fatalf("%q shrank to %q", s, out)
		}
		if Qualify(out, "d.example") != out {
			t.Fatalf("%q: not idempotent: %q", s, out)
		}
	})
}
