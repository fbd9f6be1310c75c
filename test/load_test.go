package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 14, faults: thousands of idle connections, slowloris clients and
// the connection limits, through the daemon.

// floodConns is the number of idle connections: POSTHORN_FLOOD_CONNS, else
// the 10,000.
func floodConns() int {
	if n, err := strconv.Atoi(os.Getenv("POSTHORN_FLOOD_CONNS")); err == nil && n > 0 {
		return n
	}
	return 10000
}

// fileLimit raises this process's RLIMIT_NOFILE (both limits, as root may)
// to n, or as far as it goes, and returns what it got. The daemon inherits
// it (and Go raises its own soft limit to the hard one).
func fileLimit(n uint64) uint64 {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur >= n {
		return lim.Cur
	}
	want := syscall.Rlimit{Cur: n, Max: max(n, lim.Max)}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	return lim.Cur
}

// procLimit is the "Max open files" soft limit of a process.
func procLimit(pid int) string {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			if f := strings.Fields(l); len(f) >= 4 {
				return f[3]
			}
		}
	}
	return "?"
}

// idleClient connects from src (or any address), reads the greeting and
// says EHLO; it returns the connection and the greeting line.
func idleClient(addr, src string) (net.Conn, *bufio.Reader, string, error) {
	d := net.Dialer{Timeout: 20 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp4", addr)
	if err != nil {
		return nil, nil, "", err
	}
	br := bufio.NewReaderSize(c, 512)
	c.SetDeadline(time.Now().Add(60 * time.Second))
	g, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(g, "220 ") {
		c.Close()
		return nil, nil, g, err
	}
	c.Write([]byte("EHLO idle.example\r\n"))
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, nil, g, err
		}
		if strings.HasPrefix(l, "250 ") {
			break
		}
	}
	c.SetDeadline(time.Time{})
	return c, br, g, nil
}

// slowClient is a slowloris: after its opening lines it sends drip every
// interval until the server closes the connection (or bound passes). It
// returns the server's last line and how long the drip lasted.
func slowClient(addr string, opening []string, drip string, interval, bound time.Duration) (string, time.Duration) {
	c, br, _, err := idleClient(addr, "")
	if err != nil {
		return "connect: " + err.Error(), 0
	}
	defer c.Close()
	for _, l := range opening {
		c.Write([]byte(l + "\r\n"))
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, err := br.ReadString('\n'); err != nil {
			return "opening: " + err.Error(), 0
		}
	}
	start := time.Now()
	lines := make(chan string, 8)
	go func() {
		defer close(lines)
		c.SetReadDeadline(time.Now().Add(bound))
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimRight(l, "\r\n")
		}
	}()
	last := ""
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return last, time.Since(start)
			}
			last = l
		case <-t.C:
			c.Write([]byte(drip))
		}
	}
}

