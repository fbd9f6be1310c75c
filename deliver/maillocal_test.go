package deliver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func mailLocalOptions(t *testing.T) (Options, string) {
	spool := t.TempDir()
	return Options{
		MailSpoolDirectory: spool,
		LookupUser:         fixedUsers(itoa(os.Geteuid())),
		Now:                func() time.Time { return testTime },
		LockTimeout:        time.Second,
	}, spool
}

// TestMailLocalReference delivers the reference capture's input twice, as
// the capture did: the result is the stock mail.local mailbox except for
// the one quoting difference (see TestRenderAgainstReference).
func TestMailLocalReference(t *testing.T) {
	opt, spool := mailLocalOptions(t)
	ref, _ := os.ReadFile("testdata/reference-input.txt")
	for range 2 {
		var stderr strings.Builder
		if code := MailLocal([]string{"-f", "sender@client.example", "alice"}, strings.NewReader(string(ref)), &stderr, opt); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	}
	golden(t, "mbox/maillocal-reference-twice.golden", []byte(readFile(t, filepath.Join(spool, "alice"))))
	// And without the final newline: one is added, no stale bytes.
	if code := MailLocal([]string{"-f", "<>", "bob"}, strings.NewReader(strings.TrimSuffix(string(ref), "\n")), os.Stderr, opt); code != 0 {
		t.Fatal(code)
	}
	got := readFile(t, filepath.Join(spool, "bob"))
	if !strings.HasPrefix(got, "From MAILER-DAEMON ") || !strings.HasSuffix(got, "\nlast line (newline-terminated)\n\n") {
		t.Errorf("no-final-newline delivery: %q", got)
	}
}

func TestMailLocalExitStatus(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		setup  func(t *testing.T, spool string)
		code   int
		stderr string
		boxes  []string
	}{
		{"two users", []string{"-f", "a@x", "alice", "bob"}, nil, 0, "", []string{"alice", "bob"}},
		{"unknown user", []string{"alice", "nosuch", "bob"}, nil, 67, "mail.local: nosuch: User unknown\n", []string{"alice", "bob"}},
		{"temporary failure wins", []string{"nosuch", "alice", "bob"}, func(t *testing.T, spool string) {
			must(t, os.Symlink("/etc/passwd", filepath.Join(spool, "alice")))
		}, 75, "mail.local: nosuch: User unknown\nmail.local: %s/alice: irregular file (symbolic link)\n", []string{"bob"}},
		{"locked", []string{"alice"}, func(t *testing.T, spool string) {
			must(t, os.WriteFile(filepath.Join(spool, "alice.lock"), nil, 0o600))
		}, 75, "mail.local: %s/alice: mailbox is locked\n", nil},
		{"no user", []string{"-f", "a@x"}, nil, 64, mailLocalUsage + "\n", nil},
		{"bad flag", []string{"-x", "alice"}, nil, 64, "mail.local: illegal option -- x\n" + mailLocalUsage + "\n", nil},
		{"lmtp", []string{"-l"}, nil, 64, "mail.local: LMTP mode (-l) is not supported\n" + mailLocalUsage + "\n", nil},
		{"-f without value", []string{"-f"}, nil, 64, "mail.local: option requires an argument -- f\n" + mailLocalUsage + "\n", nil},
		{"flags bundled", []string{"-7dbfa@x", "--", "alice"}, nil, 0, "", []string{"alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opt, spool := mailLocalOptions(t)
			if tt.setup != nil {
				tt.setup(t, spool)
			}
			var stderr strings.Builder
			code := MailLocal(tt.args, strings.NewReader("Subject: x\n\nbody\n"), &stderr, opt)
			want := tt.stderr
			if strings.Contains(want, "%s") {
				want = strings.ReplaceAll(want, "%s", spool)
			}
			if code != tt.code || stderr.String() != want {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, stderr.String(), tt.code, want)
			}
			for _, b := range tt.boxes {
				if got := readFile(t, filepath.Join(spool, b)); !strings.HasSuffix(got, "\nSubject: x\n\nbody\n\n") {
					t.Errorf("%s: %q", b, got)
				}
			}
		})
	}
}

// TestMailLocalDiskFull: -b turns a full disk into a permanent failure;
// without it the exit is 75.
func TestMailLocalDiskFull(t *testing.T) {
	needRoot(t)
	opt, spool := mailLocalOptions(t)
	if err := unix.Mount("tmpfs", spool, "tmpfs", 0, "size=16k"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(spool, unix.MNT_DETACH) })
	big := "Subject: big\n\n" + strings.Repeat("x", 64<<10) + "\n"
	var stderr strings.Builder
	if code := MailLocal([]string{"alice"}, strings.NewReader(big), &stderr, opt); code != 75 || !strings.Contains(stderr.String(), "No space left on device") {
		t.Errorf("exit %d, %q", code, stderr.String())
	}
	if code := MailLocal([]string{"-b", "alice"}, strings.NewReader(big), &stderr, opt); code != 69 {
		t.Errorf("-b: exit %d", code)
	}
	if fi, err := os.Stat(filepath.Join(spool, "alice")); err != nil || fi.Size() != 0 {
		t.Errorf("mailbox after failures: %v %v", fi, err)
	}
}

func TestSpoolInputSplit(t *testing.T) {
	tests := []struct{ in, header, body string }{
		{"A: 1\nB: 2\n\nbody\n", "A: 1\nB: 2\n", "body\n"},
		{"A: 1\n\n\nbody", "A: 1\n", "\nbody"},
		{"A: 1\n", "A: 1\n", ""},
		{"\nbody only\n", "", "body only\n"},
		{"", "", ""},
		{"A: 1\r\n\r\nbody\r\n", "A: 1\r\n", "body\r\n"},
		{"A: " + strings.Repeat("x", 5000) + "\n\nb", "A: " + strings.Repeat("x", 5000) + "\n", "b"},
	}
	for _, tt := range tests {
		m, cleanup, err := spoolInput(strings.NewReader(tt.in))
		if err != nil {
			t.Fatal(err)
		}
		body := ""
		if m.BodySize > 0 {
			b := make([]byte, m.BodySize)
			m.Body.ReadAt(b, 0)
			body = string(b)
		}
		if string(m.Header) != tt.header || body != tt.body {
			t.Errorf("%.20q: header %.20q body %.20q", tt.in, m.Header, body)
		}
		cleanup()
	}
}

// FuzzSpoolInput: any input splits into header and body that give the
// input back with exactly one empty line (LF or CRLF) between them.
func FuzzSpoolInput(f *testing.F) {
	f.Add("A: 1\n\nbody\n")
	f.Add("\n")
	f.Add("no header end")
	f.Add("A: 1\r\n\r\nb")
	f.Fuzz(func(t *testing.T, in string) {
		m, cleanup, err := spoolInput(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		body := make([]byte, m.BodySize)
		if m.BodySize > 0 {
			if _, err := m.Body.ReadAt(body, 0); err != nil {
				t.Fatal(err)
			}
		}
		h := string(m.Header)
		if h+string(body) != in && h+"\n"+string(body) != in && h+"\r\n"+string(body) != in {
			t.Fatalf("%q split into %q and %q", in, h, body)
		}
	})
}
