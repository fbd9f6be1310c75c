package test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startDaemonEnv is startDaemon with extra environment variables.
func startDaemonEnv(t *testing.T, r *root, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"-C", r.cf, "-bD"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
		}
	})
	return cmd
}

const reloadedGreeting = "220 posthorn.test ESMTP reloaded greeting\r\n"

// reloadGreeting appends a new greeting to the cf, sends SIGHUP and returns
// the first connection that gets the new greeting, still open: from then
// on new sessions use the new configuration.
func reloadGreeting(t *testing.T, r *root, cmd *exec.Cmd) (net.Conn, *bufio.Reader) {
	t.Helper()
	data, _ := os.ReadFile(r.cf)
	os.WriteFile(r.cf, append(data, []byte("O SmtpGreetingMessage=$j reloaded greeting\n")...), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, br, line := waitGreeting(t, r.addr())
		if line == reloadedGreeting {
			return c, br
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("greeting after SIGHUP: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// command sends one SMTP command and returns the reply's last line.
func command(t *testing.T, c net.Conn, br *bufio.Reader, line string) string {
	t.Helper()
	if _, err := c.Write([]byte(line + "\r\n")); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	for {
		reply, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if len(reply) < 4 || reply[3] != '-' {
			return reply
		}
	}
}

// TestMaxDaemonChildrenAcrossReload: the sessions open before a SIGHUP
// still count against MaxDaemonChildren after it (issue 8: the counters
// restarted at zero).
func TestMaxDaemonChildrenAcrossReload(t *testing.T) {
	r := newRoot(t, "O MaxDaemonChildren=2")
	cmd := startDaemon(t, r)
	a, _, _ := waitGreeting(t, r.addr())
	b, _ := reloadGreeting(t, r, cmd)
	c, _, line := waitGreeting(t, r.addr())
	c.Close()
	if line != "421 4.3.2 Too many open connections\r\n" {
		t.Errorf("third session (one from before the SIGHUP, one after): %q, want 421 4.3.2", line)
	}
	a.Close()
	b.Close()
	// Closed sessions are released: a new one is served.
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, _, line := waitGreeting(t, r.addr())
		c.Close()
		if line == reloadedGreeting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing both sessions: %q", line)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAliasesAfterReload: a session opened before a SIGHUP still looks
// aliases up after the old configuration's alias database has been closed
// (issue 8: every RCPT got 451). POSTHORN_RELOAD_CLOSE_DELAY=0 closes it at
// the reload instead of a minute later.
func TestAliasesAfterReload(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "postmaster: root\nstaff: root\n")
	if got := run(t, binary(t), "", "-C", r.cf, "-bi"); got.code != 0 {
		t.Fatalf("newaliases: %+v", got)
	}
	cmd := startDaemonEnv(t, r, []string{"POSTHORN_RELOAD_CLOSE_DELAY=0"})
	old, br, _ := waitGreeting(t, r.addr())
	defer old.Close()
	if reply := command(t, old, br, "EHLO client.example"); !strings.HasPrefix(reply, "250 ") {
		t.Fatalf("EHLO: %q", reply)
	}
	if reply := command(t, old, br, "MAIL FROM:<sender@client.example>"); !strings.HasPrefix(reply, "250 ") {
		t.Fatalf("MAIL: %q", reply)
	}
	if reply := command(t, old, br, "RCPT TO:<staff@localhost>"); !strings.HasPrefix(reply, "250 ") {
		t.Fatalf("RCPT before the reload: %q", reply)
	}
	nc, _ := reloadGreeting(t, r, cmd)
	nc.Close()
	if reply := command(t, old, br, "RCPT TO:<postmaster@localhost>"); !strings.HasPrefix(reply, "250 ") {
		t.Errorf("RCPT on the session from before the reload: %q", reply)
	}
	if reply := command(t, old, br, "RCPT TO:<nosuchalias@localhost>"); !strings.HasPrefix(reply, "550 5.1.1 ") {
		t.Errorf("unknown recipient on the old session: %q", reply)
	}
}