// TestIdleConnectionFlood: the daemon holds 10,000 idle sessions (past
// EHLO, silent) with no MaxDaemonChildren; meanwhile slowloris clients in
// DATA are dropped by Timeout.datablock and the DATA phase's bound, a
// client gets its message through, and MaxMessageSize and
// MaxHeadersLength still hold. The memory the sessions cost is reported.
func TestIdleConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("connection flood skipped in -short mode")
	}
	n := floodConns()
	got := fileLimit(uint64(n) + 2000)
	if got < uint64(n)+200 {
		t.Logf("RLIMIT_NOFILE is %d here: %d connections instead of %d", got, got-500, n)
		n = int(got) - 500
	}
	r := newRoot(t, "O DeliveryMode=queueonly", "O Timeout.command=5m", "O Timeout.datablock=2s", "O Timeout.datafinal=8s",
		"O MaxMessageSize=100000")
	daemon := startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	time.Sleep(300 * time.Millisecond)
	base := rssKiB(daemon.Process.Pid)

	start := time.Now()
	conns := make([]net.Conn, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				c, _, g, err := idleClient(r.addr(), "")
				if err != nil {
					mu.Lock()
					failed = append(failed, fmt.Sprintf("%d: %v %q", i, err, g))
					mu.Unlock()
					continue
				}
				conns[i] = c
			}
		}(w)
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if len(failed) > 0 {
		t.Fatalf("%d of %d idle clients were not served, e.g. %v", len(failed), n, failed[0])
	}
	opened := time.Since(start)
	time.Sleep(2 * time.Second) // the daemon's GC settles
	rss := rssKiB(daemon.Process.Pid)
	perConn := float64(rss-base) / float64(n)
	t.Logf("%d idle sessions open in %s; daemon RSS %d MiB (%d MiB before), %.1f KiB per session; file limit %s",
		n, opened.Round(time.Millisecond), rss/1024, base/1024, perConn, procLimit(daemon.Process.Pid))
	if perConn > 64 {
		t.Errorf("an idle session costs %.1f KiB", perConn)
	}

	// Slowloris clients in DATA, while the crowd sits there.
	type slow struct {
		name     string
		drip     string
		interval time.Duration
	}
	kinds := []slow{
		{"a byte every 500 ms of one line", "x", 500 * time.Millisecond},
		{"a line every 500 ms", "line of a message that never ends\r\n", 500 * time.Millisecond},
	}
	type outcome struct {
		kind, last string
		took       time.Duration
	}
	results := make(chan outcome, 40)
	var swg sync.WaitGroup
	for i := 0; i < 40; i++ {
		k := kinds[i%len(kinds)]
		swg.Add(1)
		go func() {
			defer swg.Done()
			last, took := slowClient(r.addr(), []string{"MAIL FROM:<slow@client.example>", "RCPT TO:<root@localhost>", "DATA"}, k.drip, k.interval, 90*time.Second)
			results <- outcome{k.name, last, took}
		}()
	}

	// A normal client meanwhile, and the size limits.
	for i := 0; i < 10; i++ {
		rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>",
			"DATA", bodyOf(fmt.Sprintf("normal-%d", i), 2000)+".", "QUIT")
		if !strings.HasPrefix(rs[4], "250 2.0.0 ") {
			t.Errorf("normal client, message %d, during the flood: %q", i, rs[4])
		}
	}
	rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>",
		"DATA", bodyOf("too-big", 200000)+".", "QUIT")
	if rs[4] != "552 5.2.3 Message exceeds maximum fixed size (100000)" {
		t.Errorf("MaxMessageSize during the flood: %q", rs[4])
	}
	rs = runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>",
		"DATA", "X-Big: "+strings.Repeat("h", 40000)+"\r\n\r\nbody\r\n.", "QUIT")
	if rs[4] != "552 5.6.0 Headers too large (32768 max)" {
		t.Errorf("MaxHeadersLength during the flood: %q", rs[4])
	}

	swg.Wait()
	close(results)
	longest := map[string]time.Duration{}
	for o := range results {
		if o.last != "421 4.4.1 posthorn.test Lost input channel from localhost [127.0.0.1]" {
			t.Errorf("slowloris (%s): last line %q after %s", o.kind, o.last, o.took.Round(time.Millisecond))
		}
		longest[o.kind] = max(longest[o.kind], o.took)
	}
	for _, k := range kinds {
		t.Logf("slowloris %q dropped after at most %s", k.name, longest[k.name].Round(100*time.Millisecond))
	}
	qfs := queuedFiles(t, r)
	if len(qfs) != 10 {
		t.Errorf("%d jobs queued, want the 10 normal messages", len(qfs))
	}
	for _, qf := range qfs {
		if strings.Contains(qf, "slow@client.example") {
			t.Errorf("a slowloris message was queued")
		}
	}
	t.Logf("peak RSS %d MiB", vmHWM(daemon.Process.Pid)/1024)
}

