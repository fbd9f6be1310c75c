package test

import (
	"os"
	"strings"
	"testing"

	smtp "github.com/emersion/go-smtp"
)

// TestRelayMailertableAndSmartHost: a mailertable entry with a port and
// the smart host route mail without any DNS (the root's resolver is a
// closed port): the mailertable domain to its [host]:port with esmtp,
// every other remote domain to DS[host] with the relay mailer.
func TestRelayMailertableAndSmartHost(t *testing.T) {
	mtIP, smartIP := hopIP(t), hopIP(t)
	r := newRoot(t, "DS["+smartIP+"]")
	writeAliases(t, r, "postmaster: root\n")
	run(t, binary(t), "", "-C", r.cf, "-bi")
	mt := startSink(t, mtIP+":0", nil)
	smart := startSink(t, smartIP+":25", nil)
	_, port, _ := strings.Cut(mt.addr, ":")
	if err := os.WriteFile(r.path("etc/mailertable"), []byte("mt.example esmtp:["+mtIP+"]:"+port+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &relayEnv{r: r, log: r.path("run/trace.log")}
	if bv := run(t, binary(t), "", "-C", r.cf, "-bv", "a@mt.example", "b@elsewhere.example"); !strings.Contains(bv.stdout,
		"a@mt.example... deliverable: mailer esmtp, host ["+mtIP+"]:"+port+", user a@mt.example") ||
		!strings.Contains(bv.stdout, "b@elsewhere.example... deliverable: mailer relay, host ["+smartIP+"], user b@elsewhere.example") {
		t.Errorf("-bv:\n%s%s", bv.stdout, bv.stderr)
	}
	got := e.submit(t, relayMsg, "-v", "a@mt.example", "b@elsewhere.example")
	if got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	if !strings.Contains(got.stdout, "a@mt.example... Connecting to ["+mtIP+"] port "+port+" via esmtp...") ||
		!strings.Contains(got.stdout, "b@elsewhere.example... Connecting to ["+smartIP+"] via relay...") {
		t.Errorf("-v:\n%s", got.stdout)
	}
	if m := mt.messages(); len(m) != 1 || strings.Join(m[0].Rcpts, ",") != "a@mt.example" {
		t.Errorf("mailertable host got %+v", m)
	}
	if m := smart.messages(); len(m) != 1 || strings.Join(m[0].Rcpts, ",") != "b@elsewhere.example" {
		t.Errorf("smart host got %+v", m)
	}
	wantLog(t, e.logText(),
		`: to=a@mt\.example, .*mailer=esmtp, .*relay=\[`+q(mtIP)+`\] \[`+q(mtIP)+`\], dsn=2\.0\.0, stat=Sent \(`,
		`: to=b@elsewhere\.example, .*mailer=relay, .*relay=\[`+q(smartIP)+`\] \[`+q(smartIP)+`\], dsn=2\.0\.0, stat=Sent \(`)
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v", qfs)
	}
}

// TestRelayDoubleBounce: a message from a remote sender fails (no such
// domain); its DSN, from the null sender, is refused by the sender's MX.
// That bounce is not bounced again: postmaster gets sendmail's "Postmaster
// notify" (03-dsn-postmaster-notify-double-bounce.txt) and nothing stays
// queued.
func TestRelayDoubleBounce(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, oneMX("sender.example", ip))
	s := startSink(t, ip+":25", func(addr string, n int) error {
		return smtpReply(550, "5.1.1", "<"+addr+">: Recipient address rejected: User unknown")
	})
	if got := e.submit(t, relayMsg, "-f", "someone@sender.example", "user@nxdomain.example"); got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	if n := len(s.messages()); n != 0 {
		t.Errorf("the sender's MX took %d messages", n)
	}
	log := e.logText()
	wantLog(t, log,
		`: to=user@nxdomain\.example, .*dsn=5\.1\.2, stat=Host unknown \(Name server: nxdomain\.example: host not found\)`,
		`: to=<someone@sender\.example>, .*relay=mx\.sender\.example\. \[`+q(ip)+`\], dsn=5\.1\.1, reply=550 5\.1\.1 <someone@sender\.example>: Recipient address rejected: User unknown, stat=User unknown`,
		// sendmail's label when the failed message is its own report
		`: return to sender: User unknown`)
	box := e.mailbox("root")
	if n := strings.Count(box, "\nFrom MAILER-DAEMON ") + boolInt(strings.HasPrefix(box, "From MAILER-DAEMON ")); n != 1 {
		t.Fatalf("postmaster has %d messages, want the one double bounce:\n%s", n, box)
	}
	for _, want := range []string{
		"\nTo: postmaster\n",
		"Subject: Postmaster notify: see transcript for details\n",
		"Auto-Submitted: auto-generated (postmaster-notification)\n",
		"<<< 550 5.1.1 <someone@sender.example>: Recipient address rejected: User unknown\n",
		"Final-Recipient: RFC822; someone@sender.example\n",
		"Remote-MTA: DNS; mx.sender.example\n",
		"Diagnostic-Code: SMTP; 550 5.1.1 <someone@sender.example>: Recipient address rejected: User unknown\n",
		"Subject: Returned mail: see transcript for details\n",
	} {
		if !strings.Contains(box, want) {
			t.Errorf("double bounce lacks %q:\n%s", want, box)
		}
	}
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v\n%s", qfs, e.mailq(t))
	}

	// A message from the null sender (someone else's bounce) refused by
	// its next hop: to postmaster too.
	if got := e.submit(t, relayMsg, "-f", "<>", "other@sender.example"); got.code != 0 {
		t.Fatalf("-odi -f '<>': %+v", got)
	}
	wantLog(t, e.logText(),
		`: to=other@sender\.example, .*dsn=5\.1\.1, reply=550 5\.1\.1 <other@sender\.example>: Recipient address rejected: User unknown, stat=User unknown`,
		`: postmaster notify: User unknown`)
	box = e.mailbox("root")
	if n := strings.Count(box, "Subject: Postmaster notify: see transcript for details\n"); n != 2 {
		t.Errorf("postmaster has %d notices, want 2:\n%s", n, box)
	}
	if !strings.Contains(box, "Final-Recipient: RFC822; other@sender.example\n") {
		t.Errorf("the second notice does not name other@sender.example:\n%s", box)
	}
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v\n%s", qfs, e.mailq(t))
	}
}

