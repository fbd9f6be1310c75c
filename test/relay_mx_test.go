package test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// relayEnv is a private root whose remote domains are answered by a
// private dnsmasq, with the log (-X) of every run in one file.
type relayEnv struct {
	r   *root
	log string
}

func newRelayEnv(t *testing.T, records []string, extra ...string) *relayEnv {
	t.Helper()
	dnsAddr := startDNS(t, records...)
	r := dnsRoot(t, dnsAddr, extra...)
	writeAliases(t, r, "postmaster: root\nMAILER-DAEMON: postmaster\n")
	if got := run(t, binary(t), "", "-C", r.cf, "-bi"); got.code != 0 {
		t.Fatalf("newaliases: %+v", got)
	}
	return &relayEnv{r: r, log: r.path("run/trace.log")}
}

// submit is `sendmail -odi args...` with msg on stdin.
func (e *relayEnv) submit(t *testing.T, msg string, args ...string) result {
	t.Helper()
	return run(t, binary(t), msg, append([]string{"-C", e.r.cf, "-X", e.log, "-odi"}, args...)...)
}

// queueRun is `sendmail -q -v` with more options.
func (e *relayEnv) queueRun(t *testing.T, opts ...string) result {
	t.Helper()
	got := run(t, binary(t), "", append([]string{"-C", e.r.cf, "-X", e.log, "-q", "-v"}, opts...)...)
	if got.code != 0 {
		t.Fatalf("-q -v: exit %d\n%s%s", got.code, got.stdout, got.stderr)
	}
	return got
}

func (e *relayEnv) logText() string {
	data, _ := os.ReadFile(e.log)
	return string(data)
}

func (e *relayEnv) mailq(t *testing.T) string {
	t.Helper()
	return run(t, binary(t), "", "-C", e.r.cf, "-bp").stdout
}

func (e *relayEnv) mailbox(user string) string {
	data, _ := os.ReadFile(e.r.path("mail/" + user))
	return string(data)
}

func (e *relayEnv) queued() []string {
	qfs, _ := filepath.Glob(e.r.path("spool/mqueue/qf*"))
	return qfs
}

// wantLog checks that the log has a line matching each pattern (regexp,
// matched against single lines).
func wantLog(t *testing.T, log string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		re := regexp.MustCompile(p)
		found := false
		for _, l := range strings.Split(log, "\n") {
			if re.MatchString(l) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no log line matches %q in:\n%s", p, log)
		}
	}
}

// q quotes a literal for wantLog patterns.
func q(s string) string { return regexp.QuoteMeta(s) }

const relayMsg = "From: Root <root@posthorn.test>\nTo: someone\nSubject: relay test\nMessage-ID: <relay-test@posthorn.test>\n\nfirst line\n.leading dot\nlast line\n"

// TestRelayMXFallback: the best MX refuses connections, the next one
// takes the message; the log names the host that took it, the queue is
// empty and the message arrived whole.
func TestRelayMXFallback(t *testing.T) {
	dead, alive := hopIP(t), hopIP(t)
	e := newRelayEnv(t, []string{
		"mx-host=fallback.example,mx1.fallback.example,10",
		"mx-host=fallback.example,mx2.fallback.example,20",
		"host-record=mx1.fallback.example," + dead,
		"host-record=mx2.fallback.example," + alive,
	})
	s := startSink(t, alive+":25", nil)
	got := e.submit(t, relayMsg, "-v", "user@fallback.example")
	if got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	for _, want := range []string{
		"user@fallback.example... Connecting to mx1.fallback.example. via esmtp...",
		"user@fallback.example... Connecting to mx2.fallback.example. via esmtp...",
		">>> RCPT To:<user@fallback.example>",
		"user@fallback.example... Sent (",
	} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("-v output lacks %q:\n%s", want, got.stdout)
		}
	}
	msgs := s.messages()
	if len(msgs) != 1 {
		t.Fatalf("sink has %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if m.From != "root@posthorn.test" || strings.Join(m.Rcpts, ",") != "user@fallback.example" {
		t.Errorf("envelope %q -> %q", m.From, m.Rcpts)
	}
	for _, want := range []string{"\r\nSubject: relay test\r\n", "Received: (from root@localhost)", "\r\n\r\nfirst line\r\n.leading dot\r\nlast line\r\n"} {
		if !strings.Contains(m.Data, want) {
			t.Errorf("message at the next hop lacks %q:\n%s", want, m.Data)
		}
	}
	wantLog(t, e.logText(),
		`: to=user@fallback.example, .*mailer=esmtp, .*relay=mx2\.fallback\.example\. \[`+q(alive)+`\], dsn=2\.0\.0, stat=Sent \(`)
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v\n%s", qfs, e.mailq(t))
	}
}