// TestConnectionLimitsHold: MaxDaemonChildren full of idle clients
// refuses the next one with 421 4.3.2, and Timeout.command frees the
// places (an idle client and one dripping a command byte by byte are
// both dropped), after which a client is served again. ClientRate: and
// ClientConn: in the access file bound one client without touching
// others; ConnectionRateThrottle slows a burst down without refusing it.
func TestConnectionLimitsHold(t *testing.T) {
	if testing.Short() {
		t.Skip("connection limits skipped in -short mode")
	}
	const m = 300
	fileLimit(m + 1000)
	r := newRoot(t, fmt.Sprintf("O MaxDaemonChildren=%d", m), "O Timeout.command=3s", "O DeliveryMode=queueonly")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	time.Sleep(200 * time.Millisecond) // the probe's session ends
	var idle []net.Conn
	for i := 0; i < m; i++ {
		c, _, g, err := idleClient(r.addr(), "")
		if err != nil {
			t.Fatalf("client %d of %d: %v %q", i, m, err, g)
		}
		idle = append(idle, c)
	}
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	over, _, g := waitGreeting(t, r.addr())
	over.Close()
	if !strings.HasPrefix(g, "421 4.3.2 ") {
		t.Errorf("client %d with MaxDaemonChildren=%d: %q", m+1, m, g)
	}
	// The crowd is dropped by Timeout.command; then a client is served.
	start := time.Now()
	var dropped int
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(60 * time.Second))
		l, _ := bufio.NewReader(c).ReadString('\n')
		if strings.HasPrefix(l, "421 4.4.1 ") {
			dropped++
		}
	}
	if dropped != m {
		t.Errorf("%d of %d idle clients were dropped with 421 4.4.1", dropped, m)
	}
	t.Logf("%d idle clients dropped by Timeout.command=3s within %s", dropped, time.Since(start).Round(100*time.Millisecond))
	waitFor(t, "a free place", func() bool {
		c, _, g, _ := idleClient(r.addr(), "")
		if c != nil {
			c.Close()
		}
		return c != nil && strings.HasPrefix(g, "220 ")
	})
	if last, took := slowClient(r.addr(), nil, "N", 500*time.Millisecond, 60*time.Second); !strings.HasPrefix(last, "421 4.4.1 ") {
		t.Errorf("a client dripping a command: %q after %s", last, took)
	} else {
		t.Logf("a client dripping a command byte every 500 ms was dropped after %s", took.Round(100*time.Millisecond))
	}

	// Per-client limits from the access file.
	r2 := newRoot(t, "O DeliveryMode=queueonly", "O ConnectionRateWindowSize=1m")
	if err := os.WriteFile(r2.path("etc/access"), []byte("ClientRate:127.0.0.5 3\nClientConn:127.0.0.7 2\nClientRate:127.0.0.1 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, r2)
	c, _, _ = waitGreeting(t, r2.addr())
	c.Close()
	greet := func(src string) (net.Conn, string) {
		c, _, g, err := idleClient(r2.addr(), src)
		if err != nil {
			return nil, strings.TrimRight(g, "\r\n")
		}
		return c, strings.TrimRight(g, "\r\n")
	}
	for i := 1; i <= 4; i++ {
		c, g := greet("127.0.0.5")
		if c != nil {
			c.Close()
		}
		want := "220 "
		if i == 4 {
			want = "421 4.3.2 Connection rate limit exceeded."
		}
		if !strings.HasPrefix(g, want) {
			t.Errorf("ClientRate:127.0.0.5 3, connection %d: %q", i, g)
		}
	}
	if c, g := greet("127.0.0.6"); c == nil {
		t.Errorf("another client while 127.0.0.5 is over its rate: %q", g)
	} else {
		c.Close()
	}
	a, _ := greet("127.0.0.7")
	b, _ := greet("127.0.0.7")
	if third, g := greet("127.0.0.7"); third != nil || g != "421 4.3.2 Too many open connections." {
		t.Errorf("ClientConn:127.0.0.7 2, third at once: %q", g)
	}
	if a != nil {
		a.Close()
	}
	waitFor(t, "a place for 127.0.0.7 after one left", func() bool {
		c, g := greet("127.0.0.7")
		if c != nil {
			c.Close()
		}
		return strings.HasPrefix(g, "220 ")
	})
	if b != nil {
		b.Close()
	}

	// ConnectionRateThrottle: a burst of 15 with a rate of 5 per second
	// is slowed down, none refused.
	r3 := newRoot(t, "O ConnectionRateThrottle=5")
	startDaemon(t, r3)
	time.Sleep(1100 * time.Millisecond)
	c, _, _ = waitGreeting(t, r3.addr())
	c.Close()
	time.Sleep(1100 * time.Millisecond)
	var bwg sync.WaitGroup
	var greeted [15]time.Duration
	burst := time.Now()
	for i := range greeted {
		bwg.Add(1)
		go func() {
			defer bwg.Done()
			if c, _, g, _ := idleClient(r3.addr(), ""); c != nil && strings.HasPrefix(g, "220 ") {
				greeted[i] = time.Since(burst)
				c.Close()
			}
		}()
	}
	bwg.Wait()
	var last time.Duration
	for i, d := range greeted {
		if d == 0 {
			t.Errorf("burst connection %d was not served", i)
		}
		last = max(last, d)
	}
	t.Logf("ConnectionRateThrottle=5: a burst of 15 all served, the last greeted after %s", last.Round(100*time.Millisecond))
}