// TestRelayDaemonBackground: the daemon takes a message over SMTP with
// DSN parameters and relays it in the background; the next hop gets the
// parameters, the refused recipient comes back to the sender in a DSN,
// and the queue is empty afterwards.
func TestRelayDaemonBackground(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, oneMX("daemon.example", ip), "O DeliveryMode=background", "O RelayHosts=127.0.0.1/32")
	s := startSink(t, ip+":25", func(addr string, n int) error {
		if strings.HasPrefix(addr, "nosuch@") {
			return smtpReply(550, "5.1.1", "<"+addr+">: Recipient address rejected: User unknown")
		}
		return nil
	})
	startDaemon(t, e.r, "-X", e.log)
	c0, _, _ := waitGreeting(t, e.r.addr())
	c0.Close()

	c, err := smtp.Dial(e.r.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("root@posthorn.test", &smtp.MailOptions{EnvelopeID: "env-1", Return: smtp.DSNReturnHeaders}); err != nil {
		t.Fatal(err)
	}
	for _, rc := range []string{"good@daemon.example", "nosuch@daemon.example"} {
		if err := c.Rcpt(rc, &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure},
			OriginalRecipientType: smtp.DSNAddressTypeRFC822, OriginalRecipient: rc}); err != nil {
			t.Fatalf("RCPT %s: %v", rc, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(strings.ReplaceAll(relayMsg, "\n", "\r\n")))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()

	waitFor(t, "the relayed message and the DSN", func() bool {
		return len(s.messages()) == 1 && strings.Contains(e.mailbox("root"), "Action: failed")
	})
	m := s.messages()[0]
	if strings.Join(m.Rcpts, ",") != "good@daemon.example" || m.Notify["good@daemon.example"] != "SUCCESS,FAILURE" {
		t.Errorf("next hop got rcpts %q notify %q", m.Rcpts, m.Notify)
	}
	if !strings.Contains(m.Data, "Received: from client.example (localhost [127.0.0.1])") || !strings.Contains(m.Data, "Subject: relay test") {
		t.Errorf("message at the next hop:\n%s", m.Data)
	}
	box := e.mailbox("root")
	for _, want := range []string{
		"<nosuch@daemon.example>\n    (reason: 550 5.1.1 <nosuch@daemon.example>: Recipient address rejected: User unknown)\n",
		"Original-Envelope-Id: env-1\n",
		"Original-Recipient: RFC822;nosuch@daemon.example\nFinal-Recipient: RFC822; nosuch@daemon.example\n",
		"Remote-MTA: DNS; mx.daemon.example\n",
		"Content-Type: text/rfc822-headers\n",
	} {
		if !strings.Contains(box, want) {
			t.Errorf("DSN lacks %q:\n%s", want, box)
		}
	}
	waitFor(t, "the queue to empty", func() bool { return len(e.queued()) == 0 })
	wantLog(t, e.logText(),
		`: to=<good@daemon\.example>, .*mailer=esmtp, .*relay=mx\.daemon\.example\. \[`+q(ip)+`\], dsn=2\.0\.0, stat=Sent \(`,
		`: to=<nosuch@daemon\.example>, .*dsn=5\.1\.1, reply=550 5\.1\.1 <nosuch@daemon\.example>: Recipient address rejected: User unknown, stat=User unknown`)
}

// TestRelayDaemonQueueRun: the daemon's own periodic queue run (-q1s)
// retries a relayed recipient that got 451 at the first attempt; it
// also runs on the configuration SIGHUP brought.
func TestRelayDaemonQueueRun(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, oneMX("retry.example", ip), "O DeliveryMode=background", "O RelayHosts=127.0.0.1/32")
	s := startSink(t, ip+":25", func(addr string, n int) error {
		if n == 1 {
			return smtpReply(451, "4.3.0", "Try again later")
		}
		return nil
	})
	cmd := startDaemon(t, e.r, "-X", e.log, "-q1s")
	c0, _, _ := waitGreeting(t, e.r.addr())
	c0.Close()
	c2, _ := reloadGreeting(t, e.r, cmd)
	c2.Close()
	if err := sendMail(e.r.addr(), "root@posthorn.test", []string{"user@retry.example"}, strings.ReplaceAll(relayMsg, "\n", "\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the retried message at the next hop", func() bool { return len(s.messages()) == 1 })
	waitFor(t, "the queue to empty", func() bool { return len(e.queued()) == 0 })
	wantLog(t, e.logText(),
		`: to=<user@retry\.example>, .*dsn=4\.3\.0, reply=451 4\.3\.0 Try again later, stat=Deferred: 451 4\.3\.0 Try again later`,
		`: to=<user@retry\.example>, .*relay=mx\.retry\.example\. \[`+q(ip)+`\], dsn=2\.0\.0, stat=Sent \(`)
}