// TestRelayMixedReplies: the next hop refuses one recipient with 550 and
// takes the other: one delivery, one DSN to the sender laid out as
// sendmail's (03-dsn-permanent-failure-5xx-and-host-unknown.txt), with
// the remote reply as its Diagnostic-Code.
func TestRelayMixedReplies(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, oneMX("mixed.example", ip))
	s := startSink(t, ip+":25", func(addr string, n int) error {
		if strings.HasPrefix(addr, "nosuch@") {
			return smtpReply(550, "5.1.1", "<"+addr+">: Recipient address rejected: User unknown in sink")
		}
		return nil
	})
	if got := e.submit(t, relayMsg, "good@mixed.example", "nosuch@mixed.example"); got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	msgs := s.messages()
	if len(msgs) != 1 || strings.Join(msgs[0].Rcpts, ",") != "good@mixed.example" {
		t.Fatalf("sink got %+v, want one message for good@mixed.example", msgs)
	}
	log := e.logText()
	wantLog(t, log,
		`: to=good@mixed\.example, .*relay=mx\.mixed\.example\. \[`+q(ip)+`\], dsn=2\.0\.0, stat=Sent \(`,
		`: to=nosuch@mixed\.example, .*relay=mx\.mixed\.example\. \[`+q(ip)+`\], dsn=5\.1\.1, reply=550 5\.1\.1 <nosuch@mixed\.example>: Recipient address rejected: User unknown in sink, stat=User unknown`,
		`: DSN: User unknown`)
	box := e.mailbox("root")
	for _, want := range []string{
		"From MAILER-DAEMON ",
		"Subject: Returned mail: see transcript for details\n",
		"   ----- The following addresses had permanent fatal errors -----\nnosuch@mixed.example\n" +
			"    (reason: 550 5.1.1 <nosuch@mixed.example>: Recipient address rejected: User unknown in sink)\n",
		"   ----- Transcript of session follows -----\n... while talking to mx.mixed.example.:\n",
		"<<< 550 5.1.1 <nosuch@mixed.example>: Recipient address rejected: User unknown in sink\n" +
			"550 5.1.1 nosuch@mixed.example... User unknown\n",
		"Final-Recipient: RFC822; nosuch@mixed.example\nX-Actual-Recipient: rfc822; nosuch@mixed.example\n" +
			"Action: failed\nStatus: 5.1.1\nRemote-MTA: DNS; mx.mixed.example\n" +
			"Diagnostic-Code: SMTP; 550 5.1.1 <nosuch@mixed.example>: Recipient address rejected: User unknown in sink\n",
		"Content-Type: message/rfc822\n",
		"Subject: relay test\n",
	} {
		if !strings.Contains(box, want) {
			t.Errorf("DSN lacks %q:\n%s", want, box)
		}
	}
	if strings.Contains(box, "good@mixed.example\nAction") {
		t.Errorf("DSN reports the delivered recipient:\n%s", box)
	}
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v\n%s", qfs, e.mailq(t))
	}
}

