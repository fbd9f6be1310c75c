package test

// The side-by-side benchmark's latency and big-queue scenarios.

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// latency sends with the harness's own client (latencyLoad): s.lat
// messages from 20 sessions at full speed, then rate messages per second
// for ten seconds, to one local mailbox, and reports the percentiles of
// end of DATA → 250 and (paced) end of DATA → in the mailbox. At full
// speed acceptance outruns delivery, so the mailbox latency is the
// backlog's, not reported.
func (s *sbs) latency() {
	rcpt := s.users[0] + "@localhost"
	paced := s.rate * 10
	s.b.Logf("latency: %d messages at full speed, %d at %d/s", s.lat, paced, s.rate)
	type lat struct{ full250, paced250, pacedBox []time.Duration }
	run := func(addr, box string) lat {
		tail := newMboxTail(box)
		var out lat
		full := latencyLoad{addr: addr, rcpt: rcpt, sessions: 20, n: s.lat, size: 2048}.run()
		if len(full.errs) > 0 {
			s.b.Fatalf("latency load: %d errors, the first: %v", len(full.errs), full.errs[0])
		}
		for _, d := range full.replied {
			out.full250 = append(out.full250, d)
		}
		if !tail.waitFor(s.lat, 20*time.Millisecond, time.Now().Add(10*time.Minute)) {
			s.b.Fatalf("latency: %d of %d messages delivered", tail.count(), s.lat)
		}
		stop := make(chan struct{})
		polled := make(chan struct{})
		go func() {
			defer close(polled)
			for {
				tail.poll()
				select {
				case <-stop:
					return
				case <-time.After(time.Millisecond):
				}
			}
		}()
		pr := latencyLoad{addr: addr, rcpt: rcpt, sessions: 20, n: paced, size: 2048, rate: float64(s.rate), first: s.lat}.run()
		ok := tail.waitFor(s.lat+paced, time.Millisecond, time.Now().Add(5*time.Minute))
		close(stop)
		<-polled
		if len(pr.errs) > 0 || !ok {
			s.b.Fatalf("paced latency load: %d errors (%v), %d delivered", len(pr.errs), pr.errs, tail.count())
		}
		tail.mu.Lock()
		for seq, sent := range pr.sent {
			out.paced250 = append(out.paced250, pr.replied[seq])
			if at, ok := tail.seen[seq]; ok {
				out.pacedBox = append(out.pacedBox, at.Sub(sent))
			}
		}
		tail.mu.Unlock()
		return out
	}
	r, d := s.posthorn("O DeliveryMode=background")
	ph := run(r.addr(), r.path("mail/"+s.users[0]))
	stopPosthorn(d)
	p := s.postfix()
	pf := run(p.addr(), filepath.Join(p.dir, "mail", s.users[0]))
	p.stop()
	row := func(what string, a, b []time.Duration) {
		a50, a99 := percentiles(a)
		b50, b99 := percentiles(b)
		f := func(p50, p99 time.Duration) string { return fmt.Sprintf("%.1f / %.1f ms", ms(p50), ms(p99)) }
		s.add(what, f(a50, a99), f(b50, b99), times(ms(b99)/ms(a99))+" (p99)")
	}
	row("latency, 20 sessions at full speed: end of DATA → 250, p50 / p99", ph.full250, pf.full250)
	row(fmt.Sprintf("latency, 20 sessions, %d msgs/s: end of DATA → 250, p50 / p99", s.rate), ph.paced250, pf.paced250)
	row("… end of DATA → in the mailbox, p50 / p99", ph.pacedBox, pf.pacedBox)
}

// holdRestriction puts every message Postfix accepts on hold: its
// equivalent of posthorn's DeliveryMode=queueonly for the queue rows.
const holdRestriction = "smtpd_recipient_restrictions = check_client_access static:HOLD, permit_mynetworks, reject_unauth_destination"

// queue fills each MTA's queue with s.jobs messages for the sink without
// delivering them, lists the queue (mailq, three times), then flushes it
// (sendmail -q; postsuper -H ALL and postqueue -f) until the sink has
// them all.
func (s *sbs) queue() {
	s.b.Logf("queue: fill %d, mailq, flush", s.jobs)
	r, d := s.posthorn("O DeliveryMode=queueonly")
	pid := d.Process.Pid
	phFill := s.measure(pid, s.jobs, s.source(r.addr(), "user@sink.example", s.jobs), func(time.Time) bool { return true })
	phList := s.mailq(exec.Command(binary(s.b), "-C", r.cf, "-bp"), regexp.MustCompile(`Total requests: (\d+)`))
	base := s.sink.count()
	phFlush := s.measureCmd(pid, s.jobs, exec.Command(binary(s.b), "-C", r.cf, "-q"), base+s.jobs)
	stopPosthorn(d)

	p := s.postfix(holdRestriction)
	pid = p.cmd.Process.Pid
	pfFill := s.measure(pid, s.jobs, s.source(p.addr(), "user@sink.example", s.jobs), func(time.Time) bool { return true })
	pfList := s.mailq(p.command("postqueue", "-p"), regexp.MustCompile(`in (\d+) Requests?\.`))
	base = s.sink.count()
	release := p.command("postsuper", "-H", "ALL")
	if out, err := release.CombinedOutput(); err != nil {
		s.b.Fatalf("postsuper -H ALL: %v %s", err, out)
	}
	pfFlush := s.measureCmd(pid, s.jobs, p.command("postqueue", "-f"), base+s.jobs)
	pfFlush.user += release.ProcessState.UserTime()
	pfFlush.sys += release.ProcessState.SystemTime()
	p.stop()

	s.addThroughput(fmt.Sprintf("queue fill, %d messages, delivery held", s.jobs), phFill, pfFill)
	s.add(fmt.Sprintf("mailq on %d jobs: seconds, median of 3 (CPU)", s.jobs), phList, pfList, times(secs(pfList)/secs(phList)))
	s.addThroughput(fmt.Sprintf("flush of %d to smtp-sink (sendmail -q; postsuper -H ALL + postqueue -f)", s.jobs), phFlush, pfFlush)
}

