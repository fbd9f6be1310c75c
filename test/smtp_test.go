package test

import (
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// smtpc is the reference's SMTP client script (a copy in testdata, as the
// captures it made).
const smtpc = "../testdata/reference/sendmail/scripts/smtpc.py"

// transcript replays an smtpc.py script against argv (-bs) or host:port and
// returns the S:/C: lines with dates and queue IDs normalised.
func transcript(t *testing.T, script string, target ...string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	cmd := exec.Command("python3", append([]string{smtpc}, target...)...)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("smtpc: %v\n%s", err, out)
	}
	return normaliseTranscript(string(out))
}

var (
	reDate = regexp.MustCompile(`[A-Z][a-z][a-z], \d+ [A-Z][a-z][a-z] \d{4} \d\d:\d\d:\d\d (GMT|[-+]\d{4})`)
	reQID  = regexp.MustCompile(`\b[0-9A-Za-z]{8}\d{6,}\b`)
)

// normaliseTranscript keeps the S:/C: lines of an smtpc transcript, with
// dates and queue IDs replaced.
func normaliseTranscript(s string) string {
	s = reQID.ReplaceAllString(reDate.ReplaceAllString(s, "DATE"), "QID")
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "S: ") || strings.HasPrefix(l, "C: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n") + "\n"
}

// TestSMTPOnStdin is reference 06-sendmail-bs-mta.txt with root as the
// local user.
func TestSMTPOnStdin(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly")
	script := "> EHLO localclient\n> MAIL FROM:<root>\n> RCPT TO:<root>\n> RCPT TO:<nosuchuser>\n> DATA\n>> Subject: submitted with sendmail -bs\n>>\n>> Body via -bs.\n> .\n> QUIT\n"
	got := transcript(t, script, "--exec", binary(t), "-C", r.cf, "-bs")
	want := `S: 220 posthorn.test ESMTP posthorn 0.1.0; DATE
C: EHLO localclient
S: 250-posthorn.test Hello root@localhost, pleased to meet you
S: 250-ENHANCEDSTATUSCODES
S: 250-PIPELINING
S: 250-EXPN
S: 250-VERB
S: 250-8BITMIME
S: 250-SIZE
S: 250-DSN
S: 250-ETRN
S: 250-DELIVERBY
S: 250 HELP
C: MAIL FROM:<root>
S: 250 2.1.0 <root>... Sender ok
C: RCPT TO:<root>
S: 250 2.1.5 <root>... Recipient ok
C: RCPT TO:<nosuchuser>
S: 550 5.1.1 <nosuchuser>... User unknown
C: DATA
S: 354 End data with <CR><LF>.<CR><LF>
C: Subject: submitted with sendmail -bs
C: 
C: Body via -bs.
C: .
S: 250 2.0.0 QID Message accepted for delivery
C: QUIT
S: 221 2.0.0 posthorn.test closing connection
`
	if got != want {
		t.Errorf("-bs transcript:\n%s\nwant:\n%s", got, want)
	}
	list := run(t, binary(t), "", "-C", r.cf, "-bp")
	if !strings.Contains(list.stdout, "(1 request)") || !strings.Contains(list.stdout, "\t\t\t\t\t <root>\n") {
		t.Errorf("the -bs message is not queued:\n%s", list.stdout)
	}
}

// TestRelayControl: a loopback client outside RelayHosts (127.0.0.66) may
// not relay, nor with the classic tricks; 127.0.0.1 may.
func TestRelayControl(t *testing.T) {
	// The sender's domain is not in any DNS here (TestSenderDomain checks that).
	r := newRoot(t, "O DeliveryMode=queueonly", "O RelayHosts=127.0.0.1/32", "O AcceptUnresolvableDomains=True")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	script := "> EHLO client.example\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<someone@remote.example>\n> RCPT TO:<alice%remote.example@localhost>\n> RCPT TO:<remote.example!alice@localhost>\n> RCPT TO:<@localhost:alice@remote.example>\n> RCPT TO:<root@localhost>\n> QUIT\n"
	host, port, _ := strings.Cut(r.addr(), ":")
	got := transcript(t, script, "--src", "127.0.0.66", host, port)
	for _, want := range []string{
		"S: 550 5.7.1 <someone@remote.example>... Relaying denied. IP name lookup failed [127.0.0.66]\n",
		"S: 550 5.7.1 <alice%remote.example@localhost>... Relaying denied. IP name lookup failed [127.0.0.66]\n",
		"S: 550 5.7.1 <remote.example!alice@localhost>... Relaying denied. IP name lookup failed [127.0.0.66]\n",
		"S: 250 2.1.5 <root@localhost>... Recipient ok\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("transcript lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<@localhost:alice@remote.example>... Recipient ok") {
		t.Errorf("source route relayed:\n%s", got)
	}
	inside := transcript(t, "> EHLO client.example\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<someone@remote.example>\n> QUIT\n", host, port)
	if !strings.Contains(inside, "S: 250 2.1.5 <someone@remote.example>... Recipient ok\n") {
		t.Errorf("127.0.0.1 may relay:\n%s", inside)
	}
}

// TestSwaks: a real client, swaks, gets a message queued.
func TestSwaks(t *testing.T) {
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Skip("swaks not installed")
	}
	r := newRoot(t, "O DeliveryMode=queueonly")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	out, err := exec.Command("swaks", "--server", r.addr(), "--helo", "client.example", "--from", "sender@client.example",
		"--to", "root@localhost", "--header", "Subject: swaks test", "--body", "hello from swaks").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`<-  250 2\.0\.0 \w+ Message accepted for delivery`).Match(out) {
		t.Errorf("swaks transcript:\n%s", out)
	}
	list := run(t, binary(t), "", "-C", r.cf, "-bp")
	if !strings.Contains(list.stdout, "<sender@client.example>") {
		t.Errorf("mailq:\n%s", list.stdout)
	}
}

// TestConcurrentSessions: 50 clients at once, every message acknowledged
// is in the queue.
func TestConcurrentSessions(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			msg := fmt.Sprintf("Subject: concurrent %d\r\n\r\nbody %d\r\n", i, i)
			errs <- sendMail(r.addr(), "sender@client.example", []string{"root@localhost"}, msg)
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	list := run(t, binary(t), "", "-C", r.cf, "-bp")
	if !strings.Contains(list.stdout, "(50 requests)") {
		t.Errorf("mailq after 50 sessions:\n%s", list.stdout)
	}
}

// TestSMTPOnStdinDelivers: with background delivery, a -bs session's
// message is delivered before sendmail exits.
func TestSMTPOnStdinDelivers(t *testing.T) {
	r := newRoot(t)
	script := "> EHLO localclient\n> MAIL FROM:<root>\n> RCPT TO:<root>\n> DATA\n>> Subject: -bs delivered\n>>\n>> body\n> .\n> QUIT\n"
	transcript(t, script, "--exec", binary(t), "-C", r.cf, "-bs")
	if !fileContains(r.path("mail/root"), "Subject: -bs delivered") {
		t.Error("the -bs message was not delivered when sendmail exited")
	}
}

// TestMaxDaemonChildren: with MaxDaemonChildren=1 a second simultaneous
// client is refused with 421 4.3.2 while the first one is served.
func TestMaxDaemonChildren(t *testing.T) {
	r := newRoot(t, "O MaxDaemonChildren=1")
	startDaemon(t, r)
	first, _, greeting := waitGreeting(t, r.addr())
	defer first.Close()
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("first client: %q", greeting)
	}
	second, _, line := waitGreeting(t, r.addr())
	second.Close()
	if !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Errorf("second client: %q", line)
	}
}
