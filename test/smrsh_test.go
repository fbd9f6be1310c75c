package test

// Black-box tests of what a ~/.forward may make posthorn do: smrsh's rules
// for programs and the refusal of symlinked file targets. They create a
// real user (useradd) and need root; without it they skip.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// forwardUser is a test account with a home directory every user can enter
// and a root (posthorn installation) whose smrsh directory holds logit.
type forwardUser struct {
	name     string
	uid, gid int
	home     string
	r        *root
}

func newForwardUser(t *testing.T, prefix string) *forwardUser {
	t.Helper()
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755)
	name := prefix + strconv.Itoa(os.Getpid()%100000)
	uid, gid, home := testUser(t, base, name, "Forward Example")
	r := newRoot(t)
	os.Chmod(r.dir, 0o755)
	// File deliveries as the user re-execute the binary: the user must be
	// able to reach it.
	os.Chmod(filepath.Dir(binary(t)), 0o755)
	smrsh := r.path("etc/smrsh")
	if err := os.Mkdir(smrsh, 0o755); err != nil {
		t.Fatal(err)
	}
	// The approved program: it records its environment in $1 and calls a
	// helper through PATH, as real filters call sendmail or formail.
	logit := "#!/bin/bash\ncat >/dev/null\nenv > \"$1\"\nhelper 2>/dev/null\nexit 0\n"
	if err := os.WriteFile(filepath.Join(smrsh, "logit"), []byte(logit), 0o755); err != nil {
		t.Fatal(err)
	}
	return &forwardUser{name: name, uid: uid, gid: gid, home: home, r: r}
}

// forward writes the user's ~/.forward, owned by the user.
func (u *forwardUser) forward(t *testing.T, text string) {
	t.Helper()
	p := filepath.Join(u.home, ".forward")
	if err := os.WriteFile(p, []byte(text+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, u.uid, u.gid)
}

// userFile writes a file in the user's home, owned by the user.
func (u *forwardUser) userFile(t *testing.T, rel, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(u.home, rel)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.Chown(filepath.Dir(p), u.uid, u.gid)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, u.uid, u.gid)
	return p
}