// secs is the leading number of a "0.34 s (...)" figure.
func secs(v string) float64 {
	f, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
	return f
}

// mailq runs a listing command three times and returns the median wall
// time with its CPU time; the listing must count s.jobs requests.
func (s *sbs) mailq(cmd *exec.Cmd, total *regexp.Regexp) string {
	type run struct{ wall, cpu time.Duration }
	var runs []run
	for range 3 {
		c := exec.Command(cmd.Path, cmd.Args[1:]...)
		start := time.Now()
		out, err := c.Output()
		wall := time.Since(start)
		if err != nil {
			s.b.Fatalf("%s: %v", c, err)
		}
		m := total.FindSubmatch(out)
		if m == nil || string(m[1]) != strconv.Itoa(s.jobs) {
			s.b.Fatalf("%s: want %d requests, got %q", c, s.jobs, lastLine(out))
		}
		runs = append(runs, run{wall, c.ProcessState.UserTime() + c.ProcessState.SystemTime()})
	}
	slices.SortFunc(runs, func(a, b run) int { return int(a.wall - b.wall) })
	return fmt.Sprintf("%.2f s (%.2f s)", runs[1].wall.Seconds(), runs[1].cpu.Seconds())
}

func lastLine(out []byte) string {
	l := strings.Split(strings.TrimSpace(string(out)), "\n")
	return l[len(l)-1]
}

// measureCmd runs cmd (a queue flush) to its end and waits until the sink
// has sinkWant messages; the CPU is pid's tree plus cmd's own.
func (s *sbs) measureCmd(pid, n int, cmd *exec.Cmd, sinkWant int) figures {
	f := s.measure(pid, n, func() {
		if out, err := cmd.CombinedOutput(); err != nil {
			s.b.Fatalf("%s: %v %s", cmd, err, out)
		}
	}, func(dl time.Time) bool { return s.waitSink(sinkWant, dl) })
	f.user += cmd.ProcessState.UserTime()
	f.sys += cmd.ProcessState.SystemTime()
	return f
}

// command is one of Postfix's commands on the instance's configuration.
func (p *postfixPeer) command(name string, args ...string) *exec.Cmd {
	bin, _ := exec.LookPath(name)
	if bin == "" {
		bin = "/usr/sbin/" + name
	}
	return exec.Command(bin, append([]string{"-c", filepath.Join(p.dir, "etc")}, args...)...)
}

// restart fills each MTA's queue with s.jobs messages for the sink (held),
// stops it, makes them due (Postfix: postsuper -H ALL while stopped) and
// starts it again: the time to the first 220 and until the sink has them
// all, with the new process tree's CPU and memory.
func (s *sbs) restart() {
	s.b.Logf("restart with %d due", s.jobs)
	r, d := s.posthorn("O DeliveryMode=queueonly")
	s.source(r.addr(), "user@sink.example", s.jobs)()
	stopPosthorn(d)
	base := s.sink.count()
	start := time.Now()
	d = startDaemon(s.b, r, "-X", r.path("run/daemon.log"), "-q1h")
	ph, phReady := s.afterStart(d.Process.Pid, start, r.addr(), base+s.jobs)
	stopPosthorn(d)

	p := s.postfix(holdRestriction)
	s.source(p.addr(), "user@sink.example", s.jobs)()
	p.stop()
	// With master stopped, postsuper logs to maillog_file itself, as
	// the postfix user, and exits 1 when it cannot open it, after the
	// release: what it released is what counts.
	if out, err := p.command("postsuper", "-H", "ALL").CombinedOutput(); err != nil && !strings.Contains(string(out), fmt.Sprintf("Released from hold: %d messages", s.jobs)) {
		s.b.Fatalf("postsuper -H ALL: %v %s", err, out)
	}
	base = s.sink.count()
	start = time.Now()
	p.restart(s.b)
	pf, pfReady := s.afterStart(p.cmd.Process.Pid, start, p.addr(), base+s.jobs)
	p.stop()

	s.add(fmt.Sprintf("restart with %d due: to the first 220", s.jobs), fmt.Sprintf("%.0f ms", ms(phReady)), fmt.Sprintf("%.0f ms", ms(pfReady)), times(ms(pfReady)/ms(phReady)))
	s.addThroughput("… until the sink has them all", ph, pf)
}

// afterStart measures a freshly started MTA (pid) from start: when addr
// first greets, and the work until the sink has sinkWant messages.
func (s *sbs) afterStart(pid int, start time.Time, addr string, sinkWant int) (figures, time.Duration) {
	mem := sampleMemory(pid, 100*time.Millisecond)
	var ready time.Duration
	for ready == 0 {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 4)
			if n, _ := c.Read(buf); n == 4 && string(buf[:3]) == "220" {
				ready = time.Since(start)
			}
			c.Close()
		}
		if time.Since(start) > time.Minute {
			s.b.Fatalf("%s does not greet", addr)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if !s.waitSink(sinkWant, time.Now().Add(15*time.Minute)) {
		s.b.Fatalf("the sink has %d of %d after 15 minutes", s.sink.count(), sinkWant)
	}
	f := figures{n: s.jobs, elapsed: time.Since(start)}
	f.user, f.sys = treeTimes(pid)
	f.rss, f.pss = mem.peak()
	return f, ready
}
