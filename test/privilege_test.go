package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// setuidCopy copies path into dir as root-owned mode 4755, as a careless
// install would leave /usr/sbin/sendmail.
func setuidCopy(t *testing.T, path, dir string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, 0, 0)
	if err := os.Chmod(p, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSetuidInstallRunsAsInvokingUser: a set-user-ID root copy of posthorn,
// run by an ordinary user with their own -C file, or with -O options that
// point at their own files, does nothing as root (issue 9: it ran the
// user's alias program as root).
func TestSetuidInstallRunsAsInvokingUser(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	name := "phsuid" + strconv.Itoa(os.Getpid()%100000)
	uid, gid, home := testUser(t, base, name, "Setuid Example")
	binDir := filepath.Join(base, "bin")
	os.Mkdir(binDir, 0o755)
	asUser := func(bin string, args ...string) result {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "TZ=UTC"}
		cmd.Dir = home
		cmd.Stdin = strings.NewReader("Subject: setuid\n\nbody\n")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), code}
	}
	if id := asUser(setuidCopy(t, "/usr/bin/id", binDir)); !strings.Contains(id.stdout, "euid=0") {
		t.Skipf("set-user-ID bits are not honoured here: %q", id.stdout)
	}
	bin := setuidCopy(t, binary(t), binDir)

	// The user's own installation: queue, spool and aliases they own, with
	// an alias whose program records who runs it.
	mine := filepath.Join(home, "mta")
	for _, d := range []string{"spool/mqueue", "mail", "etc"} {
		os.MkdirAll(filepath.Join(mine, d), 0o755)
	}
	who := filepath.Join(mine, "who")
	aliasFile := filepath.Join(mine, "etc/aliases")
	os.WriteFile(aliasFile, []byte(fmt.Sprintf("pwn: \"|/bin/sh -c '/usr/bin/id -u > %s'\"\n", who)), 0o644)
	ownCf := filepath.Join(mine, "etc/sendmail.cf")
	os.WriteFile(ownCf, []byte(strings.Join([]string{
		"Cwlocalhost", "Djposthorn.test",
		"O QueueDirectory=" + filepath.Join(mine, "spool/mqueue"),
		"O AliasFile=" + aliasFile,
		"O MailSpoolDirectory=" + filepath.Join(mine, "mail"),
		"O DefaultUser=root:root",
		fmt.Sprintf("O DaemonPortOptions=Name=MTA, Family=inet, Addr=127.0.0.1, Port=%d", freePort(t)),
	}, "\n")+"\n"), 0o644)
	exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), mine).Run()

	// The administrator's configuration, which the user cannot change.
	r := newRoot(t)
	os.Chmod(r.dir, 0o755)
	os.Chmod(r.path("etc"), 0o755)

	for _, tc := range []struct {
		what string
		args []string
	}{
		{"own -C file", []string{"-C", ownCf, "-odi", "pwn"}},
		{"-O options", []string{"-C", r.cf, "-O", "QueueDirectory=" + filepath.Join(mine, "spool/mqueue"),
			"-oA" + aliasFile, "-O", "DefaultUser=root:root", "-odi", "pwn"}},
	} {
		os.Remove(who)
		got := asUser(bin, tc.args...)
		out, err := os.ReadFile(who)
		if err != nil {
			// Nothing ran: fine, as long as it was not root either.
			t.Logf("%s: the program did not run (exit %d %q)", tc.what, got.code, got.stderr)
			continue
		}
		if ran := strings.TrimSpace(string(out)); ran != strconv.Itoa(uid) {
			t.Errorf("%s: the user's program ran as uid %s, want %d (exit %d %q)", tc.what, ran, uid, got.code, got.stderr)
		}
	}

	// What the user may do still works: the -bv of an alias, as the user.
	if got := asUser(bin, "-C", ownCf, "-bv", "pwn"); got.code != 0 || !strings.Contains(got.stdout, "deliverable") {
		t.Errorf("-bv as the user: exit %d %q %q", got.code, got.stdout, got.stderr)
	}
}

