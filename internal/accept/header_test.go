package accept

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/queue"
)

// TestBccFlag: the qf flag b follows sendmail's collect: set when the
// header has To, Cc or Apparently-To (03-queue-one-message-files.txt
// "Fbs"), not for a message with none (03-queue-several-messages-files.txt
// "Fs"), whichever entry point queued it.
func TestBccFlag(t *testing.T) {
	for _, tt := range []struct {
		text string
		b    bool
	}{
		{"To: someone@remote.example\nBcc: hidden@remote.example\n\nx\n", true},
		{"cc: a@b\n\nx\n", true},
		{"Apparently-To: a@b\n\nx\n", true},
		{"Subject: s\nBcc: hidden@remote.example\n\nx\n", false},
		{"Resent-To: a@b\nResent-Bcc: c@d\n\nx\n", false},
	} {
		a, _ := newAcceptor(t, nil)
		env := &Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<x@remote.example>"}}}
		j, _ := accept(t, a, env, tt.text, false)
		if j.HasFlag(queue.FlagDelBcc) != tt.b {
			t.Errorf("%q: flags %q, want b=%v", tt.text, j.Flags, tt.b)
		}
	}
}

// TestEditHeaders: the entry point's version of the message's own fields
// is what is queued, and decides the b flag.
func TestEditHeaders(t *testing.T) {
	a, _ := newAcceptor(t, nil)
	env := &Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<x@remote.example>"}}, FromAddr: "a@b",
		EditHeaders: func(hs []queue.Header) []queue.Header {
			return append([]queue.Header{{HasCond: true, Name: "To", Value: " edited@x"}}, hs[1:]...)
		}}
	j, _ := accept(t, a, env, "Bcc: hidden@x\nSubject: s\n\nx\n", false)
	if v, _ := j.Get("To"); strings.TrimSpace(v) != "edited@x" || !j.HasFlag(queue.FlagDelBcc) {
		t.Errorf("To %q flags %q", v, j.Flags)
	}
	if _, ok := j.Get("Bcc"); ok {
		t.Error("the edited header was not used")
	}
}

// TestResentDefaults: a resent message gets sendmail.cf's
// H?D?Resent-Date, H?F?Resent-From and H?M?Resent-Message-Id when it lacks
// them, each before its plain counterpart; a message that is not resent
// gets none.
func TestResentDefaults(t *testing.T) {
	a, _ := newAcceptor(t, nil)
	env := &Envelope{Sender: "root", Recipients: []Recipient{{Addr: "bob"}}, FullName: "Root User", FromAddr: "root@refhost.example.org", Local: true}
	j, id := accept(t, a, env, "From: alice@refhost.example.org\nDate: Mon, 23 Nov 2026 10:00:00 GMT\nMessage-Id: <orig@x>\nResent-To: bob\n\nbody\n", true)
	var got []string
	for _, h := range j.Headers {
		got = append(got, "?"+h.Cond+"?"+h.Name+":"+h.Value)
	}
	want := []string{"?P?Return-Path: <\x81g>",
		"?D?Resent-Date: Wed, 25 Nov 2026 04:29:09 GMT",
		"?F?Resent-From: Root User <root@refhost.example.org>",
		"?x?Full-Name: Root User",
		"?M?Resent-Message-Id: <202611250429." + id + "@refhost.example.org>",
		"??From: alice@refhost.example.org", "??Date: Mon, 23 Nov 2026 10:00:00 GMT", "??Message-Id: <orig@x>", "??Resent-To: bob"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("headers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	j, _ = accept(t, a, &Envelope{Sender: "root", Recipients: []Recipient{{Addr: "bob"}}, FromAddr: "root", Local: true}, "Subject: plain\n\nbody\n", true)
	for _, h := range j.Headers {
		if strings.HasPrefix(h.Name, "Resent-") {
			t.Errorf("a plain message got %s", h.Name)
		}
	}
}

// TestLastLineWithoutLineEnd: a message whose text ends, without a line
// end, on a line that is not a header field ("Subject: x\nhello") queued
// that line as a bogus field "hello:" and lost it from the body.
func TestLastLineWithoutLineEnd(t *testing.T) {
	for _, tt := range []struct{ text, fields, body string }{
		{"Subject: x\nhello, the body", "Subject", "hello, the body"},
		{"Subject: x\n folded", "Subject", ""},
		{"Subject: x", "Subject", ""},
		{" 0", "", " 0"},
		{"Subject: x\r\nnot: a\r\nbody line", "Subject,not", "body line"},
		{"Subject: x\n\r", "Subject", "\r"},
		{"\r", "", "\r"},
		{"From root  Wed Nov 25 04:29:09 2026", "", "From root  Wed Nov 25 04:29:09 2026"},
	} {
		a, dir := newAcceptor(t, nil)
		j, id := accept(t, a, &Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<x@remote.example>"}}}, tt.text, false)
		var names []string
		for _, h := range j.Headers {
			if h.Cond == "" && h.Name != "Received" {
				names = append(names, h.Name)
			}
		}
		df, _ := os.ReadFile(filepath.Join(dir, "df"+id))
		if strings.Join(names, ",") != tt.fields || string(df) != tt.body {
			t.Errorf("%q: fields %q, df %q", tt.text, names, df)
		}
		hs, body := ParseMessage([]byte(tt.text), false)
		names = nil
		for _, h := range hs {
			names = append(names, h.Name)
		}
		if strings.Join(names, ",") != tt.fields || strings.ReplaceAll(string(body), "\r\n", "\n") != tt.body {
			t.Errorf("ParseMessage(%q): fields %q, body %q", tt.text, names, body)
		}
	}
	// a local submission that is nothing but an mbox From_ line
	if hs, body := ParseMessage([]byte("From root  Wed Nov 25 04:29:09 2026"), true); len(hs) != 0 || len(body) != 0 {
		t.Errorf("From_ line only: %v %q", hs, body)
	}
}
