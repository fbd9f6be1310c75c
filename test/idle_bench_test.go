package test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIdleSessions: the daemon's resident memory per idle SMTP
// session, as issue 9's probe measured it: IDLE_CONNS (default 2,000)
// clients that connected, were greeted, said EHLO and then sit silent.
// The figure is the growth of the daemon's RSS divided by the sessions,
// read once the daemon has had time to collect garbage.
func BenchmarkIdleSessions(b *testing.B) {
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("IDLE_CONNS")); err == nil && v > 0 {
		n = v
	}
	raiseFileLimit(b, uint64(n)+1000)
	r := newRoot(b)
	cmd := exec.Command(binary(b), "-C", r.cf, "-bD")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	c, _, _ := waitGreeting(b, r.addr())
	c.Close()
	time.Sleep(500 * time.Millisecond)
	base := rssKiB(cmd.Process.Pid)
	open := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	b.ResetTimer()
	// all connect first, as a crowd of clients would: their sessions
	// start (and look up the client's name) at the same time
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", r.addr())
		if err != nil {
			b.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, c)
	}
	for i, c := range open {
		br := bufio.NewReaderSize(c, 512)
		c.SetDeadline(time.Now().Add(60 * time.Second))
		if _, err := br.ReadString('\n'); err != nil {
			b.Fatalf("greeting %d: %v", i, err)
		}
		c.Write([]byte("EHLO client.example\r\n"))
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				b.Fatalf("EHLO %d: %v", i, err)
			}
			if strings.HasPrefix(l, "250 ") {
				break
			}
		}
	}
	b.StopTimer()
	settle := 3 * time.Second
	if v, err := time.ParseDuration(os.Getenv("IDLE_SETTLE")); err == nil {
		settle = v
	}
	time.Sleep(settle) // let the daemon's GC settle
	total := rssKiB(cmd.Process.Pid)
	b.ReportMetric(float64(total-base)/float64(n), "KiB/session")
	b.ReportMetric(float64(total)/1024, "MiB-total")
	b.ReportMetric(0, "ns/op")
}
