package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The SMTP server through the binary: the Received "for" clause, HELO
// argument checks, free space, the session limits and the command
// timeout, as a client and an admin see them.

// smtpSession is a client that sends one command at a time and collects
// each reply (all lines of a multi-line one).
type smtpSession struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialSMTP(t *testing.T, addr string) (*smtpSession, string) {
	t.Helper()
	c, r, greeting := waitGreeting(t, addr)
	t.Cleanup(func() { c.Close() })
	return &smtpSession{t: t, c: c, r: r}, strings.TrimRight(greeting, "\r\n")
}

// reply reads one reply; "" when the server closed the connection.
func (s *smtpSession) reply() string {
	var lines []string
	for {
		s.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		l, err := s.r.ReadString('\n')
		if err != nil {
			return strings.Join(lines, "\n")
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return strings.Join(lines, "\n")
		}
	}
}

// do sends a command (or DATA text, given with its CRLFs) and returns
// the reply.
func (s *smtpSession) do(cmd string) string {
	if !strings.HasSuffix(cmd, "\r\n") {
		cmd += "\r\n"
	}
	if _, err := s.c.Write([]byte(cmd)); err != nil {
		s.t.Fatalf("send %q: %v", cmd, err)
	}
	return s.reply()
}

// queuedFiles returns the qf files of the queue, by name.
func queuedFiles(t *testing.T, r *root) map[string]string {
	t.Helper()
	out := map[string]string{}
	names, _ := filepath.Glob(r.path("spool/mqueue/qf*"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = string(b)
	}
	return out
}

// TestReceivedForOneRecipient is issue 8's session: a refused RCPT, then
// one local recipient spelt two ways. The envelope has one recipient, so
// the Received header names it; the message had no From:, so it gets the
// envelope sender's.
func TestReceivedForOneRecipient(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly", "Cwacc.test")
	writeAliases(t, r, "accalice: root\n")
	if got := run(t, linkAs(t, "newaliases"), "", "-C", r.cf); got.code != 0 {
		t.Fatalf("newaliases: %+v", got)
	}
	startDaemon(t, r)
	s, _ := dialSMTP(t, r.addr())
	for _, step := range []struct{ cmd, want string }{
		{"EHLO client.example", "250 HELP"},
		{"MAIL FROM:<sender@client.example>", "250 2.1.0 <sender@client.example>... Sender ok"},
		{"RCPT TO:<nosuchuser@acc.test>", "550 5.1.1 <nosuchuser@acc.test>... User unknown"},
		{"RCPT TO:<accalice@acc.test>", "250 2.1.5 <accalice@acc.test>... Recipient ok"},
		{"RCPT TO:<AccAlice@ACC.TEST>", "250 2.1.5 <accalice@acc.test>... Recipient ok"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
		{"Subject: no From header\r\n\r\nbody\r\n.\r\n", " Message accepted for delivery"},
	} {
		if got := s.do(step.cmd); !strings.HasSuffix(got, step.want) {
			t.Fatalf("%s: %q, want …%q", step.cmd, got, step.want)
		}
	}
	s.do("QUIT")
	qfs := queuedFiles(t, r)
	if len(qfs) != 1 {
		t.Fatalf("%d jobs queued", len(qfs))
	}
	for name, qf := range qfs {
		id := strings.TrimPrefix(name, "qf")
		want := regexp.MustCompile(`(?m)^H\?\?Received: from client\.example \(\S* ?\[127\.0\.0\.1\]\)\n\tby posthorn\.test \(posthorn [^)]*\) with ESMTP id ` + id + `\n\tfor <accalice@acc\.test>; `)
		if !want.MatchString(qf) {
			t.Errorf("qf lacks Received ... for <accalice@acc.test>:\n%s", qf)
		}
		if !strings.Contains(qf, "\nH?F?From: sender@client.example\n") {
			t.Errorf("qf lacks From: sender@client.example:\n%s", qf)
		}
		if strings.Count(qf, "\nR") != 1 {
			t.Errorf("want one recipient:\n%s", qf)
		}
	}
}

// TestHeloArgumentChecks: what sendmail's srvrsmtp.c refuses and takes.
func TestHeloArgumentChecks(t *testing.T) {
	r := newRoot(t)
	startDaemon(t, r)
	s, _ := dialSMTP(t, r.addr())
	for _, step := range []struct{ cmd, want string }{
		{"ehlo", "501 5.0.0 ehlo requires domain address"},
		{"HELO client.example junk", "501 5.0.0 Invalid domain name"},
		{"HELO bad<name>", "501 5.0.0 Invalid domain name"},
		{"HELO " + strings.Repeat("h", 257), "501 5.0.0 Invalid domain name"},
		{"HELO [IPv6:::1]", "250 posthorn.test Hello "},
		{"HELO client.example.  ", "250 posthorn.test Hello "},
	} {
		if got := s.do(step.cmd); !strings.HasPrefix(got, step.want) {
			t.Errorf("%.40s: %q, want %q…", step.cmd, got, step.want)
		}
	}
}

// TestSizeAgainstFreeSpace replays reference 01-smtp-size-unlimited: with
// no MaxMessageSize, SIZE=99999999999 is still more than the queue's disk
// has (452 4.4.5); then MinFreeBlocks above the free blocks refuses every
// MAIL and every local submission, and nothing is queued.
func TestSizeAgainstFreeSpace(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly")
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.path("spool/mqueue"), &st); err != nil {
		t.Fatal(err)
	}
	if int64(st.Bavail)*st.Frsize >= 99999999999 {
		t.Skipf("the queue's file system has %d bytes free: SIZE=99999999999 fits", int64(st.Bavail)*st.Frsize)
	}
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	script := readRef(t, "scripts/smtp/01-smtp-size-unlimited.script")
	host, port, _ := strings.Cut(r.addr(), ":")
	got := transcript(t, script, host, port)
	want := normaliseTranscript(strings.ReplaceAll(readRef(t, "01-smtp-size-unlimited.txt"), "refhost.example.org", "posthorn.test"))
	_, got, _ = strings.Cut(got, "\n") // the greetings differ by design
	if _, want, _ = strings.Cut(want, "\n"); got != want {
		t.Errorf("transcript:\n%s\nsendmail's:\n%s", got, want)
	}

	low := newRoot(t, "O DeliveryMode=queueonly", fmt.Sprintf("O MinFreeBlocks=%d", int64(st.Bavail)+1<<30))
	logf := filepath.Join(t.TempDir(), "mail.log")
	startDaemon(t, low, "-X", logf)
	s, _ := dialSMTP(t, low.addr())
	s.do("EHLO client.example")
	if got := s.do("MAIL FROM:<sender@client.example>"); got != "452 4.4.5 Insufficient disk space; try again later" {
		t.Errorf("MAIL below MinFreeBlocks: %q", got)
	}
	sub := run(t, binary(t), "Subject: x\n\nbody\n", "-C", low.cf, "-odq", "root")
	if sub.code != 75 || !strings.Contains(sub.stderr+sub.stdout, "Insufficient disk space") {
		t.Errorf("local submission below MinFreeBlocks: exit %d %q %q", sub.code, sub.stdout, sub.stderr)
	}
	if n := len(queuedFiles(t, low)); n != 0 {
		t.Errorf("%d jobs queued below MinFreeBlocks", n)
	}
	if !fileContains(logf, "low on space (SMTP-DAEMON needs 0 bytes + ") {
		data, _ := os.ReadFile(logf)
		t.Errorf("no low-on-space log line:\n%s", data)
	}
}

func readRef(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../testdata/reference/sendmail/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestIdleClientDropped: a client silent for Timeout.command is sent
// sendmail's 421 and the connection is closed, with sendmail's log line.
func TestIdleClientDropped(t *testing.T) {
	r := newRoot(t, "O Timeout.command=1s")
	logf := filepath.Join(t.TempDir(), "mail.log")
	startDaemon(t, r, "-X", logf)
	s, _ := dialSMTP(t, r.addr())
	s.do("EHLO client.example")
	got := s.reply() // nothing sent: the server speaks when the timeout expires
	if !regexp.MustCompile(`^421 4\.4\.1 posthorn\.test Lost input channel from \S* ?\[127\.0\.0\.1\]$`).MatchString(got) {
		t.Errorf("after an idle second: %q", got)
	}
	if more := s.reply(); more != "" {
		t.Errorf("connection still open: %q", more)
	}
	waitFor(t, "the timeout log line", func() bool {
		return fileContains(logf, "timeout waiting for input from ") && fileContains(logf, " during server cmd read")
	})
}

// TestSessionLimits: the defaults refuse the 1001st recipient; the
// session limits end a session with 421.
func TestSessionLimits(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly", "O MaxSessionCommands=1005")
	startDaemon(t, r)
	s, _ := dialSMTP(t, r.addr())
	s.do("EHLO client.example")
	s.do("MAIL FROM:<sender@client.example>")
	var b strings.Builder
	for i := 0; i < 1001; i++ {
		fmt.Fprintf(&b, "RCPT TO:<someone%d@remote.example>\r\n", i)
	}
	if _, err := s.c.Write([]byte(b.String())); err != nil { // pipelined, as a client may
		t.Fatal(err)
	}
	var last string
	for i := 0; i < 1001; i++ {
		if last = s.reply(); i < 1000 && !strings.HasSuffix(last, "... Recipient ok") {
			t.Fatalf("RCPT %d: %q", i, last)
		}
	}
	if last != "452 4.5.3 Too many recipients" {
		t.Errorf("RCPT 1001: %q", last)
	}
	// 1003 commands so far; the 1005th is the last one served
	s.do("RSET")
	s.do("NOOP")
	if got := s.reply(); got != "421 4.7.0 posthorn.test Too many commands; closing connection" {
		t.Errorf("after MaxSessionCommands: %q", got)
	}
}

// TestClientGoneInData: a client that disconnects in the middle of a
// message has nothing queued.
func TestClientGoneMidData(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly")
	startDaemon(t, r)
	s, _ := dialSMTP(t, r.addr())
	s.do("EHLO client.example")
	s.do("MAIL FROM:<sender@client.example>")
	s.do("RCPT TO:<root@localhost>")
	s.do("DATA")
	s.c.Write([]byte("Subject: cut short\r\n\r\nthe first line\r\n"))
	s.c.(*net.TCPConn).CloseWrite()
	if got := s.reply(); got != "" {
		t.Errorf("reply to a message cut short: %q", got)
	}
	if n := len(queuedFiles(t, r)); n != 0 {
		t.Errorf("%d jobs queued from a message cut short", n)
	}
}