// TestRelayDeferredThenSent: 451 on the first attempt defers the
// recipient (the job stays, mailq says why); the next queue run delivers.
func TestRelayDeferredThenSent(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, oneMX("later.example", ip))
	s := startSink(t, ip+":25", func(addr string, n int) error {
		if n == 1 {
			return smtpReply(451, "4.3.0", "Try again later")
		}
		return nil
	})
	if got := e.submit(t, relayMsg, "user@later.example"); got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	if n := len(s.messages()); n != 0 {
		t.Fatalf("sink has %d messages after the 451", n)
	}
	wantLog(t, e.logText(),
		`: to=user@later\.example, .*relay=mx\.later\.example\. \[`+q(ip)+`\], dsn=4\.3\.0, reply=451 4\.3\.0 Try again later, stat=Deferred: 451 4\.3\.0 Try again later`)
	if qfs := e.queued(); len(qfs) != 1 {
		t.Fatalf("%d jobs queued after the 451, want 1", len(qfs))
	}
	if list := e.mailq(t); !strings.Contains(list, "(Deferred: 451 4.3.0 Try again later)") || !strings.Contains(list, "\t user@later.example\n") {
		t.Errorf("mailq:\n%s", list)
	}
	got := e.queueRun(t)
	if !strings.Contains(got.stdout, "user@later.example... Sent (") {
		t.Errorf("-q -v:\n%s", got.stdout)
	}
	if msgs := s.messages(); len(msgs) != 1 || !strings.Contains(msgs[0].Data, "Subject: relay test") {
		t.Fatalf("sink got %+v after the queue run", msgs)
	}
	wantLog(t, e.logText(), `: to=user@later\.example, .*dsn=2\.0\.0, stat=Sent \(`)
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v", qfs)
	}
	if box := e.mailbox("root"); box != "" {
		t.Errorf("the sender got mail:\n%s", box)
	}
}

// TestRelayDNSAnswers: a domain that does not exist and one with a null
// MX bounce at once in sendmail's words; a domain with only an address
// record is its own mail exchanger.
func TestRelayDNSAnswers(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, []string{
		"mx-host=nullmx.example,.,0",
		"host-record=implicit.example," + ip,
	})
	s := startSink(t, ip+":25", nil)
	got := e.submit(t, relayMsg, "-v", "user@nxdomain.example", "user@nullmx.example", "user@implicit.example")
	if got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	if msgs := s.messages(); len(msgs) != 1 || strings.Join(msgs[0].Rcpts, ",") != "user@implicit.example" {
		t.Fatalf("sink got %+v, want one message for user@implicit.example", msgs)
	}
	wantLog(t, e.logText(),
		`: to=user@implicit\.example, .*relay=implicit\.example\. \[`+q(ip)+`\], dsn=2\.0\.0, stat=Sent \(`,
		`: to=user@nxdomain\.example, .*mailer=esmtp, .*relay=nxdomain\.example, dsn=5\.1\.2, stat=Host unknown \(Name server: nxdomain\.example: host not found\)`,
		`: to=user@nullmx\.example, .*mailer=esmtp, .*relay=nullmx\.example, dsn=5\.1\.10, stat=Service unavailable`)
	box := e.mailbox("root")
	for _, want := range []string{
		"Subject: Returned mail: see transcript for details\n",
		"user@nxdomain.example\n    (reason: 550 Host unknown)\n",
		"550 5.1.2 user@nxdomain.example... Host unknown (Name server: nxdomain.example: host not found)\n",
		"Final-Recipient: RFC822; user@nxdomain.example\nX-Actual-Recipient: rfc822; user@nxdomain.example\n" +
			"Action: failed\nStatus: 5.1.2\nRemote-MTA: DNS; nxdomain.example\nDiagnostic-Code: SMTP; 550 Host unknown\n",
		"user@nullmx.example\n    (reason: 556 Host does not accept mail: MX 0 .)\n",
		"Final-Recipient: RFC822; user@nullmx.example\nX-Actual-Recipient: rfc822; user@nullmx.example\n" +
			"Action: failed\nStatus: 5.1.10\nRemote-MTA: DNS; nullmx.example\n" +
			"Diagnostic-Code: SMTP; 556 Host does not accept mail: MX 0 .\n",
	} {
		if !strings.Contains(box, want) {
			t.Errorf("DSN lacks %q:\n%s", want, box)
		}
	}
	if n := strings.Count(box, "\nFrom MAILER-DAEMON ") + boolInt(strings.HasPrefix(box, "From MAILER-DAEMON ")); n != 1 {
		t.Errorf("%d DSNs, want one for both failures:\n%s", n, box)
	}
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v\n%s", qfs, e.mailq(t))
	}
}

