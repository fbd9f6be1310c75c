package header

import (
	"reflect"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/queue"
)

func hs(lines ...string) []queue.Header {
	var out []queue.Header
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		out = append(out, queue.Header{HasCond: true, Name: name, Value: value})
	}
	return out
}

func TestClasses(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		address, bcc, rcpt, rsn bool
	}{
		{"From", true, false, false, false},
		{"reply-to", true, false, false, false},
		{"To", true, false, true, false},
		{"BCC", true, true, true, false},
		{"Resent-Bcc", true, true, true, true},
		{"Resent-To", true, false, true, true},
		{"Apparently-To", true, false, true, false},
		{"Subject", false, false, false, false},
		{"Resent-Date", false, false, false, false},
		{"X-To", false, false, false, false},
	} {
		if IsAddress(tt.name) != tt.address || IsBcc(tt.name) != tt.bcc || IsRecipient(tt.name, false) != tt.rcpt || IsRecipient(tt.name, true) != tt.rsn {
			t.Errorf("%s: address %v bcc %v rcpt %v resent rcpt %v", tt.name, IsAddress(tt.name), IsBcc(tt.name), IsRecipient(tt.name, false), IsRecipient(tt.name, true))
		}
	}
	if Resent(hs("To: a", "Resent-Foo: x")) || !Resent(hs("To: a", "Resent-Date: x")) || !Resent(hs("resent-from: x")) {
		t.Error("Resent: only sendmail's resent fields make a resent message")
	}
}

// TestDeleteBcc: sendmail sets EF_DELETE_BCC when the message has To, Cc
// or Apparently-To (03-queue-one-message-files.txt: Fbs for a message with
// To:, 03-queue-several-messages-files.txt: Fs for one with only Subject:).
func TestDeleteBcc(t *testing.T) {
	for _, tt := range []struct {
		h    []queue.Header
		want bool
	}{
		{hs("To: a"), true},
		{hs("cc: a"), true},
		{hs("Apparently-To: a"), true},
		{hs("Subject: x", "Bcc: a"), false},
		{hs("Resent-To: a", "Resent-Bcc: b"), false},
		{nil, false},
	} {
		if got := DeleteBcc(tt.h); got != tt.want {
			t.Errorf("DeleteBcc(%v) = %v", tt.h, got)
		}
	}
}

var rw = &Rewriter{Hostname: "refhost.example.org", Self: HostNames("refhost.example.org", "refhost", []string{"refhost", "refhost.example.org", "virtual.example", "[127.0.0.1]", "[IPv6:::1]"})}

func TestHostNames(t *testing.T) {
	self := rw.Self
	for d, want := range map[string]bool{
		"localhost": true, "LOCALHOST.": true, "localhost.example.org": true, "refhost": true, "refhost.example.org": true,
		"[127.0.0.1]": true, "[::1]": true, "[IPv6:0:0::1]": true,
		"virtual.example": false, "[192.0.2.1]": false, "example.org": false, "": false,
	} {
		if self(d) != want {
			t.Errorf("HostNames(%q) = %v", d, !want)
		}
	}
}

// TestSubmission is issue 8's message, as sendmail's MSP relays it: the
// MTA got "To: accalice@$j, Bob <accbob@acc.test>", "Cc: accdave@$j" and
// no Bcc:.
func TestSubmission(t *testing.T) {
	in := hs("To: accalice, Bob <accbob@acc.test>", "Cc: accdave", "Bcc: acccarol", "Subject: x alice", "Reply-To: (me) me@localhost")
	got := rw.Submission(in)
	want := hs("To: accalice@refhost.example.org, Bob <accbob@acc.test>", "Cc: accdave@refhost.example.org", "Subject: x alice", "Reply-To: (me) me@refhost.example.org")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if in[0].Value != " accalice, Bob <accbob@acc.test>" {
		t.Error("Submission changed its input")
	}
	// without To or Cc the Bcc field stays, empty
	got = rw.Submission(hs("Bcc: secret@localhost", "Resent-Bcc: other", "Subject: s"))
	want = hs("Bcc:", "Resent-Bcc:", "Subject: s")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestValue(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		qualify  bool
		want     string
	}{
		{"To", " staff@localhost, carol", false, " staff@refhost.example.org, carol"},
		{"To", " staff@localhost, carol", true, " staff@refhost.example.org, carol@refhost.example.org"},
		{"From", " root <root>", true, " root <root@refhost.example.org>"},
		{"Subject", " mail for alice@localhost", true, " mail for alice@localhost"},
		{"Message-Id", " <x@localhost>", true, " <x@localhost>"},
		{"To", " info@virtual.example", true, " info@virtual.example"},
	} {
		if got := rw.Value(tt.name, tt.in, tt.qualify); got != tt.want {
			t.Errorf("%s:%s (qualify %v) = %q, want %q", tt.name, tt.in, tt.qualify, got, tt.want)
		}
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"Alice Example":                       "Alice Example",
		"Name\nBcc: victim@localhost\n\nbody": "Name Bcc: victim@localhost  body",
		"evil@x.example\r\nX-Inj: 1":          "evil@x.example  X-Inj: 1",
		"cr\ronly":                            "cr only",
		"nul\x00byte":                         "nul byte",
		"tab\tstays, and so does \u00e9":      "tab\tstays, and so does \u00e9",
	} {
		got, changed := Clean(in)
		if got != want || changed != (in != want) {
			t.Errorf("Clean(%q) = %q, %v", in, got, changed)
		}
	}
}

func TestQuoteName(t *testing.T) {
	for in, want := range map[string]string{
		"Alice Example":         "Alice Example",
		"Doe, John":             `"Doe, John"`,
		`"Doe, John"`:           `"Doe, John"`,
		"Dr. Who":               `"Dr. Who"`,
		"O'Brien":               `"O'Brien"`,
		"x <evil@attacker>":     `"x <evil@attacker>"`,
		`say "hi" \o/`:          `say "hi" \o/`,
		`say "hi \o/`:           `"say \"hi \\o/"`,
		"Bob (the builder)":     "Bob (the builder)",
		"unbalanced (":          `"unbalanced ("`,
		"Name Bcc: v@localhost": `"Name Bcc: v@localhost"`,
		"":                      "",
	} {
		if got := QuoteName(in); got != want {
			t.Errorf("QuoteName(%q) = %q, want %q", in, got, want)
		}
	}
}
