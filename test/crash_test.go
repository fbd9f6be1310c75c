package test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Issue 14, faults: kill -9 of the daemon at random moments under load.
// Each run starts the daemon on a private root, several SMTP clients send
// messages that each carry a unique Message-Id, and the daemon is killed
// with SIGKILL at a random moment (seeded; the seed is logged, and
// POSTHORN_KILL_SEED replays it). The restarted daemon cleans up; the
// queue is run until it is empty; then every message is counted in the
// mailbox.
//
// What must hold: every acknowledged message is in the mailbox, whole;
// an unacknowledged one at most once (it may have been stored before the
// kill took the 250 away); no tf file survives the restart; no job that
// was healthy becomes a Qf; no .lock is left once the queue is empty. A
// second copy of an acknowledged message is allowed only in sendmail's
// own window (delivered and fsynced, killed before the qf recorded it):
// the test checks that each such job was still queued after the kill.

// proofKillRuns is the number of kill -9 runs: POSTHORN_KILL_RUNS, else 20
// (the number; POSTHORN_PROOF=full makes it 100).
func proofKillRuns() int {
	if n, err := strconv.Atoi(os.Getenv("POSTHORN_KILL_RUNS")); err == nil && n > 0 {
		return n
	}
	if os.Getenv("POSTHORN_PROOF") == "full" {
		return 100
	}
	return 20
}

// proofMessage is one message of the load: its Message-Id names the run
// and the message, the body is size bytes of lines and an end marker, so
// a message cut short shows.
func proofMessage(run, i, size int) (msgid, text string) {
	msgid = fmt.Sprintf("<kill-%d-%d@proof.test>", run, i)
	var b strings.Builder
	fmt.Fprintf(&b, "Message-Id: %s\r\nSubject: kill run %d message %d\r\nFrom: load@crash.example\r\n\r\n", msgid, run, i)
	for b.Len() < size {
		fmt.Fprintf(&b, "line of message %d of run %d, filling the body ...............................\r\n", i, run)
	}
	fmt.Fprintf(&b, "END %s\r\n", msgid)
	return msgid, b.String()
}

// sendOne runs one SMTP transaction and returns the queue ID from the 250
// reply, or "" when the message was not acknowledged (the connection died).
func sendOne(addr, text string) string {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	expect := func(code string) (string, bool) {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return "", false
			}
			if len(line) >= 4 && line[3] == '-' {
				continue
			}
			return line, strings.HasPrefix(line, code)
		}
	}
	if _, ok := expect("220"); !ok {
		return ""
	}
	steps := []struct{ send, code string }{
		{"EHLO crash.example", "250"},
		{"MAIL FROM:<load@crash.example>", "250"},
		{"RCPT TO:<root@localhost>", "250"},
		{"DATA", "354"},
	}
	for _, s := range steps {
		fmt.Fprintf(c, "%s\r\n", s.send)
		if _, ok := expect(s.code); !ok {
			return ""
		}
	}
	if _, err := c.Write([]byte(text + ".\r\n")); err != nil {
		return ""
	}
	line, ok := expect("250")
	if !ok {
		return ""
	}
	// "250 2.0.0 <ID> Message accepted for delivery"
	f := strings.Fields(line)
	if len(f) < 3 {
		return ""
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return f[2]
}

// mboxCopy is one message found in a mailbox.
type mboxCopy struct {
	msgid string
	whole bool // its end marker is its last line
}

// readMbox splits a mailbox into its messages.
func readMbox(t *testing.T, path string) []mboxCopy {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	idRE := regexp.MustCompile(`(?mi)^Message-Id: (<[^>]*>)$`)
	var out []mboxCopy
	for _, m := range strings.Split("\n"+string(data), "\n\nFrom ") {
		if strings.TrimSpace(m) == "" {
			continue
		}
		c := mboxCopy{msgid: "(none)"}
		if k := idRE.FindStringSubmatch(m); k != nil {
			c.msgid = k[1]
		}
		c.whole = strings.HasSuffix(strings.TrimRight(m, "\n"), "\nEND "+c.msgid)
		out = append(out, c)
	}
	return out
}

// killRun is the outcome of one kill -9 run.
type killRun struct {
	acked, unacked      int
	lostAcked, partial  int
	extraUnacked, dupes int
	dupesExplained      int
	deliveredBeforeKill int
	queuedAfterKill     int
}

func TestKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 test skipped in -short mode")
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("POSTHORN_KILL_SEED"), 10, 64); err == nil {
		seed = s
	}
	runs := proofKillRuns()
	t.Logf("seed %d (POSTHORN_KILL_SEED=%d replays it), %d runs", seed, seed, runs)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var total killRun
	start := time.Now()
	for run := 0; run < runs; run++ {
		res := killOnce(t, run, rng)
		total.acked += res.acked
		total.unacked += res.unacked
		total.lostAcked += res.lostAcked
		total.partial += res.partial
		total.extraUnacked += res.extraUnacked
		total.dupes += res.dupes
		total.dupesExplained += res.dupesExplained
		total.deliveredBeforeKill += res.deliveredBeforeKill
		total.queuedAfterKill += res.queuedAfterKill
		if t.Failed() {
			t.Logf("stopping after run %d (seed %d)", run, seed)
			break
		}
	}
	t.Logf("%d kill -9 runs in %s: %d messages acknowledged (%d delivered before a kill, %d still queued at a kill), %d lost; "+
		"%d unacknowledged sent, %d of them delivered anyway; %d second copies of acknowledged messages (%d in the delivered-before-the-qf-was-updated window); %d partial copies",
		runs, time.Since(start).Round(time.Millisecond), total.acked, total.deliveredBeforeKill, total.queuedAfterKill, total.lostAcked,
		total.unacked, total.extraUnacked, total.dupes, total.dupesExplained, total.partial)
}