// TestRelayHostStatus: with HostStatusDirectory a host that refused the
// connection is recorded (hoststat shows it) and is not tried again by
// the next run within Timeout.hoststatus, even though it now listens;
// once the status has expired the run connects and delivers.
func TestRelayHostStatus(t *testing.T) {
	ip := hopIP(t)
	e := newRelayEnv(t, oneMX("status.example", ip), "O HostStatusDirectory=HOSTSTAT")
	hsDir := e.r.path("hoststat")
	if err := os.Mkdir(hsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	cf, _ := os.ReadFile(e.r.cf)
	os.WriteFile(e.r.cf, []byte(strings.ReplaceAll(string(cf), "HOSTSTAT", hsDir)), 0o644)

	if got := e.submit(t, relayMsg, "user@status.example"); got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}
	wantLog(t, e.logText(),
		`: to=user@status\.example, .*relay=mx\.status\.example\. \[`+q(ip)+`\], dsn=4\.4\.1, stat=Deferred: Connection refused by mx\.status\.example\.`)
	if _, err := os.Stat(filepath.Join(hsDir, "example./status./mx")); err != nil {
		t.Errorf("no host status file: %v", err)
	}
	hs := run(t, binary(t), "", "-C", e.r.cf, "-bh")
	if !regexp.MustCompile(`(?m)^ mx\.status\.example +\d\d:\d\d:\d\d Deferred: Connection refu`).MatchString(hs.stdout) {
		t.Errorf("hoststat:\n%s%s", hs.stdout, hs.stderr)
	}

	s := startSink(t, ip+":25", nil)
	before := strings.Count(e.logText(), "\n")
	got := e.queueRun(t)
	if n := s.connections(); n != 0 {
		t.Errorf("the host marked down was connected to %d times within Timeout.hoststatus", n)
	}
	if strings.Contains(got.stdout, "Connecting to mx.status.example.") {
		t.Errorf("-q -v connected to the host marked down:\n%s", got.stdout)
	}
	after := strings.Join(strings.Split(e.logText(), "\n")[before:], "\n")
	wantLog(t, after, `: to=user@status\.example, .*relay=mx\.status\.example\., dsn=4\.4\.1, stat=Deferred: Connection refused by mx\.status\.example\.`)
	if len(e.queued()) != 1 {
		t.Fatalf("job gone after the skipped run")
	}

	got = e.queueRun(t, "-O", "Timeout.hoststatus=0")
	if !strings.Contains(got.stdout, "user@status.example... Sent (") || len(s.messages()) != 1 {
		t.Errorf("after the status expired: %d messages at the host\n%s", len(s.messages()), got.stdout)
	}
	hs = run(t, binary(t), "", "-C", e.r.cf, "-bh")
	if !regexp.MustCompile(`(?m)^ mx\.status\.example +\d\d:\d\d:\d\d 250 `).MatchString(hs.stdout) {
		t.Errorf("hoststat after delivery:\n%s", hs.stdout)
	}
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v", qfs)
	}

	// The local mailer's outcome is the entry "local", as sendmail keeps
	// it for Debian's mail.local -l.
	if got := e.submit(t, relayMsg, "root"); got.code != 0 {
		t.Fatalf("-odi root: %+v", got)
	}
	hs = run(t, binary(t), "", "-C", e.r.cf, "-bh")
	if !regexp.MustCompile(`(?m)^ local +\d\d:\d\d:\d\d 250 2\.1\.5 root Ok$`).MatchString(hs.stdout) {
		t.Errorf("hoststat after a local delivery:\n%s", hs.stdout)
	}
}
