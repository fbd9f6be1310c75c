package runner

import (
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/queue"
)

// TestRenderHeaderAddresses: at delivery this host's names become $j for
// every mailer (02-mbox-alice.txt: "To: staff@localhost" arrives as
// "staff@refhost.example.org"), unqualified addresses stay for the local
// mailer ("Cc: bob", the direct MTA path) and get $j for SMTP mailers;
// display names and comments are kept; Bcc fields never show addresses.
func TestRenderHeaderAddresses(t *testing.T) {
	hs := []queue.Header{
		{HasCond: true, Name: "From", Value: " Root User <root>"},
		{HasCond: true, Name: "To", Value: " staff@localhost, incl-list@localhost,\n        carol@refhost.example.org"},
		{HasCond: true, Name: "Cc", Value: " bob (Bob), Other <other@[127.0.0.1]>"},
		{HasCond: true, Name: "Bcc", Value: " hidden@remote.example"},
		{HasCond: true, Name: "Resent-Bcc", Value: " hidden2@remote.example"},
		{HasCond: true, Name: "Subject", Value: " mail for staff@localhost"},
	}
	self := header.HostNames("refhost.example.org", "refhost", []string{"[127.0.0.1]"})
	tests := []struct {
		flags, jobFlags, want string
	}{
		{defaultMailerFlags["local"], "bs", "From: Root User <root>\nTo: staff@refhost.example.org, incl-list@refhost.example.org,\n        carol@refhost.example.org\n" +
			"Cc: bob (Bob), Other <other@refhost.example.org>\nSubject: mail for staff@localhost\n"},
		{defaultMailerFlags["esmtp"], "bs", "From: Root User <root@refhost.example.org>\nTo: staff@refhost.example.org, incl-list@refhost.example.org,\n        carol@refhost.example.org\n" +
			"Cc: bob@refhost.example.org (Bob), Other <other@refhost.example.org>\nSubject: mail for staff@localhost\n"},
		// without the b flag (no To: or Cc: when the job was queued) the Bcc fields stay, empty
		{defaultMailerFlags["local"], "s", "From: Root User <root>\nTo: staff@refhost.example.org, incl-list@refhost.example.org,\n        carol@refhost.example.org\n" +
			"Cc: bob (Bob), Other <other@refhost.example.org>\nBcc:\nResent-Bcc:\nSubject: mail for staff@localhost\n"},
	}
	for _, tt := range tests {
		j := &queue.Job{ID: "6AP4Qe0a001878", Sender: "<root@refhost.example.org>", Flags: tt.jobFlags, Headers: hs}
		m := &macros{job: j, hostname: "refhost.example.org", sender: envelopeSender(j, "refhost.example.org"),
			rewrite: &header.Rewriter{Hostname: "refhost.example.org", Self: self}}
		if got := string(renderHeader(nil, j, tt.flags, m)); got != tt.want {
			t.Errorf("mailer flags %s, job flags %s:\n%s\nwant\n%s", tt.flags, tt.jobFlags, got, tt.want)
		}
	}
}

// TestBccNotDelivered: issue 8: a Bcc: field in the qf (a job written by
// an older posthorn or by sendmail, or received over SMTP) reached every
// recipient. Through a queue run, no mailer sees its addresses.
func TestBccNotDelivered(t *testing.T) {
	e := newEnv(t, nil)
	j := e.job("PFD:<bob@refhost.example.org>", "PFD:<x@remote.example>")
	j.Headers = append(j.Headers, queue.Header{HasCond: true, Name: "To", Value: " bob@localhost"},
		queue.Header{HasCond: true, Name: "Bcc", Value: " x@remote.example"})
	j.SetFlag(queue.FlagDelBcc, true)
	e.enqueue(j)
	e.run(RunOptions{})
	ds := e.mail.deliveries()
	if len(ds) != 2 {
		t.Fatalf("%d deliveries", len(ds))
	}
	for _, d := range ds {
		if strings.Contains(d.header, "x@remote.example") || strings.Contains(d.header, "Bcc") {
			t.Errorf("%s mailer got the Bcc:\n%s", d.mailer, d.header)
		}
		if !strings.Contains(d.header, "To: bob@refhost.example.org\n") {
			t.Errorf("%s mailer: To: not canonicalised:\n%s", d.mailer, d.header)
		}
	}
}

// BenchmarkRenderHeader renders a typical header block (two address
// fields rewritten) for the local and an SMTP mailer.
func BenchmarkRenderHeader(b *testing.B) {
	j := &queue.Job{ID: "6AP4Qe0a001878", Sender: "<sender@client.example>", Flags: "bs", Headers: []queue.Header{
		{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
		{HasCond: true, Name: "Received", Value: " from client.example (localhost [127.0.0.1])\n\tby refhost.example.org (posthorn) with ESMTP id 6AP4Qe0a001878;\n\tWed, 25 Nov 2026 04:26:40 GMT"},
		{HasCond: true, Name: "Date", Value: " Wed, 25 Nov 2026 04:26:40 GMT"},
		{HasCond: true, Name: "Message-Id", Value: " <202611250426.6AP4Qe0a001878@refhost.example.org>"},
		{HasCond: true, Name: "From", Value: " Sender <sender@client.example>"},
		{HasCond: true, Name: "To", Value: " staff@localhost, incl-list@localhost, carol@refhost.example.org"},
		{HasCond: true, Name: "Subject", Value: " alias expansion test"},
	}}
	m := &macros{job: j, hostname: "refhost.example.org", sender: envelopeSender(j, "refhost.example.org"),
		rewrite: &header.Rewriter{Hostname: "refhost.example.org", Self: header.HostNames("refhost.example.org", "refhost", nil)}}
	for _, mailer := range []string{"local", "esmtp"} {
		b.Run(mailer, func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = renderHeader(buf[:0], j, defaultMailerFlags[mailer], m)
			}
		})
	}
}
