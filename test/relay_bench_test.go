package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkRelayThroughput is issue 10's benchmark: Postfix's smtp-source
// (20 sessions, 2 KiB messages, one connection per message) into a
// posthorn daemon that relays every message in the background to
// Postfix's smtp-sink, timed until the sink has every message; then the
// same load through a private Postfix instance relaying to the same sink.
// Both route by a static next hop (posthorn's mailertable, Postfix's
// relayhost), so no DNS is involved. It reports messages per second and
// the CPU time each MTA spent per message (user+system of its processes,
// children included) and logs a table with the ratio.
// POSTHORN_BENCH_RELAY_N sets the message count (default 2000);
// POSTHORN_BENCH_RELAY_CF adds lines to posthorn's cf (";" between them),
// e.g. "O ConnectionCacheSize=20".
func BenchmarkRelayThroughput(b *testing.B) {
	src, err := exec.LookPath("smtp-source")
	if err != nil {
		b.Skip("smtp-source (postfix) not installed")
	}
	n := 2000
	if v, err := strconv.Atoi(os.Getenv("POSTHORN_BENCH_RELAY_N")); err == nil && v > 0 {
		n = v
	}
	sinkIP := hopIP(b)
	sk := startSMTPSink(b, sinkIP)

	cf := []string{"O DeliveryMode=background", "O RelayHosts=127.0.0.1/32"}
	if v := os.Getenv("POSTHORN_BENCH_RELAY_CF"); v != "" {
		cf = append(cf, strings.Split(v, ";")...)
	}
	r := newRoot(b, cf...)
	if err := os.WriteFile(r.path("etc/mailertable"), []byte("sink.example esmtp:["+sinkIP+"]\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(r.path("etc/aliases"), []byte("postmaster: root\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	daemon := startDaemon(b, r, "-X", r.path("run/daemon.log"))
	c, _, _ := waitGreeting(b, r.addr())
	c.Close()

	b.ResetTimer()
	ph := relayLoad(b, src, r.addr(), n, sk, daemon.Process.Pid)
	b.StopTimer()
	if qfs, _ := filepath.Glob(r.path("spool/mqueue/qf*")); len(qfs) > 0 {
		b.Logf("posthorn: %d jobs still in the queue after the sink had every message", len(qfs))
	}

	rows := []relayFigures{ph}
	if _, err := exec.LookPath("postfix"); err == nil || fileExists("/usr/sbin/postfix") {
		pfIP := hopIP(b)
		pf := startPostfix(b, postfixConfig{ip: pfIP, domain: "pf.example", relayhost: "[" + sinkIP + "]:25"})
		rows = append(rows, relayLoad(b, src, pfIP+":25", n, sk, pf.cmd.Process.Pid))
		rows[1].name = "Postfix"
	}
	rows[0].name = "posthorn"

	var t strings.Builder
	fmt.Fprintf(&t, "relay: smtp-source -s 20 -l 2048 -m %d -> MTA -> smtp-sink on %s:25, until the sink has every message\n", n, sinkIP)
	fmt.Fprintf(&t, "%-10s %10s %10s %14s\n", "", "msgs/s", "seconds", "CPU ms/msg")
	for _, f := range rows {
		fmt.Fprintf(&t, "%-10s %10.0f %10.2f %14.3f\n", f.name, f.rate(), f.elapsed.Seconds(), f.cpuPerMsg())
	}
	b.ReportMetric(ph.rate(), "msgs/s")
	b.ReportMetric(ph.cpuPerMsg(), "cpu-ms/msg")
	b.ReportMetric(0, "ns/op")
	if len(rows) == 2 {
		fmt.Fprintf(&t, "posthorn/Postfix: %.2fx the throughput, %.2fx the CPU per message\n",
			ph.rate()/rows[1].rate(), ph.cpuPerMsg()/rows[1].cpuPerMsg())
		b.ReportMetric(rows[1].rate(), "postfix-msgs/s")
		b.ReportMetric(ph.rate()/rows[1].rate(), "ratio")
	} else {
		fmt.Fprintf(&t, "Postfix not installed: no comparison\n")
	}
	b.Log("\n" + t.String())
}

type relayFigures struct {
	name    string
	n       int
	elapsed time.Duration
	cpu     time.Duration
}

func (f relayFigures) rate() float64 { return float64(f.n) / f.elapsed.Seconds() }
func (f relayFigures) cpuPerMsg() float64 {
	return float64(f.cpu) / float64(time.Millisecond) / float64(f.n)
}

// relayLoad sends n messages with smtp-source to addr and waits until the
// sink has n more; it returns the time from the first connection to the
// last message at the sink and the CPU the process tree of pid used.
func relayLoad(b *testing.B, src, addr string, n int, sk *smtpSink, pid int) relayFigures {
	b.Helper()
	base := sk.count()
	cpu0 := treeCPU(pid)
	start := time.Now()
	out, err := exec.Command(src, "-s", "20", "-l", "2048", "-m", strconv.Itoa(n), "-f", "load@client.example",
		"-t", "user@sink.example", addr).CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source to %s: %v\n%s", addr, err, out)
	}
	deadline := time.Now().Add(10 * time.Minute)
	for sk.count() < base+n {
		if time.Now().After(deadline) {
			b.Fatalf("the sink has %d of %d messages after 10 minutes", sk.count()-base, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return relayFigures{n: n, elapsed: time.Since(start), cpu: treeCPU(pid) - cpu0}
}

// smtpSink is Postfix's smtp-sink on ip:25, counting messages (-c).
type smtpSink struct {
	mu   sync.Mutex
	msgs int
}

var sinkCounter = regexp.MustCompile(`mesg=(\d+)`)

func startSMTPSink(b *testing.B, ip string) *smtpSink {
	b.Helper()
	bin, err := exec.LookPath("smtp-sink")
	if err != nil {
		b.Skip("smtp-sink (postfix) not installed")
	}
	cmd := exec.Command(bin, "-u", "nobody", "-c", ip+":25", "1024")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &smtpSink{}
	go func() {
		// The counters are rewritten in place: "sess=N quit=N mesg=N\r".
		sc := bufio.NewScanner(out)
		sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
			for i, c := range data {
				if c == '\r' || c == '\n' {
					return i + 1, data[:i], nil
				}
			}
			if atEOF && len(data) > 0 {
				return len(data), data, nil
			}
			return 0, nil, nil
		})
		for sc.Scan() {
			if m := sinkCounter.FindSubmatch(sc.Bytes()); m != nil {
				v, _ := strconv.Atoi(string(m[1]))
				s.mu.Lock()
				s.msgs = v
				s.mu.Unlock()
			}
		}
	}()
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitGreeting(b, ip+":25")
	return s
}

func (s *smtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs
}

// treeCPU is the user+system time of pid and its descendants (treeTimes).
func treeCPU(pid int) time.Duration {
	u, s := treeTimes(pid)
	return u + s
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }
