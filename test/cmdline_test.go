package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCommandLineErrors compares posthorn's answers to the ones real
// sendmail 8.17 gave (reference 06-cmdline-behaviour.txt).
func TestCommandLineErrors(t *testing.T) {
	r := newRoot(t)
	bin := binary(t)
	tests := []struct {
		args   []string
		stdin  string
		stderr string
		code   int
	}{
		{[]string{"-Z"}, "", "sendmail: illegal option -- Z\n", 64},
		{[]string{"-bz", "alice"}, "", "Frozen configurations unsupported\n", 64},
		{[]string{"--help"}, "", "Recipient names must be specified\n", 64},
		{[]string{"-bv"}, "", "Recipient names must be specified\n", 64},
		{[]string{"-C", r.cf}, "Subject: no recipients\n\nbody\n", "Recipient names must be specified\n", 64},
		{[]string{"-C", r.cf, "-O", "NoSuchOption=1", "-bv", "alice"}, "", "readcf: unknown option name NoSuchOption\n", 70},
		{[]string{"-C", "/nonexistent.cf", "-bv", "alice"}, "", "/nonexistent.cf: line 0: cannot open: No such file or directory\n", 72},
		{[]string{"-q5x"}, "", "Invalid time unit `x'\n", 64},
		{[]string{"-X"}, "", "sendmail: option requires an argument -- X\n", 64},
		{[]string{"-C", r.cf, "-bh"}, "", "", 0},
		{[]string{"-C", r.cf, "-bH"}, "", "", 0},
	}
	for _, tc := range tests {
		got := run(t, bin, tc.stdin, tc.args...)
		if got.stderr != tc.stderr || got.code != tc.code {
			t.Errorf("sendmail %s: got %q exit %d, want %q exit %d", strings.Join(tc.args, " "), got.stderr, got.code, tc.stderr, tc.code)
		}
	}
}

func TestUnknownOptionInFile(t *testing.T) {
	r := newRoot(t, "O NoSuchOption=1")
	cf, _ := os.ReadFile(r.cf)
	line := strings.Count(string(cf), "\n") // the option is the file's last line
	got := run(t, binary(t), "", "-C", r.cf, "-bp")
	if got.code != 78 || !strings.Contains(got.stderr, fmt.Sprintf("sendmail.cf: line %d: readcf: unknown option name NoSuchOption", line)) {
		t.Errorf("got %q exit %d", got.stderr, got.code)
	}
}

func TestIdentityBanner(t *testing.T) {
	r := newRoot(t)
	got := run(t, binary(t), "", "-C", r.cf, "-d0.1", "-bt")
	for _, want := range []string{
		"Version posthorn ",
		"(canonical domain name) $j = posthorn.test",
		"$=w = localhost ",
		"[127.0.0.1]",
		"O QueueDirectory=" + r.path("spool/mqueue"),
		fmt.Sprintf("O DaemonPortOptions=Name=MTA, Family=inet, Addr=127.0.0.1, Port=%d", r.port),
		"ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)\nEnter <ruleset> <address>\n> ",
	} {
		if !strings.Contains(got.stdout, want) {
			t.Errorf("-d0.1 -bt output lacks %q:\n%s", want, got.stdout)
		}
	}
	if got.code != 0 {
		t.Errorf("exit %d", got.code)
	}
	bt := run(t, binary(t), "$j\n$=w\n", "-C", r.cf, "-bt")
	if !strings.Contains(bt.stdout, "> posthorn.test\n> localhost\n") || !strings.Contains(bt.stdout, "\nposthorn.test\n") {
		t.Errorf("-bt macro/class answers wrong:\n%s", bt.stdout)
	}
	// =M numbers the mailers as sendmail's Debian configuration does.
	bt = run(t, binary(t), "=M\n", "-C", r.cf, "-bt")
	for _, want := range []string{"mailer 2 (*include*): ", "\nmailer 3 (local): ", "\nmailer 5 (esmtp): ", "\nmailer 8 (relay): "} {
		if !strings.Contains(bt.stdout, want) {
			t.Errorf("-bt =M lacks %q:\n%s", want, bt.stdout)
		}
	}
}