// killOnce is one run: load, kill -9 at a random moment, restart, empty
// the queue, count.
func killOnce(t *testing.T, run int, rng *rand.Rand) killRun {
	t.Helper()
	began := time.Now()
	defer func() { t.Logf("run %d: %s", run, time.Since(began).Round(time.Millisecond)) }()
	r := newRoot(t)
	q := r.path("spool/mqueue")
	box := r.path("mail/root")
	start := func() *exec.Cmd {
		cmd := exec.Command(binary(t), "-C", r.cf, "-bD", "-X", r.path("run/log"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c, _, _ := waitGreeting(t, r.addr())
		c.Close()
		return cmd
	}
	daemon := start()

	type sent struct {
		msgid, qid string
	}
	var (
		mu     sync.Mutex
		all    []sent
		n      int
		stop   = make(chan struct{})
		wg     sync.WaitGroup
		sizes  = []int{500, 2000, 8000, 40000, 200000}
		picked = make([]int, 64)
	)
	for i := range picked {
		picked[i] = sizes[rng.IntN(len(sizes))]
	}
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				i := n
				n++
				mu.Unlock()
				msgid, text := proofMessage(run, i, picked[i%len(picked)])
				qid := sendOne(r.addr(), text)
				mu.Lock()
				all = append(all, sent{msgid, qid})
				mu.Unlock()
				if qid == "" {
					return // the daemon is gone
				}
			}
		}()
	}
	time.Sleep(time.Duration(150+rng.IntN(1200)) * time.Millisecond)
	daemon.Process.Signal(syscall.SIGKILL)
	daemon.Wait()
	close(stop)
	wg.Wait()

	var res killRun
	delivered := map[string]int{}
	for _, c := range readMbox(t, box) {
		delivered[c.msgid]++
	}
	locksAtKill, _ := filepath.Glob(r.path("mail/*.lock"))
	if len(locksAtKill) > 0 {
		t.Logf("run %d: the kill left %v", run, locksAtKill)
	}
	queuedAtKill := map[string]bool{}
	names, _ := filepath.Glob(filepath.Join(q, "qf*"))
	for _, p := range names {
		queuedAtKill[strings.TrimPrefix(filepath.Base(p), "qf")] = true
	}

	daemon = start() // its queue clean-up runs before it listens
	if tfs, _ := filepath.Glob(filepath.Join(q, "tf*")); len(tfs) > 0 {
		t.Errorf("run %d: tf files left after the restart: %v", run, tfs)
	}
	msgid, text := proofMessage(run, -1, 1000)
	if qid := sendOne(r.addr(), text); qid == "" {
		t.Errorf("run %d: the restarted daemon did not accept a message", run)
	} else {
		all = append(all, sent{msgid, qid})
	}
	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()

	// Run the queue until it is empty (the restarted daemon may have
	// delivered part of it already).
	for i := 0; i < 5; i++ {
		if list := run1(t, r, "-bp"); strings.Contains(list, "is empty") {
			break
		}
		run1(t, r, "-q")
	}
	if list := run1(t, r, "-bp"); !strings.Contains(list, "is empty") {
		t.Errorf("run %d: queue not empty after five runs:\n%s", run, list)
	}
	if qfs, _ := filepath.Glob(filepath.Join(q, "Qf*")); len(qfs) > 0 {
		t.Errorf("run %d: jobs set aside as Qf: %v", run, qfs)
	}
	if locks, _ := filepath.Glob(r.path("mail/*.lock")); len(locks) > 0 {
		t.Errorf("run %d: lock files left: %v", run, locks)
	}

	copies := map[string]int{}
	for _, c := range readMbox(t, box) {
		copies[c.msgid]++
		if !c.whole {
			res.partial++
			t.Errorf("run %d: a partial copy of %s in the mailbox", run, c.msgid)
		}
	}
	for _, s := range all {
		switch {
		case s.qid == "":
			res.unacked++
			if copies[s.msgid] > 1 {
				t.Errorf("run %d: unacknowledged %s delivered %d times", run, s.msgid, copies[s.msgid])
			}
			if copies[s.msgid] > 0 {
				res.extraUnacked++
			}
		case copies[s.msgid] == 0:
			res.acked++
			res.lostAcked++
			t.Errorf("run %d: acknowledged %s (queue ID %s) lost", run, s.msgid, s.qid)
		default:
			res.acked++
			if delivered[s.msgid] > 0 {
				res.deliveredBeforeKill++
			}
			if queuedAtKill[s.qid] {
				res.queuedAfterKill++
			}
			if copies[s.msgid] > 1 {
				res.dupes += copies[s.msgid] - 1
				// sendmail's window: the mailbox had it, the qf did not
				// know yet. Anything else is a bug.
				if copies[s.msgid] == 2 && delivered[s.msgid] == 1 && queuedAtKill[s.qid] {
					res.dupesExplained++
					t.Logf("run %d: %s (%s) delivered twice: in the mailbox and still queued at the kill", run, s.msgid, s.qid)
				} else {
					t.Errorf("run %d: acknowledged %s (%s) delivered %d times (%d before the kill, queued at the kill: %v)",
						run, s.msgid, s.qid, copies[s.msgid], delivered[s.msgid], queuedAtKill[s.qid])
				}
			}
		}
	}
	if res.acked < 2 {
		t.Logf("run %d: only %d messages acknowledged before the kill", run, res.acked)
	}
	return res
}

// run1 runs the binary on r's configuration and returns its output.
func run1(t *testing.T, r *root, args ...string) string {
	t.Helper()
	got := run(t, binary(t), "", append([]string{"-C", r.cf}, args...)...)
	return got.stdout + got.stderr
}
