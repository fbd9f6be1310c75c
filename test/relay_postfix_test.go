package test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestRelayToPostfix: real Postfix as the next hop (found through the MX
// record), delivering into its own mailbox file. The message arrives
// whole: headers, an 8-bit body, a 1,500-character line folded as
// sendmail folds it (989 characters and "!", the rest on a line starting
// with a space). NOTIFY=SUCCESS is honoured by Postfix itself: its
// success DSN comes back through posthorn's daemon (Postfix's relayhost)
// to the sender's mailbox. The recipient Postfix refuses comes back in
// posthorn's DSN with Postfix's reply. Postfix offers STARTTLS with a
// self-signed certificate: posthorn (Go's TLS) and Postfix (OpenSSL)
// agree on TLS 1.3 and the log says verify=FAIL.
func TestRelayToPostfix(t *testing.T) {
	pfIP := hopIP(t)
	e := newRelayEnv(t, oneMX("pf.example", pfIP), "O DeliveryMode=background")
	cert, key := e.r.path("etc/pf.crt"), e.r.path("etc/pf.key")
	writeTestCert(t, cert, key)
	pf := startPostfix(t, postfixConfig{
		ip:        pfIP,
		domain:    "pf.example",
		mailboxes: []string{"alice"},
		relayhost: fmt.Sprintf("[127.0.0.1]:%d", e.r.port),
		extra: []string{"smtpd_tls_security_level = may", "smtpd_tls_cert_file = " + cert,
			"smtpd_tls_key_file = " + key, "smtpd_tls_loglevel = 1"},
	})
	startDaemon(t, e.r, "-X", e.r.path("run/daemon.log"))
	c, _, _ := waitGreeting(t, e.r.addr())
	c.Close()

	long := strings.Repeat("0123456789", 150)
	msg := "From: Root <root@posthorn.test>\nTo: alice@pf.example, nosuch@pf.example\nSubject: interop\n" +
		"Message-ID: <interop@posthorn.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n" +
		"Content-Transfer-Encoding: 8bit\n\nGrüße aus posthorn\n" + long + "\nlast line\n"
	got := e.submit(t, msg, "-v", "-B8BITMIME", "-N", "success,failure", "-R", "hdrs", "-V", "envid-interop",
		"alice@pf.example", "nosuch@pf.example")
	if got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	for _, want := range []string{
		"220 mx.pf.example ESMTP Postfix",
		"250-STARTTLS\n",
		">>> STARTTLS\n220 2.0.0 Ready to start TLS\n",
		">>> MAIL From:<root@posthorn.test> SIZE=",
		" BODY=8BITMIME ENVID=envid-interop RET=HDRS",
		">>> RCPT To:<alice@pf.example> NOTIFY=SUCCESS,FAILURE",
		"550 5.1.1 <nosuch@pf.example>: Recipient address rejected: User unknown in virtual mailbox table",
	} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("-v lacks %q:\n%s", want, got.stdout)
		}
	}
	m := regexp.MustCompile(`to=alice@pf\.example, .*mailer=esmtp, .*relay=mx\.pf\.example\. \[` + q(pfIP) +
		`\], dsn=2\.0\.0, stat=Sent \(Ok: queued as (\w+)\)`).FindStringSubmatch(e.logText())
	if m == nil {
		t.Fatalf("no Sent line for alice:\n%s", e.logText())
	}
	pfID := m[1]
	wantLog(t, pf.logText(), `Anonymous TLS connection established from unknown\[127\.0\.0\.1\]: TLSv1\.3 with cipher `)
	wantLog(t, e.logText(),
		`STARTTLS=client, relay=mx\.pf\.example\., version=TLSv1\.3, verify=FAIL, cipher=TLS_\w+, bits=\d+/\d+`,
		`: to=nosuch@pf\.example, .*relay=mx\.pf\.example\. \[`+q(pfIP)+`\], dsn=5\.1\.1, reply=550 5\.1\.1 <nosuch@pf\.example>: Recipient address rejected: User unknown in virtual mailbox table, stat=User unknown`)

	delivered := regexp.MustCompile(q(pfID) + `: to=<alice@pf\.example>, relay=virtual, .*status=sent \(delivered to mailbox\)`)
	waitFor(t, "Postfix's delivery", func() bool { return delivered.MatchString(pf.logText()) })
	box := pf.mailbox("alice")
	for _, want := range []string{
		"From root@posthorn.test ",
		"\nReturn-Path: <root@posthorn.test>\n",
		"\nReceived: from posthorn.test (unknown [127.0.0.1])\n\tby mx.pf.example (Postfix) with ESMTPS id " + pfID + "\n",
		"\nReceived: (from root@localhost)\n\tby posthorn.test (posthorn ",
		"\nFrom: Root <root@posthorn.test>\nTo: alice@pf.example, nosuch@pf.example\nSubject: interop\n" +
			"Message-ID: <interop@posthorn.test>\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n" +
			"Content-Transfer-Encoding: 8bit\n\nGrüße aus posthorn\n" + long[:989] + "!\n " + long[989:] + "\nlast line\n",
	} {
		if !strings.Contains(box, want) {
			t.Errorf("Postfix's mailbox lacks %q:\n%s", want, box)
		}
	}

	// Postfix's success DSN and posthorn's failure DSN, both in the
	// sender's mailbox.
	waitFor(t, "the two DSNs", func() bool {
		b := e.mailbox("root")
		return strings.Contains(b, "Action: delivered") && strings.Contains(b, "Action: failed")
	})
	box = e.mailbox("root")
	for _, want := range []string{
		// Postfix's
		"From: Mail Delivery System <MAILER-DAEMON@pf.example>\n",
		"Subject: Successful Mail Delivery Report\n",
		"Original-Envelope-Id: envid-interop\n",
		"Final-Recipient: rfc822; alice@pf.example\n",
		"Action: delivered\n",
		"Diagnostic-Code: X-Postfix; delivery via virtual: delivered to mailbox\n",
		// posthorn's
		"Subject: Returned mail: see transcript for details\n",
		"   ----- The following addresses had permanent fatal errors -----\nnosuch@pf.example\n" +
			"    (reason: 550 5.1.1 <nosuch@pf.example>: Recipient address rejected: User unknown in virtual mailbox table)\n",
		"Remote-MTA: DNS; mx.pf.example\n" +
			"Diagnostic-Code: SMTP; 550 5.1.1 <nosuch@pf.example>: Recipient address rejected: User unknown in virtual mailbox table\n",
		"Content-Type: text/rfc822-headers\n",
	} {
		if !strings.Contains(box, want) {
			t.Errorf("sender's mailbox lacks %q:\n%s", want, box)
		}
	}
	wantLog(t, e.logTextOf("run/daemon.log"),
		`: from=<>, size=\d+, class=0, nrcpts=1, msgid=<[^>]+@mx\.pf\.example>, .*relay=.*\[127\.0\.0\.1\]`,
		`: to=<root@posthorn\.test>, .*mailer=local, .*stat=Sent`)
}

func (e *relayEnv) logTextOf(rel string) string {
	old := e.log
	defer func() { e.log = old }()
	e.log = e.r.path(rel)
	return e.logText()
}