// TestDaemonForeground: -bD stays in the foreground, writes the pid file,
// greets, answers QUIT like sendmail, and on SIGTERM exits 0 and removes the
// pid file.
func TestDaemonForeground(t *testing.T) {
	r := newRoot(t)
	cmd := exec.Command(binary(t), "-C", r.cf, "-bD", "-q30m")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	c, rd, greeting := waitGreeting(t, r.addr())
	if !strings.HasPrefix(greeting, "220 posthorn.test ESMTP posthorn ") {
		t.Errorf("greeting %q", greeting)
	}
	fmt.Fprintf(c, "QUIT\r\n")
	if line, _ := rd.ReadString('\n'); line != "221 2.0.0 posthorn.test closing connection\r\n" {
		t.Errorf("QUIT answer %q", line)
	}
	c.Close()
	pid, err := os.ReadFile(r.path("run/sendmail.pid"))
	want := fmt.Sprintf("%d\n%s -C %s -bD -q30m\n", cmd.Process.Pid, binary(t), r.cf)
	if err != nil || string(pid) != want {
		t.Errorf("pid file %q (%v), want %q", pid, err, want)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("daemon exit after SIGTERM: %v", err)
	}
	if _, err := os.Stat(r.path("run/sendmail.pid")); !os.IsNotExist(err) {
		t.Error("pid file not removed")
	}
}

// TestDaemonDetaches: -bd returns once the daemon listens, and the daemon
// keeps running in its own session.
func TestDaemonDetaches(t *testing.T) {
	r := newRoot(t)
	start := time.Now()
	got := run(t, binary(t), "", "-C", r.cf, "-bd")
	if got.code != 0 {
		t.Fatalf("-bd exit %d: %s", got.code, got.stderr)
	}
	data, err := os.ReadFile(r.path("run/sendmail.pid"))
	if err != nil {
		t.Fatalf("no pid file after -bd returned (%v)", time.Since(start))
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(data), "\n", 2)[0])
	defer syscall.Kill(pid, syscall.SIGKILL)
	if sid, _ := syscall.Getpgid(pid); sid != pid {
		t.Errorf("daemon %d is not a process group leader (pgid %d)", pid, sid)
	}
	c, _, greeting := waitGreeting(t, r.addr())
	c.Close()
	if !strings.HasPrefix(greeting, "220 ") {
		t.Errorf("greeting %q", greeting)
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(r.path("run/sendmail.pid")); os.IsNotExist(err) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Error("detached daemon did not remove its pid file after SIGTERM")
}

func TestDaemonBindFailure(t *testing.T) {
	r := newRoot(t)
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	got := run(t, binary(t), "", "-C", r.cf, "-bd")
	if got.code != 71 || !strings.Contains(got.stderr, "daemon MTA: cannot bind") {
		t.Errorf("second daemon on the same port: exit %d, %q", got.code, got.stderr)
	}
}

// TestDevConfig is `make run`'s configuration: started from a directory
// holding conf/dev.cf, it answers on 127.0.0.1:2525 with state under ./var.
func TestDevConfig(t *testing.T) {
	if c, err := netDial("127.0.0.1:2525"); err == nil {
		c.Close()
		t.Skip("127.0.0.1:2525 is in use (a `make run` daemon?)")
	}
	wd := t.TempDir()
	os.MkdirAll(filepath.Join(wd, "conf"), 0o755)
	data, err := os.ReadFile("../conf/dev.cf")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(wd, "conf/dev.cf"), data, 0o644)
	cmd := exec.Command(binary(t), "-C", "conf/dev.cf", "-bD", "-q1m")
	cmd.Dir = wd
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			exited <- nil // for the deferred wait
			if strings.Contains(stderr.String(), "cannot bind") {
				t.Skip("127.0.0.1:2525 was taken meanwhile (another test run?)")
			}
			t.Fatalf("dev daemon exited: %s", stderr.String())
		default:
		}
		if c, err := netDial("127.0.0.1:2525"); err == nil {
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if !strings.HasPrefix(line, "220 ") {
				t.Errorf("greeting %q", line)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no greeting on 127.0.0.1:2525")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(wd, "var/run/sendmail.pid")); err != nil {
		t.Errorf("pid file not under ./var: %v", err)
	}
}

