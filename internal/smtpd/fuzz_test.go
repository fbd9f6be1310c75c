package smtpd_test

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
)

var reAccepted = regexp.MustCompile(`(?m)^250 2\.0\.0 (\S+) Message accepted for delivery\r$`)

// fuzzSeeds reach DATA and try the smuggling forms: a line end other than
// CRLF around the final dot must end the session with 421 and store
// nothing.
var fuzzSeeds = []string{
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
	"EHLO c\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<alice>\r\nRCPT TO:<bob> NOTIFY=NEVER\r\nDATA\r\n..dot\r\n.\r\nQUIT\r\n",
	"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice>\r\nDATA\r\nbare\nlf\r\n.\r\n",
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nbare\rcr\r\n.\r\n",
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<bob>\r\nDATA\r\nsmuggled\r\n.\r\n",
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nbody\r\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<bob>\r\nDATA\r\nsmuggled\r\n.\r\n",
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nbody\n.\r\nMAIL FROM:<evil@x>\r\nRCPT TO:<bob>\r\nDATA\r\nsmuggled\r\n.\r\n",
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nbody\r\n\r.\rMAIL FROM:<evil@x>\r\n.\r\n",
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nReceived: a\r\nReceived: b\r\n\r\n" + strings.Repeat("x", 300) + "\r\n.\r\n",
	"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<b@c>\r\nRCPT TO:<bob>\r\nDATA\r\ny\r\n.\r\nQUIT\r\n",
	"EHLO c\r\nVRFY alice\r\nEXPN staff\r\nHELP DSN\r\nETRN x\r\nVERB\r\nRSET\r\nNOOP\r\n",
	"EHLO c\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nSTARTTLS\r\nMAIL FROM:<a\x01b@c>\r\n",
	"GET / HTTP/1.0\r\n",
}

// FuzzSession runs -bs sessions on random input, one line per write once
// the greeting is out, the way an interactive client talks (all of it at
// once would be refused by the pipelining checks before DATA). The server
// must not panic, and the backend must hold exactly the messages the
// client was told were accepted, each ending in a line end and none with a
// CR: nothing half-written, nothing smuggled, nothing lost.
func FuzzSession(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		be := smtpdtest.Reference()
		cfg := referenceConfig(t, be, nil)
		cfg.MaxMessageSize = 200
		cfg.MaxRecipients = 3
		cfg.Timeouts.Command = 5 * time.Second
		srv, err := smtpd.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		stdin, feed := net.Pipe() // synchronous: a write returns once the server read it
		out := &lockedBuffer{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ServeStdio(context.Background(), stdin, out, "root")
			stdin.Close() // unblocks the feeder when the server hung up
		}()
		for _, line := range bytes.SplitAfter(input, []byte("\n")) {
			if len(line) == 0 {
				continue
			}
			if _, err := feed.Write(line); err != nil {
				break
			}
		}
		feed.Close()
		<-done
		acc := reAccepted.FindAllStringSubmatch(out.String(), -1)
		stored := be.Stored()
		if len(acc) != len(stored) {
			t.Fatalf("%d accepted replies, %d messages stored\n%s", len(acc), len(stored), out.String())
		}
		for i, m := range stored {
			if m.Env.ID != acc[i][1] {
				t.Fatalf("accepted %s, stored %s", acc[i][1], m.Env.ID)
			}
			if len(m.Data) > 0 && m.Data[len(m.Data)-1] != '\n' {
				t.Fatalf("stored message does not end with a line end: %q", m.Data)
			}
			if bytes.IndexByte(m.Data, '\r') >= 0 {
				t.Fatalf("stored message holds a CR: %q", m.Data)
			}
			if len(m.Env.Rcpts) == 0 || len(m.Env.Rcpts) > cfg.MaxRecipients {
				t.Fatalf("stored with %d recipients", len(m.Env.Rcpts))
			}
		}
	})
}

// lockedBuffer is a bytes.Buffer the server goroutine writes while the
// test may read it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestFuzzSeedsReachData: the seeds exercise what they are meant to:
// the plain ones store a message, each smuggling one ends the session
// with the 421 for its line end, and the smuggled second MAIL is never
// answered.
func TestFuzzSeedsReachData(t *testing.T) {
	want := []string{
		"250 2.0.0 ID000002 Message accepted for delivery",
		"250 2.0.0 ID000002 Message accepted for delivery",
		"421 4.5.0 Bare linefeed (LF) not allowed",
		"421 4.5.0 Bare carriage return (CR) not allowed",
		"421 4.5.0 Bare linefeed (LF) not allowed",
		"421 4.5.0 Bare linefeed (LF) not allowed",
		"421 4.5.0 Bare linefeed (LF) not allowed",
		"421 4.5.0 Bare carriage return (CR) not allowed",
		"552 5.2.3 Message exceeds maximum fixed size (200)",
		"250 2.0.0 ID000003 Message accepted for delivery",
	}
	for i, w := range want {
		be := smtpdtest.Reference()
		cfg := referenceConfig(t, be, nil)
		cfg.MaxMessageSize = 200
		srv, _ := smtpd.New(cfg)
		stdin, feed := net.Pipe()
		out := &lockedBuffer{}
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = srv.ServeStdio(context.Background(), stdin, out, "root")
			stdin.Close()
		}()
		for _, line := range strings.SplitAfter(fuzzSeeds[i], "\n") {
			if _, err := feed.Write([]byte(line)); err != nil {
				break
			}
		}
		feed.Close()
		<-done
		got := out.String()
		if !strings.Contains(got, w+"\r\n") {
			t.Errorf("seed %d: no %q in\n%s", i, w, got)
		}
		if strings.Contains(got, "<evil@x>... Sender ok") {
			t.Errorf("seed %d: the smuggled MAIL was taken:\n%s", i, got)
		}
	}
}
