package smtpd_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
)

// discardBackend accepts everything and keeps nothing, so that the
// benchmark measures the server.
type discardBackend struct {
	smtpdtest.Backend
	n atomic.Int64
}

func (d *discardBackend) NewID() string { return "ID" + itoa6(d.n.Add(1)) }

func (d *discardBackend) Enqueue(_ context.Context, env *smtpd.Envelope, r io.Reader) (string, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", err
	}
	return env.ID, nil
}

func itoa6(n int64) string {
	b := []byte("000000")
	for i := 5; i >= 0 && n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b)
}

// message is what smtp-source -l 2048 sends: a short header and body
// lines up to 2048 bytes.
func benchMessage() string {
	var b strings.Builder
	b.WriteString("From: <bench@client.example>\r\nTo: <alice@localhost>\r\nSubject: bench\r\n\r\n")
	for b.Len() < 2048 {
		b.WriteString("La de da de da 1.\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

// oneSession runs a complete session with one message, as smtp-source
// does with one connection per message.
func oneSession(addr, msg string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	br := bufio.NewReader(c)
	expect := func(code string) error {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, code) {
				return io.ErrUnexpectedEOF
			}
			if l[3] == ' ' {
				return nil
			}
		}
	}
	steps := []struct{ send, code string }{
		{"", "220"}, {"EHLO client.example\r\n", "250"},
		{"MAIL FROM:<bench@client.example>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n", ""},
		{"", "250"}, {"", "250"}, {"", "354"},
		{msg, "250"}, {"QUIT\r\n", "221"},
	}
	for _, s := range steps {
		if s.send != "" {
			if _, err := io.WriteString(c, s.send); err != nil {
				return err
			}
		}
		if s.code != "" {
			if err := expect(s.code); err != nil {
				return err
			}
		}
	}
	return nil
}

func benchServer(b *testing.B) string {
	be := &discardBackend{Backend: *smtpdtest.Reference()}
	cfg := referenceConfig(b, be, nil)
	srv, err := smtpd.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return serveTCP(b, srv, false)
}

// BenchmarkSessions measures complete one-message sessions per second
// over loopback TCP, 20 clients in parallel (smtp-source -s 20 -l 2048).
func BenchmarkSessions(b *testing.B) {
	addr := benchServer(b)
	msg := benchMessage()
	b.SetParallelism(10) // 2 cores x 10 = 20 concurrent clients
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := oneSession(addr, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sessions/s")
}

// BenchmarkIdleConnMemory opens idle connections (greeted, EHLO done)
// and reports the memory the process gained per connection. The
// client ends of the connections live in the same process and are
// counted too, so the figure is an upper bound for the server.
func BenchmarkIdleConnMemory(b *testing.B) {
	addr := benchServer(b)
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("IDLE_CONNS")); err == nil && v > 0 {
		n = v // e.g. 9000 (the client ends count against the same fd limit)
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	buf := make([]byte, 4096)
	for range b.N {
		for len(conns) < n {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, c)
			_, _ = c.Read(buf) // greeting
			_, _ = io.WriteString(c, "EHLO client.example\r\n")
			readReply(c, buf)
		}
	}
	time.Sleep(200 * time.Millisecond)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := float64((after.HeapInuse+after.StackInuse)-(before.HeapInuse+before.StackInuse)) / float64(n)
	b.ReportMetric(used, "B/idle-conn")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(n), "stackB/idle-conn")
}

func readReply(c net.Conn, buf []byte) {
	var got []byte
	for !strings.Contains(string(got), "250 HELP\r\n") {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		got = append(got, buf[:n]...)
	}
}

// TestConcurrentSessions runs 50 sessions at once; each message must
// arrive once.
func TestConcurrentSessions(t *testing.T) {
	h := start(t, nil)
	msg := benchMessage()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- oneSession(h.addr, msg)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.be.Stored()); n != 50 {
		t.Fatalf("stored %d messages, want 50", n)
	}
}
