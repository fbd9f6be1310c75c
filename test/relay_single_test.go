package test

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSingleThreadDeliveryAcrossProcesses: with SingleThreadDelivery,
// while one process (sendmail -odi) has a connection open to a host, a
// queue run in another process does not connect to it: the recipient is
// deferred as sendmail defers it (dsn=4.4.5, stat=Deferred), hoststat
// marks the host '*', and the next run, once the first process is done,
// delivers.
func TestSingleThreadDeliveryAcrossProcesses(t *testing.T) {
	ip := hopIP(t)
	hsDir := t.TempDir()
	e := newRelayEnv(t, oneMX("single.example", ip), "O HostStatusDirectory="+hsDir, "O SingleThreadDelivery=True")

	entered, leave := make(chan struct{}), make(chan struct{})
	s := startSink(t, ip+":25", func(addr string, n int) error {
		if addr == "first@single.example" { // keep the first process's connection open
			close(entered)
			select {
			case <-leave:
			case <-time.After(30 * time.Second):
			}
		}
		return nil
	})

	// A first delivery gives the host a status (a lock file made for a
	// host's first connection is empty until the connection's outcome
	// is written; hoststat, as sendmail's, cannot read it till then).
	if got := e.submit(t, relayMsg, "zero@single.example"); got.code != 0 {
		t.Fatalf("-odi: %+v", got)
	}

	// The first process, in the background.
	first := exec.Command(binary(t), "-C", e.r.cf, "-X", e.log, "-odi", "first@single.example")
	first.Stdin = strings.NewReader(relayMsg)
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	first.Env = append(os.Environ(), "TZ=UTC")
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	waited := false
	defer func() {
		if !waited {
			close(leave)
			first.Wait()
		}
	}()
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatalf("the first delivery did not reach the host:\n%s", firstOut.String())
	}

	// Meanwhile a second message, queued, and a queue run.
	if got := e.submit(t, relayMsg, "-odq", "second@single.example"); got.code != 0 {
		t.Fatalf("-odq: %+v", got)
	}
	hs := run(t, binary(t), "", "-C", e.r.cf, "-bh")
	if !regexp.MustCompile(`(?m)^\*mx\.single\.example `).MatchString(hs.stdout) {
		t.Errorf("hoststat does not mark the host in use:\n%s%s", hs.stdout, hs.stderr)
	}
	got := e.queueRun(t)
	if strings.Contains(got.stdout, "Connecting to mx.single.example.") || s.connections() != 2 {
		t.Errorf("the queue run connected to a host in use (%d connections):\n%s", s.connections(), got.stdout)
	}
	wantLog(t, e.logText(), `: to=second@single\.example, .*relay=mx\.single\.example\., dsn=4\.4\.5, stat=Deferred$`)

	close(leave)
	waited = true
	if err := first.Wait(); err != nil {
		t.Fatalf("first process: %v\n%s", err, firstOut.String())
	}
	got = e.queueRun(t)
	if !strings.Contains(got.stdout, "second@single.example... Sent (") || len(s.messages()) != 3 {
		t.Errorf("after the first process: %d messages at the host\n%s", len(s.messages()), got.stdout)
	}
	if qfs := e.queued(); len(qfs) != 0 {
		t.Errorf("jobs left: %v\n%s", qfs, e.mailq(t))
	}
}
