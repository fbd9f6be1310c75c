package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runSession runs one SMTP session of commands (one line each, DATA's
// text given whole after it) and returns the last reply line of each.
func runSession(t *testing.T, addr string, cmds ...string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	reply := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading a reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimRight(line, "\r\n")
			}
		}
	}
	reply() // greeting
	var out []string
	for _, cmd := range cmds {
		fmt.Fprintf(c, "%s\r\n", cmd)
		out = append(out, reply())
	}
	return out
}

// bigMessage is message i: a Subject naming it, 2,000 body lines, and a
// last line naming it again, so a message cut off half-way shows.
func bigMessage(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Subject: sigterm %d\r\n\r\n", i)
	for k := 0; k < 2000; k++ {
		fmt.Fprintf(&b, "line %d of message %d, long enough to take some writing ........................\r\n", k, i)
	}
	fmt.Fprintf(&b, "END OF MESSAGE %d\r\n.", i)
	return b.String()
}

// TestSIGTERMDuringDeliveries: the daemon gets SIGTERM while an ETRN run
// appends to a mailbox. It stops only after the deliveries in progress
// have finished or rolled back: no .lock file stays, the mailbox holds
// only whole messages, and every message accepted is delivered or still
// queued (the next run delivers the rest).
func TestSIGTERMDuringDeliveries(t *testing.T) {
	if testing.Short() {
		t.Skip("SIGTERM test skipped in -short mode")
	}
	r := newRoot(t, "O DeliveryMode=queueonly")
	writeAliases(t, r, "postmaster: root\n")
	cmd := exec.Command(binary(t), "-C", r.cf, "-bD")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
		}
	}()
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()

	const n = 60
	idRE := regexp.MustCompile(`^250 2\.0\.0 (\S+) Message accepted`)
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 6 {
				rs := runSession(t, r.addr(), "EHLO load.example", "MAIL FROM:<load@load.example>",
					"RCPT TO:<root@localhost>", "DATA", bigMessage(i), "QUIT")
				if m := idRE.FindStringSubmatch(rs[4]); m != nil {
					mu.Lock()
					acked = append(acked, m[1])
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	if len(acked) != n {
		t.Fatalf("%d of %d messages accepted", len(acked), n)
	}
	// Several clients ask for the run; they share one.
	for i := 0; i < 5; i++ {
		if rs := runSession(t, r.addr(), "EHLO load.example", "ETRN localhost", "QUIT"); rs[1] != "250 2.0.0 Queuing for node localhost started" {
			t.Fatalf("ETRN: %q", rs[1])
		}
	}
	box := r.path("mail/root")
	waitFor(t, "the first deliveries", func() bool { return fileContains(box, "END OF MESSAGE") })
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not stop within 60 seconds of SIGTERM")
	}

	if locks, _ := filepath.Glob(r.path("mail/*.lock")); len(locks) > 0 {
		t.Errorf("lock files left after SIGTERM: %v", locks)
	}
	whole := func(stage string) map[int]int {
		data, _ := os.ReadFile(box)
		got := map[int]int{}
		for _, m := range strings.Split(string(data), "\nFrom ")[0:] {
			if strings.TrimSpace(m) == "" {
				continue
			}
			var i int
			k := strings.Index(m, "Subject: sigterm ")
			if k < 0 {
				t.Errorf("%s: a message without its Subject in the mailbox", stage)
				continue
			}
			fmt.Sscanf(m[k:], "Subject: sigterm %d", &i)
			if !strings.HasSuffix(strings.TrimRight(m, "\n"), fmt.Sprintf("END OF MESSAGE %d", i)) {
				t.Errorf("%s: message %d is cut off in the mailbox", stage, i)
			}
			got[i]++
		}
		return got
	}
	before := whole("after SIGTERM")
	left, _ := filepath.Glob(r.path("spool/mqueue/qf*"))
	t.Logf("at SIGTERM: %d messages delivered, %d still queued", len(before), len(left))
	if len(before)+len(left) < n {
		t.Errorf("%d delivered + %d queued < %d accepted", len(before), len(left), n)
	}
	if got := run(t, binary(t), "", "-C", r.cf, "-q"); got.code != 0 {
		t.Fatalf("queue run: %+v", got)
	}
	after := whole("after the next run")
	for i := 0; i < n; i++ {
		if after[i] == 0 {
			t.Errorf("message %d lost", i)
		}
	}
	if list := run(t, binary(t), "", "-C", r.cf, "-bp"); !strings.Contains(list.stdout, "is empty") {
		t.Errorf("queue not empty:\n%s", list.stdout)
	}
}

