package test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sendOne runs one SMTP transaction and returns the queue ID from the 250
// reply, or "" when the message was not acknowledged (the connection died).
func sendOne(addr string, i int) string {
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
	fmt.Fprintf(c, "Subject: crash test %d\r\n\r\n%s\r\n.\r\n", i, strings.Repeat("x", 1000))
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

// TestCrashDurability: while 20 clients send, the daemon is killed with
// SIGKILL at random moments and restarted. Every message that got its 250
// must be in the queue, complete (qf readable by mailq, df present), and
// no tf file may survive a restart.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	r := newRoot(t, "O DeliveryMode=queueonly")
	q := r.path("spool/mqueue")
	start := func() *exec.Cmd {
		cmd := exec.Command(binary(t), "-C", r.cf, "-bD")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c, _, _ := waitGreeting(t, r.addr())
		c.Close()
		return cmd
	}
	var (
		mu    sync.Mutex
		acked []string
		n     int
	)
	daemon := start()
	for round := 0; round < 5; round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 20; w++ {
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
					n++
					i := n
					mu.Unlock()
					if id := sendOne(r.addr(), i); id != "" {
						mu.Lock()
						acked = append(acked, id)
						mu.Unlock()
					} else {
						time.Sleep(5 * time.Millisecond)
					}
				}
			}()
		}
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		daemon.Process.Signal(syscall.SIGKILL)
		daemon.Wait()
		close(stop)
		wg.Wait()
		daemon = start() // the restart cleans up what the kill left
		if tfs, _ := filepath.Glob(filepath.Join(q, "tf*")); len(tfs) > 0 {
			t.Errorf("round %d: tf files left after restart: %v", round, tfs)
		}
	}
	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()

	if len(acked) < 50 {
		t.Fatalf("only %d messages acknowledged: the load did not run", len(acked))
	}
	for _, id := range acked {
		if _, err := os.Stat(filepath.Join(q, "qf"+id)); err != nil {
			t.Errorf("acknowledged message %s lost: %v", id, err)
		}
		if _, err := os.Stat(filepath.Join(q, "df"+id)); err != nil {
			t.Errorf("acknowledged message %s has no df: %v", id, err)
		}
	}
	list := run(t, binary(t), "", "-C", r.cf, "-bp")
	if strings.Contains(list.stdout, "(no control file)") || list.code != 0 {
		t.Errorf("mailq after the crashes:\n%s", list.stdout)
	}
	if lost, _ := filepath.Glob(filepath.Join(q, "Qf*")); len(lost) > 0 {
		t.Errorf("corrupt queue files after crashes: %v", lost)
	}

	// One queue run delivers them all (at least once, never lost).
	if got := run(t, binary(t), "", "-C", r.cf, "-q"); got.code != 0 {
		t.Fatalf("queue run: exit %d %s", got.code, got.stderr)
	}
	box, err := os.ReadFile(r.path("mail/root"))
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range acked {
		if !strings.Contains(string(box), " id "+id) {
			t.Errorf("acknowledged message %s was not delivered", id)
		}
	}
	if list := run(t, binary(t), "", "-C", r.cf, "-bp"); !strings.Contains(list.stdout, "is empty") {
		t.Errorf("queue not empty after the run:\n%s", list.stdout)
	}
	t.Logf("%d messages acknowledged across 5 SIGKILLs; all queued, then all delivered", len(acked))
}