// TestNames: the binary dispatches on the name it is called by.
func TestNames(t *testing.T) {
	r := newRoot(t)
	if got := run(t, linkAs(t, "hoststat"), "", "-C", r.cf); got.code != 0 || got.stdout != "" {
		t.Errorf("hoststat: %+v", got)
	}
	if got := run(t, linkAs(t, "purgestat"), "", "-C", r.cf); got.code != 0 {
		t.Errorf("purgestat: %+v", got)
	}
	if got := run(t, linkAs(t, "mail.local"), ""); got.code != 64 || !strings.Contains(got.stderr, "usage") {
		t.Errorf("mail.local without users: %+v", got)
	}
}

func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	dest := t.TempDir()
	out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest).CombinedOutput()
	if err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, p := range []string{"usr/sbin/sendmail", "usr/bin/mailq", "usr/bin/newaliases", "usr/bin/hoststat",
		"usr/bin/purgestat", "usr/libexec/posthorn/mail.local", "etc/mail/sendmail.cf", "lib/systemd/system/posthorn.service"} {
		if _, err := os.Stat(filepath.Join(dest, p)); err != nil {
			t.Errorf("make install did not create %s: %v", p, err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(dest, "lib/systemd/system/posthorn.service"))
	if !strings.Contains(string(unit), "ExecStart=/usr/sbin/sendmail -bD -q30m") {
		t.Errorf("unit file: %s", unit)
	}
	// The installed default configuration must load.
	got := run(t, filepath.Join(dest, "usr/sbin/sendmail"), "", "-C", filepath.Join(dest, "etc/mail/sendmail.cf"), "-d0.1", "-bt")
	if got.code != 0 || !strings.Contains(got.stdout, "O DaemonPortOptions=Name=MTA-v4, Family=inet, Port=smtp, Addr=127.0.0.1; Name=MSA-v4, Family=inet, Port=submission, M=Ea, Addr=127.0.0.1") {
		t.Errorf("installed sendmail.cf: exit %d\n%s%s", got.code, got.stdout, got.stderr)
	}
}

// TestReloadOnHUP: SIGHUP re-reads the configuration; the listener stays
// and the next session sees the new greeting.
func TestReloadOnHUP(t *testing.T) {
	r := newRoot(t)
	cmd := startDaemon(t, r)
	c, _, first := waitGreeting(t, r.addr())
	c.Close()
	data, _ := os.ReadFile(r.cf)
	os.WriteFile(r.cf, append(data, []byte("O SmtpGreetingMessage=$j reloaded greeting\n")...), 0o644)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, _, line := waitGreeting(t, r.addr())
		c.Close()
		if line == "220 posthorn.test ESMTP reloaded greeting\r\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("greeting after SIGHUP %q (before: %q)", line, first)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTraceFileLogging: -X writes sendmail-format log lines to a file.
func TestTraceFileLogging(t *testing.T) {
	r := newRoot(t)
	logf := filepath.Join(t.TempDir(), "mail.log")
	cmd := exec.Command(binary(t), "-C", r.cf, "-bD", "-X", logf, "-L", "posthorn-test")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	data, _ := os.ReadFile(logf)
	if !strings.Contains(string(data), " posthorn-test[") || !strings.Contains(string(data), "starting daemon (posthorn ") {
		t.Errorf("log file:\n%s", data)
	}
}
