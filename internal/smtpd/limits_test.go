package smtpd_test

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
)

func TestMaxSessionCommands(t *testing.T) {
	h := start(t, func(c *smtpd.Config) { c.MaxSessionCommands = 5 })
	got := h.run(t, "", "> EHLO c\n"+strings.Repeat("> RSET\n", 4)+"> NOOP\n> QUIT\n")
	want := "421 4.7.0 refhost.example.org Too many commands; closing connection"
	if n := strings.Count(strings.Join(got, "\n"), "250 2.0.0 Reset state"); n != 4 || !contains(got, want) || contains(got, "250 2.0.0 OK") {
		t.Errorf("5 commands allowed, then %q; got\n%s", want, strings.Join(got, "\n"))
	}
	if !strings.Contains(h.logged(), "localhost [127.0.0.1]: session limit reached: MaxSessionCommands=5") {
		t.Errorf("log:\n%s", h.logged())
	}
}

// A client that keeps the session alive with a command now and then
// (each well within Timeout.command) is still sent away after
// MaxSessionTime.
func TestMaxSessionTime(t *testing.T) {
	h := start(t, func(c *smtpd.Config) {
		c.MaxSessionTime = 300 * time.Millisecond
		c.Timeouts.Command = time.Minute
	})
	c := dialFrom(t, "", h.addr)
	defer c.Close()
	br := bufio.NewReader(c)
	var last string
	for i := 0; i < 100 && !strings.HasPrefix(last, "421 "); i++ {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
			_, _ = io.WriteString(c, "NOOP\r\n")
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", last, err)
		}
		last = strings.TrimRight(l, "\r\n")
	}
	if want := "421 4.7.0 refhost.example.org Session too long; closing connection"; last != want {
		t.Errorf("last reply %q, want %q", last, want)
	}
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("connection still open after the 421")
	}
	if !strings.Contains(h.logged(), "localhost [127.0.0.1]: session limit reached: MaxSessionTime=300ms") {
		t.Errorf("log:\n%s", h.logged())
	}
}

// MaxRecipientsPerMessage: the RCPT after the limit gets sendmail's 452
// 4.5.3 (before its address is even parsed), logged once; the message
// goes to the recipients accepted, and the next transaction starts afresh.
func TestMaxRecipients(t *testing.T) {
	h := start(t, func(c *smtpd.Config) { c.MaxRecipients = 2 })
	got := h.run(t, "", helloMail+"> RCPT TO:<alice>\n> RCPT TO:<bob>\n> RCPT TO:<dave>\n> RCPT TO:<bad\n> DATA\n>> x\n> .\n"+
		"> MAIL FROM:<a@b.example>\n> RCPT TO:<dave>\n")
	full := "452 4.5.3 Too many recipients"
	if strings.Count(strings.Join(got, "\n"), full) != 2 || !contains(got, "250 2.1.5 <dave>... Recipient ok") {
		t.Errorf("replies:\n%s", strings.Join(got, "\n"))
	}
	msgs := h.be.Stored()
	if len(msgs) != 1 || len(msgs[0].Env.Rcpts) != 2 {
		t.Fatalf("stored %+v", msgs)
	}
	if n := strings.Count(h.logged(), "too many recipients (MaxRecipientsPerMessage=2)"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, h.logged())
	}
}

// fullDisk is a backend whose queue has no room at all.
type fullDisk struct {
	*smtpdtest.Backend
	mu    sync.Mutex
	asked []int64
}

func (f *fullDisk) EnoughSpace(size int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, size)
	return false
}

// Below MinFreeBlocks every MAIL is refused, with or without SIZE=, as
// sendmail's daemon does; a declared size too big for MaxMessageSize is
// answered first.
func TestNoDiskSpace(t *testing.T) {
	be := &fullDisk{Backend: smtpdtest.Reference()}
	cfg := referenceConfig(t, be, nil)
	cfg.MaxMessageSize = 1000
	srv, err := smtpd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := dialFrom(t, "", serveTCP(t, srv, false))
	defer c.Close()
	out := replay(c, "> EHLO c\n> MAIL FROM:<a@b.example>\n> MAIL FROM:<a@b.example> SIZE=500\n> MAIL FROM:<a@b.example> SIZE=5000\n")
	full := "S: 452 4.4.5 Insufficient disk space; try again later\n"
	if strings.Count(out, full) != 2 || !strings.Contains(out, "S: 552 5.2.3 Message size exceeds fixed maximum message size (1000)\n") {
		t.Errorf("transcript:\n%s", out)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if fmt.Sprint(be.asked) != "[0 500]" {
		t.Errorf("EnoughSpace asked for %v", be.asked)
	}
}
