// Package test holds posthorn's black-box tests: they build the real binary,
// give it a private root (queue, spool, aliases, pid file, configuration) and
// drive it the way users and programs do. Nothing here touches the machine's
// own /etc/mail, /var/mail or spool.
package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/sendmail once per test run and returns its path
// (POSTHORN_TEST_RACE=1 builds it with the race detector).
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "posthorn-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sendmail")
		args := []string{"build", "-o", binPath}
		if os.Getenv("POSTHORN_TEST_RACE") != "" { // the binary under test with the race detector
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../cmd/sendmail")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// linkAs returns a path to the binary under another name (mailq, ...).
func linkAs(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(binary(t), p); err != nil {
		t.Fatal(err)
	}
	return p
}

// root is a private installation: a directory with the usual layout and a
// sendmail.cf pointing into it.
type root struct {
	dir  string
	cf   string
	port int
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newRoot creates a private root; extra lines are appended to its cf.
func newRoot(t testing.TB, extra ...string) *root {
	t.Helper()
	dir := t.TempDir()
	r := &root{dir: dir, port: freePort(t)}
	for _, d := range []string{"spool/mqueue", "mail", "run", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	lines := []string{
		"Cwlocalhost",
		fmt.Sprintf("O DaemonPortOptions=Name=MTA, Family=inet, Addr=127.0.0.1, Port=%d", r.port),
		"O QueueDirectory=" + filepath.Join(dir, "spool/mqueue"),
		"O AliasFile=" + filepath.Join(dir, "etc/aliases"),
		"O MailSpoolDirectory=" + filepath.Join(dir, "mail"),
		"O PidFile=" + filepath.Join(dir, "run/sendmail.pid"),
		"O AccessFile=" + filepath.Join(dir, "etc/access"),
		"O MailerTable=" + filepath.Join(dir, "etc/mailertable"),
		"O VirtUserTable=" + filepath.Join(dir, "etc/virtusertable"),
		"O AuthFile=" + filepath.Join(dir, "etc/auth"),
		"O SmrshDirectory=" + filepath.Join(dir, "etc/smrsh"),
		"Dj" + "posthorn.test",
		// No test asks the machine's resolver: a port where nothing
		// listens, so remote domains are a temporary DNS failure unless
		// a test starts its own DNS server and sets ResolverServers.
		fmt.Sprintf("O ResolverServers=127.0.0.1:%d", freePort(t)),
	}
	lines = append(lines, extra...)
	r.cf = filepath.Join(dir, "etc/sendmail.cf")
	if err := os.WriteFile(r.cf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *root) path(p string) string { return filepath.Join(r.dir, p) }
func (r *root) addr() string         { return fmt.Sprintf("127.0.0.1:%d", r.port) }

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary (or a link to it) with stdin and returns its output.
func run(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	// A private HOME: a submission that fails keeps the message in
	// ~/dead.letter, which must not be the machine's /root.
	cmd.Env = append(os.Environ(), "TZ=UTC", "HOME="+t.TempDir())
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return result{out.String(), errb.String(), code}
}

// waitGreeting connects to addr until it answers or the bound passes, and
// returns the first line.
func waitGreeting(t testing.TB, addr string) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(30 * time.Second))
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err == nil {
				return c, r, line
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no SMTP greeting on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startDaemon runs `sendmail -C cf -bD args…` in the foreground and stops it
// (SIGTERM) when the test ends.
func startDaemon(t testing.TB, r *root, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"-C", r.cf, "-bD"}, args...)...)
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

func netDial(addr string) (net.Conn, error) {
	return net.DialTimeout("tcp", addr, 200*time.Millisecond)
}

// sendMail is one SMTP transaction with the go-smtp client, without TLS
// (the test daemons offer none).
func sendMail(addr, from string, to []string, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

// copySendmailJob copies the qf and df of job id from dir src into the queue
// directory dst, with the qf's creation time (T) moved to created and its
// last attempt (K, when set) moved by the same amount, so that a job
// captured on a fixed date has the same age on every run.
func copySendmailJob(t *testing.T, src, dst, id string, created time.Time) {
	t.Helper()
	df, err := os.ReadFile(filepath.Join(src, "df"+id))
	if err != nil {
		t.Fatal(err)
	}
	qf, err := os.ReadFile(filepath.Join(src, "qf"+id))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(qf), "\n")
	var shift int64
	for i, l := range lines {
		if strings.HasPrefix(l, "T") {
			old, err := strconv.ParseInt(strings.TrimSpace(l[1:]), 10, 64)
			if err != nil {
				t.Fatalf("qf%s: bad T line %q", id, l)
			}
			shift = created.Unix() - old
			lines[i] = fmt.Sprintf("T%d\n", created.Unix())
			break
		}
	}
	for i, l := range lines {
		if strings.HasPrefix(l, "K") {
			if old, err := strconv.ParseInt(strings.TrimSpace(l[1:]), 10, 64); err == nil && old != 0 {
				lines[i] = fmt.Sprintf("K%d\n", old+shift)
			}
			break
		}
	}
	if err := os.WriteFile(filepath.Join(dst, "df"+id), df, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "qf"+id), []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}
