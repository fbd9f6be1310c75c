package relay

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/queue/runner"
)

// openCounter wraps a Dial hook and counts, per address dialled, the
// connections open at once, as the client sees them: a connection counts
// from connect() until the client closes it. The client drops a host's
// lock only after closing, so an overlap here is a real one.
type openCounter struct {
	dial  func(ctx context.Context, network, address string) (net.Conn, error)
	mu    sync.Mutex
	open  map[string]int
	most  map[string]int
	total map[string]int
}

func newOpenCounter(dial func(ctx context.Context, network, address string) (net.Conn, error)) *openCounter {
	return &openCounter{dial: dial, open: map[string]int{}, most: map[string]int{}, total: map[string]int{}}
}

func (o *openCounter) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	nc, err := o.dial(ctx, network, address)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.open[address]++
	o.total[address]++
	o.most[address] = max(o.most[address], o.open[address])
	o.mu.Unlock()
	return &countedConn{Conn: nc, o: o, addr: address}, nil
}

func (o *openCounter) counts(address string) (most, total int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.most[address], o.total[address]
}

type countedConn struct {
	net.Conn
	o    *openCounter
	addr string
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.o.mu.Lock()
		c.o.open[c.addr]--
		c.o.mu.Unlock()
	})
	return c.Conn.Close()
}

// singleWorld is a world whose host status is a hoststat.Table in a
// private directory; with single, SingleThreadDelivery is on.
func singleWorld(t *testing.T, single bool, cacheSize int) (*world, *hoststat.Table, *openCounter, string) {
	t.Helper()
	dir := t.TempDir()
	var oc *openCounter
	var tab *hoststat.Table
	w := newWorld(t, func(c *Config) {
		tab = hoststat.Open(dir, 30*time.Minute, c.Now)
		c.HostStatus = tab
		if single {
			c.HostLocks = tab
		}
		c.ConnectionCacheSize = cacheSize
		oc = newOpenCounter(c.Dial)
		c.Dial = oc.Dial
	})
	return w, tab, oc, dir
}

// meetAtData makes the DATA of each message wait (up to wait) until n
// messages have reached DATA: deliveries that can run at once do.
func meetAtData(n int, wait time.Duration) func(int) error {
	var mu sync.Mutex
	arrived := 0
	all := make(chan struct{})
	return func(int) error {
		mu.Lock()
		if arrived++; arrived == n {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(wait):
		}
		return nil
	}
}

// deliverAtOnce runs one delivery per message concurrently.
func deliverAtOnce(w *world, msgs ...*msg) [][]runner.Result {
	res := make([][]runner.Result, len(msgs))
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = w.client.Deliver(context.Background(), m.d)
		}()
	}
	wg.Wait()
	return res
}

// Two deliveries to one host at the same time: without
// SingleThreadDelivery they open two connections at once; with it they
// take turns, and both are sent.
func TestSingleThreadDeliveryNoOverlap(t *testing.T) {
	for _, single := range []bool{false, true} {
		w, _, oc, _ := singleWorld(t, single, -1)
		be := &gsBackend{data: meetAtData(2, 300*time.Millisecond)}
		w.goSMTP("mx.one.example", "127.0.0.21", be, nil)
		w.mx("one.example", "mx.one.example")
		res := deliverAtOnce(w,
			newMsg("one.example", simpleHeader, "first\n", "<a@one.example>"),
			newMsg("one.example", simpleHeader, "second\n", "<b@one.example>"))
		for _, r := range res {
			wantSent(t, r[0], "mx.one.example. [127.0.0.21]")
		}
		most, total := oc.counts("127.0.0.21:2526")
		switch {
		case single && (most != 1 || total != 2):
			t.Errorf("SingleThreadDelivery: %d connections at once (%d in all), want 1 (2)", most, total)
		case !single && most != 2:
			t.Errorf("without SingleThreadDelivery: %d connections at once, want 2", most)
		}
	}
}

// With the connection cache, the second delivery takes its turn and the
// connection the first left idle: one connection in all. The idle
// connection keeps the host locked against other processes until it is
// closed.
func TestSingleThreadDeliveryCachedConnection(t *testing.T) {
	w, _, oc, dir := singleWorld(t, true, 2)
	w.goSMTP("mx.cache.example", "127.0.0.24", &gsBackend{data: meetAtData(2, 100*time.Millisecond)}, nil)
	w.mx("cache.example", "mx.cache.example")
	res := deliverAtOnce(w,
		newMsg("cache.example", simpleHeader, "first\n", "<a@cache.example>"),
		newMsg("cache.example", simpleHeader, "second\n", "<b@cache.example>"))
	for _, r := range res {
		wantSent(t, r[0], "mx.cache.example. [127.0.0.24]")
	}
	if most, total := oc.counts("127.0.0.24:2526"); most != 1 || total != 1 {
		t.Errorf("%d connections at once, %d in all; want the cached one only", most, total)
	}
	other := hoststat.Open(dir, 30*time.Minute, nil) // as another process would
	if _, err := other.Lock("mx.cache.example"); !errors.Is(err, hoststat.ErrLocked) {
		t.Fatalf("lock with the connection idle: %v, want ErrLocked", err)
	}
	var b strings.Builder
	other.Print(&b, false)
	if !strings.Contains(b.String(), "\n*mx.cache.example ") {
		t.Errorf("hoststat does not mark the host locked:\n%s", b.String())
	}
	w.client.Close()
	unlock, err := other.Lock("mx.cache.example")
	if err != nil {
		t.Fatalf("lock after the connection closed: %v", err)
	}
	unlock()
}

