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
