package deliver

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFileDelivery(t *testing.T) {
	a, _, _ := testAgent(t, nil)
	dir := t.TempDir()
	path := filepath.Join(dir, "to-file.mbox")
	ctx := context.Background()
	must(t, a.File(ctx, path, Owner{}, msg("sender@client.example", "alias expansion test", "From a file\n")))
	must(t, a.File(ctx, path, Owner{}, msg("sender@client.example", "second", "x\n")))
	golden(t, "mbox/file-two-messages.golden", []byte(readFile(t, path)))
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640 (reference listing)", fi.Mode().Perm())
	}
	if err := a.File(ctx, "/dev/null", Owner{}, msg("a@x", "s", "b\n")); err != nil {
		t.Errorf("/dev/null: %v", err)
	}
	wantStatus(t, a.File(ctx, "relative/path", Owner{}, msg("a@x", "s", "b\n")), 554, "5.3.0")
}

func TestFileRefused(t *testing.T) {
	a, _, _ := testAgent(t, nil)
	dir := t.TempDir()
	ctx := context.Background()
	victim := filepath.Join(dir, "victim")
	must(t, os.WriteFile(victim, []byte("x"), 0o600))
	must(t, os.Symlink(victim, filepath.Join(dir, "link")))
	// Unsafe targets fail permanently, in sendmail's *file* mailer words.
	must(t, os.WriteFile(filepath.Join(dir, "script"), []byte("#!/bin/sh\n"), 0o755))
	must(t, os.Link(victim, filepath.Join(dir, "hardlink")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	for name, want := range map[string]string{
		"link":     "Symbolic links not allowed",
		"script":   "Executable files not allowed",
		"hardlink": "Hard links not allowed",
		"fifo":     "Regular files only",
	} {
		p := filepath.Join(dir, name)
		st := wantStatus(t, a.File(ctx, p, Owner{}, msg("a@x", "s", "b\n")), 554, "5.3.0")
		if st.Text != "cannot open "+p+": "+want {
			t.Errorf("%s: text %q", name, st.Text)
		}
	}
	wantStatus(t, a.File(ctx, filepath.Join(dir, "no/such/dir/f"), Owner{}, msg("a@x", "s", "b\n")), 550, "5.0.0")
	if readFile(t, victim) != "x" {
		t.Error("victim changed")
	}
}

// TestSafeFileEnvironment: targets are looked up inside the directory;
// neither ".." nor a symlinked directory leads out.
func TestSafeFileEnvironment(t *testing.T) {
	safe := t.TempDir()
	outside := t.TempDir()
	a, _, _ := testAgent(t, func(o *Options) { o.SafeFileEnvironment = safe })
	ctx := context.Background()
	must(t, os.MkdirAll(filepath.Join(safe, "var/tmp"), 0o755))
	must(t, a.File(ctx, "/var/tmp/x.mbox", Owner{}, msg("a@x", "s", "b\n")))
	if _, err := os.Stat(filepath.Join(safe, "var/tmp/x.mbox")); err != nil {
		t.Errorf("not written inside SafeFileEnvironment: %v", err)
	}
	// A name that already carries the directory is used as is.
	must(t, a.File(ctx, filepath.Join(safe, "var/tmp/x.mbox"), Owner{}, msg("a@x", "s", "b\n")))
	if n := strings.Count(readFile(t, filepath.Join(safe, "var/tmp/x.mbox")), "From a@x "); n != 2 {
		t.Errorf("%d messages, want 2", n)
	}
	// A symlinked directory pointing outside resolves inside the root.
	must(t, os.Symlink(outside, filepath.Join(safe, "escape")))
	err := a.File(ctx, "/escape/y.mbox", Owner{}, msg("a@x", "s", "b\n"))
	if _, serr := os.Stat(filepath.Join(outside, "y.mbox")); serr == nil {
		t.Fatalf("wrote outside SafeFileEnvironment (err %v)", err)
	}
	err = a.File(ctx, "/../../../.."+outside+"/z.mbox", Owner{}, msg("a@x", "s", "b\n"))
	if _, serr := os.Stat(filepath.Join(outside, "z.mbox")); serr == nil {
		t.Fatalf("'..' led outside SafeFileEnvironment (err %v)", err)
	}
}

// TestFileAsOtherUser runs the append in the child with another uid: the
// file is created by that user, and a directory the user may not write is
// a permanent "Can't create output".
func TestFileAsOtherUser(t *testing.T) {
	needRoot(t)
	exe := executableCopy(t)
	a, _, log := testAgent(t, func(o *Options) { o.Child = []string{exe, ChildFlag} })
	u := &User{Name: "other", UID: 4242, GID: 4243, Home: "/"}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	userDir := filepath.Join(dir, "user")
	must(t, os.Mkdir(userDir, 0o755))
	must(t, os.Chown(userDir, 4242, 4243))
	ctx := context.Background()
	path := filepath.Join(userDir, "box")
	must(t, a.File(ctx, path, Owner{User: u, Restricted: true}, msg("sender@client.example", "as user", "From child\n")))
	must(t, a.File(ctx, path, Owner{User: u, Restricted: true}, msg("", "again", "no newline")))
	var st unix.Stat_t
	must(t, unix.Stat(path, &st))
	if st.Uid != 4242 || st.Gid != 4243 || st.Mode&0o777 != 0o640 {
		t.Errorf("owner %d:%d mode %o, want 4242:4243 640", st.Uid, st.Gid, st.Mode&0o777)
	}
	got := readFile(t, path)
	want := "From sender@client.example Wed Nov 25 04:34:12 2026\nReturn-Path: <sender@client.example>\nSubject: as user\n\n>From child\n\n" +
		"From MAILER-DAEMON Wed Nov 25 04:34:12 2026\nReturn-Path: <>\nSubject: again\n\nno newline\n\n"
	if got != want {
		t.Errorf("child wrote:\n%q\nwant\n%q", got, want)
	}
	// The user may not write to a root-owned directory: permanent.
	st2 := wantStatus(t, a.File(ctx, filepath.Join(dir, "rootonly"), Owner{User: u}, msg("a@x", "s", "b\n")), 550, "5.0.0")
	if !strings.Contains(st2.Text, "Permission denied") {
		t.Errorf("text %q", st2.Text)
	}
	if !strings.Contains(log.String(), "as uid 4242") {
		t.Errorf("failure not logged: %q", log.String())
	}
}

func TestChildProtocol(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "box")
	args := []string{childFile, path, "", "600", "From a@x Thu Jan  1 00:00:00 1970\n", "11", "5", "1s", "1m"}
	var out strings.Builder
	// Body shorter than announced: nothing is kept.
	if code := RunChild(args, strings.NewReader("Subject: x\nbod"), &out); code != 75 {
		t.Errorf("short input: exit %d, out %q", code, out.String())
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("partial message kept: %q", b)
	}
	out.Reset()
	if code := RunChild(args, strings.NewReader("Subject: x\nbody\n"), &out); code != 0 || out.String() != "OK\n" {
		t.Errorf("exit %d, out %q", code, out.String())
	}
	out.Reset()
	if code := RunChild([]string{"bogus"}, strings.NewReader(""), &out); code == 0 || !strings.HasPrefix(out.String(), "554 5.3.0 ") {
		t.Errorf("bad args: exit %d, out %q", code, out.String())
	}
	out.Reset()
	twoLines := append([]string{}, args...)
	twoLines[4] = "From a@x\nFrom b@y\n"
	if code := RunChild(twoLines, strings.NewReader("Subject: x\nbody\n"), &out); code == 0 || !strings.Contains(out.String(), "bad From_ line") {
		t.Errorf("two From_ lines: exit %d, out %q", code, out.String())
	}
	if st := parseStatusLine("452 4.3.1 /x: No space left on device"); st == nil || st.Code != 452 || st.Enhanced != "4.3.1" || st.Text != "/x: No space left on device" {
		t.Errorf("parseStatusLine: %+v", st)
	}
	if parseStatusLine("OK") != nil || parseStatusLine("250 2.0.0 fine") != nil {
		t.Error("parseStatusLine accepted a non-failure")
	}
}