// holdLock starts another process (this test binary) that locks host's
// status file under dir as a sendmail with SingleThreadDelivery would,
// and returns a function that makes it let go.
func holdLock(t *testing.T, dir, host string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldHostLock$")
	cmd.Env = append(os.Environ(), "POSTHORN_HOLD_DIR="+dir, "POSTHORN_HOLD_HOST="+host)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "held\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("lock holder said %q", line)
	}
	done := false
	release = func() {
		if !done {
			done = true
			stdin.Close()
			cmd.Wait()
		}
	}
	t.Cleanup(release)
	return release
}

// TestHelperHoldHostLock is the other process of holdLock: it holds the
// lock until its stdin is closed.
func TestHelperHoldHostLock(t *testing.T) {
	dir := os.Getenv("POSTHORN_HOLD_DIR")
	if dir == "" {
		t.Skip("helper process for holdLock")
	}
	unlock, err := hoststat.Open(dir, time.Minute, nil).Lock(os.Getenv("POSTHORN_HOLD_HOST"))
	if err != nil {
		os.Stdout.WriteString("error: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("held\n")
	io.Copy(io.Discard, os.Stdin)
	unlock()
	os.Exit(0)
}

// A host another process holds is not connected to: the next MX takes
// the message; with no other MX the recipient is deferred as sendmail
// does (4.4.5 "Deferred"), and nothing is recorded for the host. Once
// the other process lets go, the host is used again.
func TestSingleThreadDeliveryLockedElsewhere(t *testing.T) {
	w, tab, oc, dir := singleWorld(t, true, -1)
	be1 := &gsBackend{}
	w.goSMTP("mx1.locked.example", "127.0.0.22", be1, nil)
	w.goSMTP("mx2.locked.example", "127.0.0.23", &gsBackend{}, nil)
	w.mx("locked.example", "mx1.locked.example", "mx2.locked.example")
	w.mx("only.example", "mx1.locked.example")
	release := holdLock(t, dir, "mx1.locked.example")

	m := newMsg("locked.example", simpleHeader, "x\n", "<a@locked.example>")
	res := w.deliver(m)
	wantSent(t, res[0], "mx2.locked.example. [127.0.0.23]")
	if strings.Contains(m.verbose.String(), "Connecting to mx1") {
		t.Errorf("connected to the locked host:\n%s", m.verbose.String())
	}

	m = newMsg("only.example", simpleHeader, "x\n", "<a@only.example>")
	res = w.deliver(m)
	st := statOf(t, res[0])
	if !st.Temporary() || st.Enhanced != "4.4.5" || st.Text != "Deferred" || res[0].Relay != "mx1.locked.example." {
		t.Errorf("locked only MX: %d %s %q relay=%q, want 451 4.4.5 Deferred relay=mx1.locked.example.", st.Code, st.Enhanced, st.Text, res[0].Relay)
	}
	if _, total := oc.counts("127.0.0.22:2526"); total != 0 {
		t.Errorf("%d connections to the locked host", total)
	}
	if s, ok := tab.Lookup("mx1.locked.example"); ok {
		t.Errorf("status recorded for a host held elsewhere: %+v", s)
	}

	release()
	res = w.deliver(newMsg("only.example", simpleHeader, "x\n", "<a@only.example>"))
	wantSent(t, res[0], "mx1.locked.example. [127.0.0.22]")
	if len(be1.messages()) != 1 {
		t.Errorf("mx1 got %d messages", len(be1.messages()))
	}
	if s, ok := tab.Lookup("mx1.locked.example"); !ok || s.Down() || s.DSN != "2.0.0" {
		t.Errorf("status after delivery: %+v %v", s, ok)
	}
}

// A connection left idle by one mailer (esmtp) keeps the host's lock; a
// delivery to the same host by a mailer that cannot reuse it (smtp: no
// EHLO rule in common) must not find the host "locked elsewhere" and be
// deferred: the idle connection is this process's own, and is closed.
func TestSingleThreadDeliveryIdleOtherMailer(t *testing.T) {
	w, _, oc, _ := singleWorld(t, true, 2)
	be := &gsBackend{}
	w.goSMTP("mx.mixed.example", "127.0.0.25", be, nil)
	w.mx("mixed.example", "mx.mixed.example")
	wantSent(t, w.deliver(newMsg("mixed.example", simpleHeader, "first\n", "<a@mixed.example>"))[0], "mx.mixed.example. [127.0.0.25]")
	m := newMsg("mixed.example", simpleHeader, "second\n", "<b@mixed.example>")
	m.d.Mailer = "smtp"
	wantSent(t, w.deliver(m)[0], "mx.mixed.example. [127.0.0.25]")
	if most, _ := oc.counts("127.0.0.25:2526"); most != 1 {
		t.Errorf("%d connections at once, want 1", most)
	}
	if len(be.messages()) != 2 {
		t.Errorf("the host got %d messages, want 2", len(be.messages()))
	}
}
