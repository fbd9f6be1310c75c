package test

// BenchmarkSideBySide is issue 15's harness (make bench-postfix): each
// scenario runs against a posthorn daemon and then against a private
// Postfix instance (postfix_peer_test.go: its own main.cf, master.cf,
// queue and mail spool in a temporary directory), one after the other in
// the same run, and one table compares them. Both deliver to mboxes in
// their own spool (posthorn: dot-lock + fcntl + fsync; Postfix's local(8):
// fcntl + dot-lock, fsync), and relay to the same smtp-sink.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// benchEnv reads a positive integer from the environment.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// sbs is one run of the harness: the load's parameters, the shared sink
// and users, and the table being filled.
type sbs struct {
	b      *testing.B
	src    string // smtp-source
	n      int    // messages per throughput scenario
	jobs   int    // jobs of the queue scenarios
	lat    int    // messages per latency run
	rate   int    // the paced latency run's messages per second
	users  []string
	sinkIP string
	sink   *smtpSink
	rows   []sbsRow
}

// sbsRow is a line of the table: what, posthorn's figure, Postfix's, and
// posthorn's advantage (> 1: better).
type sbsRow struct{ what, ph, pf, adv string }

// figures are what one MTA did in a throughput scenario.
type figures struct {
	n         int
	elapsed   time.Duration
	user, sys time.Duration
	rss, pss  int // peak KiB, the whole process tree
}

func (f figures) rate() float64 { return float64(f.n) / f.elapsed.Seconds() }
func (f figures) cpu() float64  { return ms(f.user+f.sys) / float64(f.n) }

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkSideBySide runs the scenarios named in POSTHORN_BENCH_ONLY
// (comma-separated; default all): local1, local5, relay, latency, queue,
// restart. POSTHORN_BENCH_N messages per throughput scenario (20000),
// POSTHORN_BENCH_JOBS for the queue scenarios (50000),
// POSTHORN_BENCH_LATENCY_N per latency run (5000) and
// POSTHORN_BENCH_RATE for the paced one (200/s). The table is logged and,
// with POSTHORN_BENCH_OUT, written to that file.
func BenchmarkSideBySide(b *testing.B) {
	src, err := exec.LookPath("smtp-source")
	if err != nil {
		b.Skip("smtp-source (postfix) not installed")
	}
	postfixBinaries(b) // root, postfix, its user: or skip
	s := &sbs{b: b, src: src,
		n:    benchEnv("POSTHORN_BENCH_N", 20000),
		jobs: benchEnv("POSTHORN_BENCH_JOBS", 50000),
		lat:  benchEnv("POSTHORN_BENCH_LATENCY_N", 5000),
		rate: benchEnv("POSTHORN_BENCH_RATE", 200),
	}
	raiseFileLimit(b, 65536)
	s.users = benchUsers(b)
	s.sinkIP = hopIP(b)
	s.sink = startSMTPSink(b, s.sinkIP)
	only := os.Getenv("POSTHORN_BENCH_ONLY")
	scenarios := []struct {
		name string
		run  func()
	}{
		{"local1", func() { s.local(1) }},
		{"local5", func() { s.local(5) }},
		{"relay", s.relay},
		{"latency", s.latency},
		{"queue", s.queue},
		{"restart", s.restart},
	}
	b.ResetTimer()
	for _, sc := range scenarios {
		if only != "" && !slices.Contains(strings.Split(only, ","), sc.name) {
			continue
		}
		sc.run()
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	table := s.table()
	b.Log("\n" + table)
	if out := os.Getenv("POSTHORN_BENCH_OUT"); out != "" {
		os.WriteFile(out, []byte(table), 0o644)
	}
}

func (s *sbs) table() string {
	var t strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	host, _ := os.Hostname()
	fmt.Fprintf(&t, "%s, %s, %d CPUs, load average before the table: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"),
		host, numCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintf(&t, "smtp-source -s 20 -l 2048, one connection per message; %d messages per throughput row\n\n", s.n)
	t.WriteString("| scenario | posthorn | Postfix | posthorn's advantage |\n| --- | --- | --- | --- |\n")
	for _, r := range s.rows {
		fmt.Fprintf(&t, "| %s | %s | %s | %s |\n", r.what, r.ph, r.pf, r.adv)
	}
	return t.String()
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, strings.Count(string(data), "\nprocessor")+boolInt(strings.HasPrefix(string(data), "processor")))
}

