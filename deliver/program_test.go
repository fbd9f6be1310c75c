package deliver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// script writes an executable shell script into dir.
func script(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, []byte("#!/bin/sh\n"+text), 0o755))
	return p
}

func TestProgramStdinAndEnvironment(t *testing.T) {
	a, _, _ := testAgent(t, func(o *Options) { o.ProgramEnv = []string{"EXTRA=1"} })
	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "out")
	// No shell syntax: run directly, the arguments split at blanks.
	prog := script(t, dir, "prog", `cat > "$1"; env | sort > "$1.env"; pwd > "$1.pwd"; echo "$#" > "$1.argc"`+"\n")
	ctx := context.Background()
	home := t.TempDir()
	os.Chmod(home, 0o755)
	owner := Owner{User: &User{Name: "me", UID: os.Geteuid(), GID: os.Getegid(), Home: home}}
	m := msg("sender@client.example", "to a program", "From the body\nlast")
	must(t, a.Program(ctx, "|"+prog+" "+out, owner, m))
	want := "From sender@client.example Wed Nov 25 04:34:12 2026\nReturn-Path: <sender@client.example>\nSubject: to a program\n\nFrom the body\nlast\n"
	if got := readFile(t, out); got != want {
		t.Errorf("stdin:\n%q\nwant\n%q", got, want)
	}
	env := readFile(t, out+".env")
	for _, v := range []string{"AGENT=sendmail", "EXTRA=1"} {
		if !strings.Contains(env, v+"\n") {
			t.Errorf("environment lacks %s:\n%s", v, env)
		}
	}
	if strings.Contains(env, "HOME=") || strings.Contains(env, "GOPATH=") {
		t.Errorf("environment not clean:\n%s", env)
	}
	if got := strings.TrimSpace(readFile(t, out+".pwd")); got != home {
		t.Errorf("directory %q, want the user's home %q", got, home)
	}
	if got := strings.TrimSpace(readFile(t, out+".argc")); got != "1" {
		t.Errorf("argc %s", got)
	}
}

func TestProgramShell(t *testing.T) {
	a, _, _ := testAgent(t, nil)
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	must(t, a.Program(context.Background(), "cat > "+out+" && echo done >> "+out, Owner{}, msg("a@x", "s", "b\n")))
	if got := readFile(t, out); !strings.HasSuffix(got, "\nb\ndone\n") {
		t.Errorf("got %q", got)
	}
}

func TestProgramExitStatus(t *testing.T) {
	a, _, _ := testAgent(t, nil)
	tests := []struct {
		cmd      string
		code     int
		enhanced string
		text     string
	}{
		{"exit 75", 450, "4.0.0", `"|exit 75"... Deferred`},
		{"echo busy >&2; exit 75", 450, "4.0.0", `"|echo busy >&2; exit 75"... Deferred: busy`},
		{"echo no such list; echo second line; exit 1", 554, "5.3.0", `"|echo no such list; echo second line; exit 1"... unknown mailer error 1: no such list; second line`},
		{"exit 67", 550, "5.1.1", `"|exit 67"... User unknown`},
		{"exit 74", 451, "4.0.0", `"|exit 74"... I/O error`},
		{"exit 100", 554, "5.3.0", `"|exit 100"... unknown mailer error 100`},
		{"/nonexistent/program", 554, "5.3.0", ""},
		{"kill -9 $$", 451, "4.0.0", `"|kill -9 $$"... program killed by a signal`},
	}
	for _, tt := range tests {
		st := wantStatus(t, a.Program(context.Background(), tt.cmd, Owner{}, msg("a@x", "s", "b\n")), tt.code, tt.enhanced)
		if tt.text != "" && st.Text != tt.text {
			t.Errorf("%s: text %q, want %q", tt.cmd, st.Text, tt.text)
		}
		var pe *ProgramError
		if !errors.As(st, &pe) {
			t.Errorf("%s: no ProgramError in %v", tt.cmd, st)
		}
	}
}

func TestProgramNotReadingStdin(t *testing.T) {
	a, _, _ := testAgent(t, nil)
	big := strings.Repeat("a line of a big message that the program never reads\n", 40000)
	must(t, a.Program(context.Background(), "/bin/true", Owner{}, msg("a@x", "s", big)))
}

func TestProgramTimeout(t *testing.T) {
	a, _, log := testAgent(t, func(o *Options) { o.ProgramTimeout = 300 * time.Millisecond })
	start := time.Now()
	// The shell's child keeps the output pipe open: the whole group must die.
	st := wantStatus(t, a.Program(context.Background(), "sleep 30; echo late", Owner{}, msg("a@x", "s", "b\n")), 451, "4.4.1")
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if !strings.Contains(st.Text, "timed out after 300ms") || !strings.Contains(log.String(), "killed after 300ms") {
		t.Errorf("text %q log %q", st.Text, log.String())
	}
}

