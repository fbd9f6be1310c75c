package smtpd

import (
	"strings"
	"testing"
)

func TestParseCommandPath(t *testing.T) {
	long := strings.Repeat("a", 300) + "@client.example"
	tests := []struct {
		arg, kw   string
		raw, addr string
		params    int
		err       string
	}{
		{"FROM:<alice@localhost>", "FROM", "<alice@localhost>", "alice@localhost", 0, ""},
		{"from: <alice@localhost> SIZE=10 BODY=8BITMIME", "FROM", "<alice@localhost>", "alice@localhost", 2, ""},
		{"FROM:alice@localhost", "FROM", "alice@localhost", "alice@localhost", 0, ""},
		{"FROM:<<alice@localhost>>", "FROM", "<<alice@localhost>>", "alice@localhost", 0, ""},
		{"FROM:<a b@localhost>", "FROM", "<a b@localhost>", "a.b@localhost", 0, ""}, // BlankSub
		{"FROM:<a(comment)@localhost>", "FROM", "<a(comment)@localhost>", "a@localhost", 0, ""},
		{`FROM:<"quoted >local"@localhost>`, "FROM", `<"quoted >local"@localhost>`, `"quoted >local"@localhost`, 0, ""},
		{"FROM:<>", "FROM", "<>", "", 0, ""},
		{"FROM :<x@y>", "FROM", "<x@y>", "x@y", 0, ""},
		{"FROM:<@route,@other:alice@localhost>", "FROM", "<@route,@other:alice@localhost>", "@route,@other:alice@localhost", 0, ""},
		{"", "FROM", "", "", 0, `501 5.5.2 Syntax error in parameters scanning ""`},
		{"FROM", "FROM", "", "", 0, `501 5.5.2 Syntax error in parameters scanning "FROM"`},
		{"FROM:", "FROM", "", "", 0, `501 5.5.2 Syntax error in parameters scanning "FROM"`},
		{"TO:<alice@localhost>", "FROM", "", "", 0, `501 5.5.2 Syntax error in parameters scanning "TO"`},
		{"FROM:<alice@localhost", "FROM", "", "", 0, `553 5.0.0 <alice@localhost... Unbalanced '<'`},
		{"FROM:alice@localhost>", "FROM", "", "", 0, `553 5.0.0 alice@localhost>... Unbalanced '>'`},
		{`FROM:<"alice@localhost>`, "FROM", "", "", 0, `553 5.0.0 <"alice@localhost>... Unbalanced '"'`},
		{"FROM:<" + long + ">", "FROM", "", "", 0, "553 5.1.0 <" + long[:99] + "..." + long[len(long)-99:] + ">... prescan: token too long"},
		{"FROM:<a\x01b@c>", "FROM", "", "", 0, `501 5.1.7 Syntax error in mailbox address "a?b@c" (non-printable character)`},
		{"TO:<a\x01b@c>", "TO", "", "", 0, `501 5.1.3 Syntax error in mailbox address "a?b@c" (non-printable character)`},
		{"TO:<>", "TO", "", "", 0, "553 5.0.0 <>... User address required"},
		{"TO: <> NOTIFY=NEVER", "TO", "", "", 0, "553 5.0.0 <>... User address required"},
		{"TO:<alice>", "TO", "<alice>", "alice", 0, ""},
	}
	for _, tt := range tests {
		p, ps, err := parseCommandPath(tt.arg, tt.kw)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: error %v, want %q", tt.arg, err, tt.err)
			}
			continue
		}
		if err != nil || p.Raw != tt.raw || p.Addr != tt.addr || len(ps) != tt.params {
			t.Errorf("%q: got %+v %d %v, want %q %q %d", tt.arg, p, len(ps), err, tt.raw, tt.addr, tt.params)
		}
	}
}

func TestMailParams(t *testing.T) {
	tests := []struct {
		params string
		err    string
		check  func(*Envelope) bool
	}{
		{"SIZE=100 BODY=8bitmime RET=hdrs ENVID=QQ123", "", func(e *Envelope) bool {
			return e.Size == 100 && e.Body == "8BITMIME" && e.Ret == "HDRS" && e.EnvID == "QQ123"
		}},
		{"SIZE=abc", "", func(e *Envelope) bool { return e.Size == 0 }},
		{"SIZE=-5", "552 5.2.3 Message size invalid", nil},
		{"SIZE=999999999999999999999999", "552 5.2.3 Message size exceeds maximum value", nil},
		{"BODY=9BIT", "501 5.5.4 Unknown BODY type 9BIT", nil},
		{"RET=XYZ", `501 5.5.2 Bad argument "XYZ" to RET`, nil},
		{"RET=FULL RET=HDRS", "501 5.5.0 Duplicate RET parameter", nil},
		{"ENVID=abc ENVID=def", "501 5.5.0 Duplicate ENVID parameter", nil},
		{"ENVID=a=b", "501 5.5.4 Syntax error in ENVID parameter value", nil},
		{"FOO=bar", "555 5.5.4 FOO parameter unrecognized", nil},
		{"AUTH=<> BY=120;R", "", func(e *Envelope) bool { return e.Auth == "" && e.DeliverBy == "120;R" }},
	}
	for _, tt := range tests {
		env := &Envelope{Client: &Client{}}
		err := mailParams(env, parseParams(tt.params))
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%q: error %v, want %q", tt.params, err, tt.err)
		case tt.err == "" && (err != nil || !tt.check(env)):
			t.Errorf("%q: %v %+v", tt.params, err, env)
		}
	}
}

func TestRcptParams(t *testing.T) {
	tests := []struct{ params, err string }{
		{"NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;alice@localhost", ""},
		{"NOTIFY=never", ""},
		{"NOTIFY=BOGUS", `501 5.5.4 Bad argument "BOGUS"  to NOTIFY`},
		{"NOTIFY=NEVER,SUCCESS", `501 5.5.4 Bad argument "NEVER"  to NOTIFY`},
		{"NOTIFY=SUCCESS,NEVER", `501 5.5.4 Bad argument "NEVER"  to NOTIFY`},
		{"ORCPT=alice", "501 5.5.4 Syntax error in ORCPT parameter value"},
		{"ORCPT=rfc822;a+2Bb ORCPT=rfc822;c", "501 5.5.0 Duplicate ORCPT parameter"},
		{"FOO=bar", "555 5.5.4 FOO parameter unrecognized"},
	}
	for _, tt := range tests {
		var r Recipient
		err := rcptParams(&r, parseParams(tt.params))
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.err {
			t.Errorf("%q: %q, want %q", tt.params, got, tt.err)
		}
	}
}

// FuzzCommandParser feeds arbitrary command arguments to the MAIL/RCPT
// parsers: they must never panic, and what they accept must round-trip.
func FuzzCommandParser(f *testing.F) {
	for _, s := range []string{"FROM:<a@b> SIZE=1", "TO:<<x>>", `FROM:<"a\"b"@c>`, "FROM:a@b>", "TO:<a@b> NOTIFY=NEVER,SUCCESS ORCPT=rfc822;x+41"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		for _, kw := range []string{"FROM", "TO"} {
			p, ps, err := parseCommandPath(arg, kw)
			if err != nil {
				continue
			}
			if !strings.Contains(arg, p.Raw) {
				t.Fatalf("raw %q not in %q", p.Raw, arg)
			}
			env := &Envelope{Client: &Client{AuthUser: "u"}}
			_ = mailParams(env, ps)
			var r Recipient
			_ = rcptParams(&r, ps)
		}
		_, _ = splitCommand(arg)
	})
}