func (s *sbs) add(what, ph, pf, adv string) {
	s.rows = append(s.rows, sbsRow{what, ph, pf, adv})
	s.b.Logf("%s: posthorn %s, Postfix %s (%s)", what, ph, pf, adv)
}

// addThroughput adds a scenario's rows: rate, CPU per message, memory.
func (s *sbs) addThroughput(what string, ph, pf figures) {
	s.add(what+": msgs/s", fmt.Sprintf("%.0f", ph.rate()), fmt.Sprintf("%.0f", pf.rate()), times(ph.rate()/pf.rate()))
	cpu := func(f figures) string {
		return fmt.Sprintf("%.2f (%.2f user + %.2f sys)", f.cpu(), ms(f.user)/float64(f.n), ms(f.sys)/float64(f.n))
	}
	s.add("… CPU ms per message", cpu(ph), cpu(pf), times(pf.cpu()/ph.cpu()))
	mem := func(f figures) string {
		return fmt.Sprintf("%.0f / %.0f MiB", float64(f.rss)/1024, float64(f.pss)/1024)
	}
	s.add("… peak RSS / PSS of all its processes", mem(ph), mem(pf), times(float64(pf.pss)/float64(ph.pss))+" (PSS)")
}

func times(v float64) string { return fmt.Sprintf("%.2f×", v) }

// benchUsers creates the mailbox owners: phbNNNN and, for smtp-source -r
// 5 (which puts 2..5 in front of the address), 2phbNNNN..5phbNNNN.
func benchUsers(b *testing.B) []string {
	if _, err := exec.LookPath("useradd"); err != nil {
		b.Skip("no useradd")
	}
	base := fmt.Sprintf("phb%d", os.Getpid()%10000)
	names := []string{base}
	for i := 2; i <= 5; i++ {
		names = append(names, fmt.Sprintf("%d%s", i, base))
	}
	for _, n := range names {
		if out, err := exec.Command("useradd", "--badname", "-M", "-U", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", n).CombinedOutput(); err != nil {
			b.Fatalf("useradd %s: %v %s", n, err, out)
		}
		b.Cleanup(func() {
			exec.Command("userdel", n).Run()
			exec.Command("groupdel", n).Run()
		})
	}
	return names
}

// posthorn starts a daemon with the benchmark's cf lines and extra ones.
func (s *sbs) posthorn(extra ...string) (*root, *exec.Cmd) {
	cf := append([]string{"O RelayHosts=127.0.0.1/32"}, extra...)
	r := newRoot(s.b, cf...)
	os.WriteFile(r.path("etc/mailertable"), []byte("sink.example esmtp:["+s.sinkIP+"]\n"), 0o644)
	os.WriteFile(r.path("etc/aliases"), []byte("postmaster: root\n"), 0o644)
	d := s.startPosthorn(r)
	return r, d
}

func (s *sbs) startPosthorn(r *root, args ...string) *exec.Cmd {
	d := startDaemon(s.b, r, append([]string{"-X", r.path("run/daemon.log")}, args...)...)
	c, _, _ := waitGreeting(s.b, r.addr())
	c.Close()
	return d
}

func stopPosthorn(d *exec.Cmd) {
	d.Process.Signal(syscall.SIGTERM)
	d.Wait()
}

// postfix starts a private instance: local delivery for localhost into
// <dir>/mail, everything else to the sink.
func (s *sbs) postfix(extra ...string) *postfixPeer {
	lines := append([]string{
		"mydestination = localhost",
		"mail_spool_directory = ${queue_directory}/../mail",
		"local_recipient_maps =",
	}, extra...)
	p := startPostfix(s.b, postfixConfig{ip: hopIP(s.b), domain: "pf.example", relayhost: "[" + s.sinkIP + "]:25", extra: lines})
	if err := os.MkdirAll(filepath.Join(p.dir, "mail"), 0o755); err != nil {
		s.b.Fatal(err)
	}
	return p
}

func (p *postfixPeer) addr() string {
	for _, l := range strings.Split(p.readFile("etc/master.cf"), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "inet" {
			return f[0]
		}
	}
	return ""
}