func TestProgramAsOtherUser(t *testing.T) {
	needRoot(t)
	a, _, _ := testAgent(t, nil)
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	out := filepath.Join(dir, "id")
	u := &User{Name: "other", UID: 4242, GID: 4243, Groups: []int{4244}, Home: "/nonexistent"}
	must(t, a.Program(context.Background(), "id > "+out+"; pwd >> "+out, Owner{User: u}, msg("a@x", "s", "b\n")))
	got := readFile(t, out)
	if !strings.Contains(got, "uid=4242 gid=4243 groups=4243,4244") || !strings.HasSuffix(got, "\n/\n") {
		t.Errorf("ran as / in: %q", got)
	}
	// A home the user cannot enter: the program runs in / rather than
	// failing (sendmail's behaviour).
	closed := filepath.Join(dir, "closed-home")
	os.Mkdir(closed, 0o700)
	u.Home = closed
	must(t, a.Program(context.Background(), "pwd > "+out+"3", Owner{User: u}, msg("a@x", "s", "b\n")))
	if got := readFile(t, out+"3"); got != "/\n" {
		t.Errorf("closed home: ran in %q", got)
	}
	// Without an owner: DefaultUser (set to 4250:4251 here).
	a2, _, _ := testAgent(t, func(o *Options) { o.DefaultUser = "4250:4251" })
	must(t, a2.Program(context.Background(), "id > "+out+"2", Owner{}, msg("a@x", "s", "b\n")))
	if got := readFile(t, out+"2"); !strings.HasPrefix(got, "uid=4250 gid=4251 ") {
		t.Errorf("DefaultUser: %q", got)
	}
}

func TestProgramRestricted(t *testing.T) {
	a, spool, log := testAgent(t, nil)
	smrsh := filepath.Join(spool, "smrsh")
	must(t, os.Mkdir(smrsh, 0o755))
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	script(t, smrsh, "store", `cat > "$1"; echo "$PATH" >> "$1"`+"\n")
	must(t, os.Symlink("/bin/cat", filepath.Join(smrsh, "cat")))
	ctx := context.Background()
	owner := Owner{User: &User{Name: "me", UID: os.Geteuid(), GID: os.Getegid(), Home: "/"}, Restricted: true}
	// The directory part is dropped: /usr/local/bin/store runs smrsh/store.
	must(t, a.Program(ctx, "/usr/local/bin/store "+out, owner, msg("a@x", "s", "b\n")))
	if got := readFile(t, out); !strings.HasSuffix(got, "\nb\n/bin:/usr/bin\n") {
		t.Errorf("got %q", got)
	}
	must(t, a.Program(ctx, "exec /usr/bin/store "+out+" || exit 75 #me", owner, msg("a@x", "s2", "b\n")))
	for _, bad := range []string{"/bin/sh -c 'rm -rf /'", "cat > " + out, "cat `id`", "store $HOME", "nosuch", "store x; id",
		"IFS=' ' && exec /usr/bin/store " + out, "LD_PRELOAD=/tmp/x.so store " + out, "PATH=/tmp exec store " + out} {
		st := wantStatus(t, a.Program(ctx, bad, owner, msg("a@x", "s", "b\n")), 554, "5.0.0")
		if !strings.Contains(st.Text, "Service unavailable: smrsh: ") {
			t.Errorf("%s: %q", bad, st.Text)
		}
	}
	if !strings.Contains(log.String(), `smrsh: "sh" not available for sendmail programs (stat failed)`) {
		t.Errorf("log: %q", log.String())
	}
	// The same commands from the aliases file are not restricted.
	must(t, a.Program(ctx, "cat > "+out, Owner{}, msg("a@x", "s", "b\n")))
}

func TestNeedsShell(t *testing.T) {
	tests := map[string]bool{
		"/usr/bin/logger -t to-prog -p mail.info": false,
		"/usr/bin/vacation -a alias user":         false,
		"logger -t x":                             true, // no absolute path: the shell searches
		"/bin/cat > /dev/null":                    true,
		"/usr/bin/procmail -f-":                   false,
		"IFS=' ' && exec /usr/bin/procmail":       true,
		"/bin/echo $HOME":                         true,
		"X=1 /bin/env":                            true,
		"/bin/echo 'quoted'":                      true,
		"/bin/echo ~user":                         true,
	}
	for cmd, want := range tests {
		if got := needsShell(cmd); got != want {
			t.Errorf("needsShell(%q) = %v, want %v", cmd, got, want)
		}
	}
}