// send submits one message from root to the user and delivers it at once
// (-odi), as root submits.
func (u *forwardUser) send(t *testing.T, subject string) result {
	t.Helper()
	return run(t, binary(t), "Subject: "+subject+"\n\nbody\n", "-C", u.r.cf, "-odi", "-f", "root", u.name)
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestSmrshForwardPrograms: a ~/.forward may run only the programs in
// SmrshDirectory, with the clean environment; NAME=value words cannot set
// the program's environment (issue 9: LD_PRELOAD, BASH_ENV, PATH).
func TestSmrshForwardPrograms(t *testing.T) {
	u := newForwardUser(t, "phsmr")
	h := u.home
	u.userFile(t, "evil.sh", "touch "+h+"/pwned.bashenv\n", 0o755)
	u.userFile(t, "bin/helper", "#!/bin/sh\n/usr/bin/touch "+h+"/pwned.path\n", 0o755)
	preload := ""
	if _, err := exec.LookPath("cc"); err == nil {
		src := u.userFile(t, "evil.c", "#include <stdio.h>\n__attribute__((constructor)) static void pwn(void) { fclose(fopen(\""+h+"/pwned.preload\", \"w\")); }\n", 0o644)
		so := filepath.Join(h, "evil.so")
		if out, err := exec.Command("cc", "-shared", "-fPIC", "-o", so, src).CombinedOutput(); err != nil {
			t.Fatalf("cc: %v %s", err, out)
		}
		os.Chmod(so, 0o755)
		preload = so
	}

	refused := []struct{ line, why, ran string }{
		{`"|BASH_ENV=` + h + `/evil.sh logit ` + h + `/ran.bashenv"`, `smrsh: "evil.sh" not available for sendmail programs (stat failed)`, "ran.bashenv"},
		{`"|PATH=` + h + `/bin exec logit ` + h + `/ran.path"`, `smrsh: "bin" not available for sendmail programs (stat failed)`, "ran.path"},
		{`"|exec"`, "smrsh: missing command to exec", ""},
		{`"|logit ` + h + `/ran.semi; logit x"`, "smrsh: cannot use ; in command", "ran.semi"},
	}
	if preload != "" {
		refused = append(refused, struct{ line, why, ran string }{
			`"|LD_PRELOAD=` + preload + ` logit ` + h + `/ran.preload"`, `smrsh: "evil.so" not available for sendmail programs (stat failed)`, "ran.preload"})
	}
	for _, tc := range refused {
		u.forward(t, tc.line)
		if got := u.send(t, tc.line); got.code != 0 {
			t.Fatalf("%s: submission exit %d %q", tc.line, got.code, got.stderr)
		}
		if tc.ran != "" && exists(filepath.Join(h, tc.ran)) {
			t.Errorf("%s: logit ran", tc.line)
		}
		if !fileContains(u.r.path("mail/root"), tc.why) {
			data, _ := os.ReadFile(u.r.path("mail/root"))
			t.Errorf("%s: no DSN with %q:\n%s", tc.line, tc.why, data)
		}
	}
	for _, m := range []string{"pwned.bashenv", "pwned.path", "pwned.preload"} {
		if exists(filepath.Join(h, m)) {
			t.Errorf("%s: the user's code ran through a ~/.forward program", m)
		}
	}

	// Approved: the path is dropped, exec is allowed, and the program sees
	// only the fixed environment.
	u.forward(t, `"|exec /usr/local/bin/logit `+h+`/ran.ok"`)
	if got := u.send(t, "approved"); got.code != 0 {
		t.Fatalf("approved: exit %d %q", got.code, got.stderr)
	}
	env, err := os.ReadFile(filepath.Join(h, "ran.ok"))
	if err != nil {
		t.Fatalf("the approved program did not run: %v", err)
	}
	vars := map[string]string{}
	for l := range strings.SplitSeq(strings.TrimSpace(string(env)), "\n") {
		k, v, _ := strings.Cut(l, "=")
		vars[k] = v
	}
	if vars["PATH"] != "/bin:/usr/bin" || vars["AGENT"] != "sendmail" {
		t.Errorf("environment: %q", env)
	}
	for k := range vars {
		switch k {
		case "PATH", "AGENT", "TZ", "PWD", "SHLVL", "_": // the last three are bash's own
		default:
			t.Errorf("unexpected %s in the program's environment:\n%s", k, env)
		}
	}
	if list := run(t, binary(t), "", "-C", u.r.cf, "-bp"); !strings.Contains(list.stdout, "is empty") {
		t.Errorf("refused programs left mail in the queue:\n%s", list.stdout)
	}
}

// TestForwardSymlinkFileFails: a ~/.forward file target that is a symlink
// fails permanently with sendmail's words, and the sender gets a DSN;
// issue 9 found it deferred for ever.
func TestForwardSymlinkFileFails(t *testing.T) {
	u := newForwardUser(t, "phsym")
	real := u.userFile(t, "real.mbox", "", 0o600)
	link := filepath.Join(u.home, "out.mbox")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, u.uid, u.gid)
	u.forward(t, link)
	if got := u.send(t, "to a symlink"); got.code != 0 {
		t.Fatalf("submission: exit %d %q", got.code, got.stderr)
	}
	if fileContains(real, "Subject: to a symlink") {
		t.Error("the message was written through the symlink")
	}
	want := "cannot open " + link + ": Symbolic links not allowed"
	if !fileContains(u.r.path("mail/root"), want) {
		data, _ := os.ReadFile(u.r.path("mail/root"))
		t.Errorf("no DSN with %q:\n%s", want, data)
	}
	if list := run(t, binary(t), "", "-C", u.r.cf, "-bp"); !strings.Contains(list.stdout, "is empty") {
		t.Errorf("the message stays queued:\n%s", list.stdout)
	}
}