// vmHWM is a process's peak resident set size in KiB.
func vmHWM(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			var n int
			fmt.Sscan(f[1], &n)
			return n
		}
	}
	return 0
}

// TestETRNFlood: 140 ETRNs for one domain from 20 connections, with one
// job of 20,000 recipients queued for it, start one queue run at a time,
// not 140: the daemon's peak memory stays that of one run (it was
// gigabytes), and the job is attempted far fewer times than asked.
func TestETRNFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("ETRN flood skipped in -short mode")
	}
	r := newRoot(t, "O DeliveryMode=queueonly")
	q := r.path("spool/mqueue")
	var qf strings.Builder
	fmt.Fprintf(&qf, "V8\nT%d\nK0\nN0\nP630100\nFbs\n$_localhost\nS<load@client.example>\n", time.Now().Add(-time.Hour).Unix())
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&qf, "RPFD:<user%05d@remote.example>\n", i)
	}
	qf.WriteString("H?P?Return-Path: <\x81g>\nH??Subject: to many\n.\n")
	os.WriteFile(filepath.Join(q, "dfFLOOD0000001"), []byte("body\n"), 0o600)
	os.WriteFile(filepath.Join(q, "qfFLOOD0000001"), []byte(qf.String()), 0o600)
	cmd := startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	base := vmHWM(cmd.Process.Pid)
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmds := []string{"EHLO flood.example"}
			for i := 0; i < 7; i++ { // below the ETRN tarpit (8)
				cmds = append(cmds, "ETRN @remote.example")
			}
			for i, rep := range runSession(t, r.addr(), append(cmds, "QUIT")...)[1:8] {
				if rep != "250 2.0.0 Queuing for node @remote.example started" {
					t.Errorf("ETRN %d: %q", i, rep)
				}
			}
		}()
	}
	wg.Wait()
	// The runs are over when the job has been tried and is not locked.
	// The lock is probed only once the job has been tried: a probe's
	// shared lock makes a run that comes to the job at that moment skip
	// it as locked by another process, and if that was the only run the
	// job would never be tried.
	idle := 0
	for deadline := time.Now().Add(2 * time.Minute); idle < 10 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		qfPath := filepath.Join(q, "qfFLOOD0000001")
		if data, _ := os.ReadFile(qfPath); strings.Contains(string(data), "\nN0\n") {
			idle = 0
			continue
		}
		f, err := os.Open(qfPath)
		if err != nil {
			t.Fatal(err)
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB) == nil {
			idle++
		} else {
			idle = 0
		}
		f.Close()
	}
	peak := vmHWM(cmd.Process.Pid)
	data, _ := os.ReadFile(filepath.Join(q, "qfFLOOD0000001"))
	var tries int
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "N") {
			fmt.Sscan(l[1:], &tries)
		}
	}
	t.Logf("peak RSS %d KiB (%d KiB at start), job tried %d times for 140 ETRNs", peak, base, tries)
	if peak-base > 120*1024 { // one run of this job takes about 25 MiB; 140 took 220-260
		t.Errorf("peak RSS grew by %d MiB", (peak-base)/1024)
	}
	if tries < 1 || tries > 20 {
		t.Errorf("the job was tried %d times", tries)
	}
}