func TestSmrshRewrite(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"procmail", "vacation"} {
		script(t, dir, p, "")
	}
	must(t, os.WriteFile(filepath.Join(dir, "notexec"), nil, 0o644))
	must(t, os.Mkdir(filepath.Join(dir, "subdir"), 0o755))
	tests := []struct {
		in, want, err string
	}{
		{"/usr/bin/vacation -a x me", dir + "/vacation -a x me", ""},
		{"vacation me", dir + "/vacation me", ""},
		{`"/usr/bin/procmail" -f-`, dir + "/procmail -f-", ""},
		{"exec /usr/bin/procmail -f- || exit 75 #user", "exec " + dir + "/procmail -f- || exit 75 #user", ""},
		{"exec procmail", "exec " + dir + "/procmail", ""},
		{"procmail && echo done", dir + "/procmail && echo done", ""},
		{"procmail '{x}' \"a b\"", dir + "/procmail '{x}' \"a b\"", ""},
		// NAME=value is the program word, reduced to its last component.
		{"LD_PRELOAD=/home/u/evil.so procmail", "", `smrsh: "evil.so" not available for sendmail programs (stat failed)`},
		{"BASH_ENV=~/x.sh procmail", "", `smrsh: "x.sh" not available for sendmail programs (stat failed)`},
		{"PATH=/tmp exec procmail", "", `smrsh: "tmp" not available for sendmail programs (stat failed)`},
		{"IFS=x", "", `smrsh: "IFS=x" not available for sendmail programs (stat failed)`},
		{"X=/usr/bin/vacation me", dir + "/vacation me", ""}, // as smrsh: the whole word is replaced
		{"exec", "", "smrsh: missing command to exec"},
		{"procmail && exec", "", "smrsh: missing command to exec"},
		{"notexec", "", `smrsh: "notexec" not available for sendmail programs`},
		{"subdir", "", `smrsh: "subdir" not available for sendmail programs (not a file)`},
		{"/bin/sh -c x", "", `smrsh: "sh" not available for sendmail programs (stat failed)`},
		{"procmail > /tmp/x", "", "smrsh: cannot use > in command"},
		{"procmail | sh", "", "smrsh: cannot use | in command"},
		{"procmail & sh", "", "smrsh: cannot use & in command"},
		{"procmail; sh", "", "smrsh: cannot use ; in command"},
		{"procmail $(id)", "", "smrsh: cannot use $ in command"},
		{"procmail \\$x", "", "smrsh: cannot use \\ in command"},
		{"procmail \xbb sh", "", "smrsh: cannot use \u00bb in command"}, // ';' with the high bit
		{"procmail\nsh", "", "smrsh: cannot use \n in command"},
		{"procmail 'unbalanced", "", "smrsh: unbalanced quote in command"},
		{"procmail && && x", "", "smrsh: no program in command"},
		{"..", "", `smrsh: ".." not available for sendmail programs (not a file)`},
		{"/", "", `smrsh: "" not available for sendmail programs (not a file)`},
	}
	for _, tt := range tests {
		got, err := smrshRewrite(tt.in, dir)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%q: got %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzSmrshRewrite: whatever a ~/.forward says, an accepted command has no
// forbidden character and every program it runs is in the directory.
func FuzzSmrshRewrite(f *testing.F) {
	dir := f.TempDir()
	os.WriteFile(filepath.Join(dir, "ok"), []byte("#!/bin/sh\n"), 0o755)
	f.Add("/usr/bin/ok -x")
	f.Add("IFS=' ' && exec /usr/bin/ok -f- || exit 75 #user")
	f.Add("exec /usr/bin/ok -f- || exit 75 #user")
	f.Add("A=1 B='2 3' ok && ok || exit 1")
	f.Add("LD_PRELOAD=/x/ok ok && echo 'a b'")
	f.Fuzz(func(t *testing.T, cmd string) {
		out, err := smrshRewrite(cmd, dir)
		if err != nil {
			return
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; strings.IndexByte("<>^();$`\\\r\n", c&0x7f) >= 0 {
				t.Fatalf("%q -> %q has a forbidden character", cmd, out)
			}
		}
		rest := out
		for rest != "" {
			seg, _, tail := cutOperator(rest)
			words, err := splitWords(seg)
			if err != nil {
				t.Fatalf("%q -> %q: %v", cmd, out, err)
			}
			for i, w := range words {
				text := seg[w.start:w.end]
				if i == 0 && unquote(text) == "exec" {
					continue
				}
				if b := unquote(text); b != "exit" && b != "echo" && text != filepath.Join(dir, "ok") {
					t.Fatalf("%q -> %q runs %q", cmd, out, text)
				}
				break
			}
			rest = tail
		}
	})
}