func (p *postfixPeer) readFile(rel string) string {
	data, _ := os.ReadFile(filepath.Join(p.dir, rel))
	return string(data)
}

func (p *postfixPeer) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// restart starts a stopped instance's master again on the same
// configuration, queue and spool; startPostfix's cleanup stops it.
func (p *postfixPeer) restart(t testing.TB) {
	_, daemons := postfixBinaries(t)
	p.cmd = exec.Command(filepath.Join(daemons, "master"), "-c", filepath.Join(p.dir, "etc"), "-s")
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	p.done = make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(p.cmd, p.done)
}

// measure runs load (which returns once it has sent everything), then
// waits until done says the work is finished; it returns the time from
// the start, the CPU of pid's process tree and its memory's peaks.
func (s *sbs) measure(pid, n int, load func(), done func(deadline time.Time) bool) figures {
	s.b.Helper()
	mem := sampleMemory(pid, 100*time.Millisecond)
	u0, s0 := treeTimes(pid)
	start := time.Now()
	load()
	if !done(time.Now().Add(15 * time.Minute)) {
		mem.peak()
		s.b.Fatalf("not finished after 15 minutes")
	}
	f := figures{n: n, elapsed: time.Since(start)}
	u1, s1 := treeTimes(pid)
	f.user, f.sys = u1-u0, s1-s0
	f.rss, f.pss = mem.peak()
	return f
}

// source is smtp-source's load: n messages to rcpt at addr, with extra
// options.
func (s *sbs) source(addr, rcpt string, n int, extra ...string) func() {
	return func() {
		args := append([]string{"-s", "20", "-l", "2048", "-m", strconv.Itoa(n), "-f", "load@client.example", "-t", rcpt}, extra...)
		out, err := exec.Command(s.src, append(args, addr)...).CombinedOutput()
		if err != nil {
			s.b.Fatalf("smtp-source to %s: %v\n%s", addr, err, out)
		}
	}
}

// local is smtp-source into each MTA with delivery to boxes mailboxes
// (boxes recipients per message), until every mailbox has every message.
func (s *sbs) local(boxes int) {
	s.b.Logf("local delivery to %d mailbox(es), %d messages", boxes, s.n)
	rcpt := s.users[0] + "@localhost"
	var opts []string
	if boxes > 1 {
		opts = []string{"-r", strconv.Itoa(boxes)}
	}
	run := func(addr, spool string, pid int) figures {
		var paths []string
		for _, u := range s.users[:boxes] {
			paths = append(paths, filepath.Join(spool, u))
		}
		tail := newMboxTail(paths...)
		return s.measure(pid, s.n, s.source(addr, rcpt, s.n, opts...), func(dl time.Time) bool {
			return tail.waitFor(s.n*boxes, 20*time.Millisecond, dl)
		})
	}
	r, d := s.posthorn("O DeliveryMode=background")
	ph := run(r.addr(), r.path("mail"), d.Process.Pid)
	stopPosthorn(d)
	p := s.postfix()
	pf := run(p.addr(), filepath.Join(p.dir, "mail"), p.cmd.Process.Pid)
	p.stop()
	what := "local delivery, 1 mailbox"
	if boxes > 1 {
		what = fmt.Sprintf("local delivery, %d mailboxes (%d recipients per message)", boxes, boxes)
	}
	s.addThroughput(what, ph, pf)
}

// relay is smtp-source into each MTA relaying everything to the sink,
// until the sink has every message.
func (s *sbs) relay() {
	s.b.Logf("relay to smtp-sink, %d messages", s.n)
	run := func(addr string, pid int) figures {
		base := s.sink.count()
		return s.measure(pid, s.n, s.source(addr, "user@sink.example", s.n), func(dl time.Time) bool {
			return s.waitSink(base+s.n, dl)
		})
	}
	r, d := s.posthorn("O DeliveryMode=background")
	ph := run(r.addr(), d.Process.Pid)
	stopPosthorn(d)
	p := s.postfix()
	pf := run(p.addr(), p.cmd.Process.Pid)
	p.stop()
	s.addThroughput("relay to smtp-sink", ph, pf)
}

func (s *sbs) waitSink(n int, deadline time.Time) bool {
	for s.sink.count() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}