// TestNonRootUserBoundaries: what an ordinary user may and may not do with
// the command line (posthorn installed without set-ID bits, as it is
// meant to be): sendmail's restrictqrun and restrictmailq rules, -C, -oQ
// and -O QueueDirectory against the administrator's queue, -d, and an
// alias program from the user's own configuration. Each refusal is
// checked, and the administrator's queue is left as it was.
func TestNonRootUserBoundaries(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	name := "phpriv" + strconv.Itoa(os.Getpid()%100000)
	uid, gid, home := testUser(t, base, name, "Privilege Example")
	os.Chmod(filepath.Dir(binary(t)), 0o755)
	asUser := func(args ...string) result {
		cmd := exec.Command(binary(t), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "TZ=UTC"}
		cmd.Dir = home
		cmd.Stdin = strings.NewReader("Subject: as a user\n\nbody\n")
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), code}
	}

	// The administrator's installation, with a job in its queue.
	r := newRoot(t, "O PrivacyOptions=authwarnings,restrictqrun,restrictmailq", "O DeliveryMode=queueonly")
	for _, d := range []string{r.dir, r.path("etc"), r.path("spool")} {
		os.Chmod(d, 0o755)
	}
	q := r.path("spool/mqueue")
	os.Chmod(q, 0o700)
	if got := run(t, binary(t), "Subject: the admin's\n\nbody\n", "-C", r.cf, "root"); got.code != 0 {
		t.Fatalf("queueing the admin's job: %+v", got)
	}
	before := queuedFiles(t, r)
	if len(before) != 1 {
		t.Fatalf("%d jobs in the admin's queue", len(before))
	}

	// The user's own installation: a queue, a spool, aliases with a program.
	mine := filepath.Join(home, "mta")
	for _, d := range []string{"spool/mqueue", "mail", "etc"} {
		os.MkdirAll(filepath.Join(mine, d), 0o755)
	}
	who := filepath.Join(mine, "who")
	aliasFile := filepath.Join(mine, "etc/aliases")
	os.WriteFile(aliasFile, []byte(fmt.Sprintf("pwn: \"|/bin/sh -c '/usr/bin/id -u > %s'\"\n", who)), 0o644)
	ownCf := func(queue string) string {
		p := filepath.Join(mine, "etc", fmt.Sprintf("sendmail-%d.cf", len(queue)))
		os.WriteFile(p, []byte(strings.Join([]string{
			"Cwlocalhost", "Djposthorn.test",
			"O QueueDirectory=" + queue,
			"O AliasFile=" + aliasFile,
			"O MailSpoolDirectory=" + filepath.Join(mine, "mail"),
			"O DefaultUser=root:root",
			fmt.Sprintf("O ResolverServers=127.0.0.1:%d", freePort(t)),
			fmt.Sprintf("O DaemonPortOptions=Name=MTA, Family=inet, Addr=127.0.0.1, Port=%d", freePort(t)),
		}, "\n")+"\n"), 0o644)
		return p
	}
	ownQueue := filepath.Join(mine, "spool/mqueue")
	mineCf, theirsCf := ownCf(ownQueue), ownCf(q)
	exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), mine).Run()

	for _, tc := range []struct {
		what string
		args []string
		code int
		out  string // in stdout or stderr
	}{
		{"-q under restrictqrun", []string{"-C", r.cf, "-q"}, 77, "You do not have permission to process the queue"},
		{"-qf under restrictqrun", []string{"-C", r.cf, "-qf"}, 77, "You do not have permission to process the queue"},
		{"-bp under restrictmailq", []string{"-C", r.cf, "-bp"}, 77, "You are not permitted to see the queue"},
		{"-oQ own queue, -q under restrictqrun (sendmail: one's own queue)", []string{"-C", r.cf, "-oQ" + ownQueue, "-q"}, 0, ""},
		{"-O QueueDirectory=own queue, -bp under restrictmailq (its group is the user's)", []string{"-C", r.cf, "-O", "QueueDirectory=" + ownQueue, "-bp"}, 0, " is empty"},
		{"-C own cf naming the admin's queue, -q", []string{"-C", theirsCf, "-q"}, 78, "can not chdir(" + q + "/): Permission denied"},
		{"-C own cf naming the admin's queue, -bp", []string{"-C", theirsCf, "-bp"}, 78, "can not chdir(" + q + "/): Permission denied"},
		{"-oQ the admin's queue, -q, own cf", []string{"-C", mineCf, "-oQ" + q, "-q"}, 78, "can not chdir(" + q + "/): Permission denied"},
		{"-d0.1 (allowed, as in sendmail)", []string{"-C", r.cf, "-d0.1", "-bt"}, 0, "Version posthorn"},
	} {
		got := asUser(tc.args...)
		if got.code != tc.code || !strings.Contains(got.stdout+got.stderr, tc.out) {
			t.Errorf("%s: exit %d %q %q, want %d and %q", tc.what, got.code, got.stdout, got.stderr, tc.code, tc.out)
		}
	}

	// restrictmailq lets the queue's group see it.
	os.Chown(q, 0, gid)
	os.Chmod(q, 0o750)
	if got := asUser("-C", r.cf, "-bp"); strings.Contains(got.stdout+got.stderr, "not permitted") {
		t.Errorf("-bp by a member of the queue's group: %+v", got)
	}
	os.Chmod(q, 0o700)

	// A user's own -C with DefaultUser=root runs the alias program as the user.
	got := asUser("-C", mineCf, "-odi", "pwn")
	out, err := os.ReadFile(who)
	if err != nil {
		t.Errorf("the user's own alias program did not run: exit %d %q", got.code, got.stderr)
	} else if ran := strings.TrimSpace(string(out)); ran != strconv.Itoa(uid) {
		t.Errorf("the user's alias program ran as uid %s, want %d", ran, uid)
	}

	after := queuedFiles(t, r)
	if len(after) != 1 {
		t.Errorf("the admin's queue has %d jobs after the user's attempts", len(after))
	}
	for n, qf := range before {
		if after[n] != qf {
			t.Errorf("the admin's %s changed:\n%s", n, after[n])
		}
	}
	if _, err := os.Stat(r.path("mail/root")); err == nil {
		t.Errorf("the admin's job was delivered by a user")
	}
}
