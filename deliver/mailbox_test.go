package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMailboxCreateAndAppend(t *testing.T) {
	a, spool, _ := testAgent(t, nil)
	ctx := context.Background()
	if err := a.Mailbox(ctx, "alice", msg("a@x", "one", "From here\nbody\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Mailbox(ctx, "alice", msg("", "two", "no newline")); err != nil {
		t.Fatal(err)
	}
	golden(t, "mbox/mailbox-two-messages.golden", []byte(readFile(t, filepath.Join(spool, "alice"))))
	fi, _ := os.Stat(filepath.Join(spool, "alice"))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(spool, "alice.lock")); !os.IsNotExist(err) {
		t.Errorf("lock left behind: %v", err)
	}
}

func TestMailboxUnknownUser(t *testing.T) {
	a, spool, _ := testAgent(t, nil)
	for _, name := range []string{"nosuch", "", "..", "a/b", "x\ny"} {
		st := wantStatus(t, a.Mailbox(context.Background(), name, msg("a@x", "s", "b\n")), 550, "5.1.1")
		if !strings.HasSuffix(st.Text, "... User unknown") {
			t.Errorf("%q: text %q", name, st.Text)
		}
	}
	if ents, _ := os.ReadDir(spool); len(ents) != 0 {
		t.Errorf("spool not empty: %v", ents)
	}
}

func TestMailboxCreatedOwnedByUser(t *testing.T) {
	needRoot(t)
	a, spool, _ := testAgent(t, func(o *Options) {
		o.LookupUser = func(string) (*User, error) { return &User{Name: "dave", UID: 4242, GID: 4243}, nil }
	})
	if err := a.Mailbox(context.Background(), "dave", msg("a@x", "s", "b\n")); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Stat(filepath.Join(spool, "dave"), &st)
	if st.Uid != 4242 || st.Gid != 4243 || st.Mode&0o777 != 0o600 {
		t.Errorf("owner %d:%d mode %o, want 4242:4243 600", st.Uid, st.Gid, st.Mode&0o777)
	}
	// A second delivery appends to the user's own mailbox.
	if err := a.Mailbox(context.Background(), "dave", msg("a@x", "s", "b\n")); err != nil {
		t.Fatal(err)
	}
}

// TestMailboxRefused covers the spool attacks: each must be refused as a
// temporary failure, leave the target untouched and be logged.
func TestMailboxRefused(t *testing.T) {
	tests := []struct {
		name  string
		root  bool
		setup func(t *testing.T, box, outside string)
		why   string
	}{
		{"symlink", false, func(t *testing.T, box, outside string) {
			must(t, os.Symlink(outside, box))
		}, "irregular file (symbolic link)"},
		{"dangling symlink", false, func(t *testing.T, box, outside string) {
			must(t, os.Symlink(outside+".new", box))
		}, "irregular file (symbolic link)"},
		{"hard link", false, func(t *testing.T, box, outside string) {
			must(t, os.Link(outside, box))
		}, "irregular file (2 links)"},
		{"fifo", false, func(t *testing.T, box, outside string) {
			must(t, unix.Mkfifo(box, 0o600))
		}, "irregular file (FIFO)"},
		{"directory", false, func(t *testing.T, box, outside string) {
			must(t, os.Mkdir(box, 0o700))
		}, "irregular file (directory)"},
		{"socket", false, func(t *testing.T, box, outside string) {
			fd, _ := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
			must(t, unix.Bind(fd, &unix.SockaddrUnix{Name: box}))
			t.Cleanup(func() { unix.Close(fd) })
		}, "irregular file (FIFO)"}, // opening a socket gives ENXIO too
		{"owned by someone else", true, func(t *testing.T, box, outside string) {
			must(t, os.WriteFile(box, []byte("x"), 0o600))
			must(t, os.Chown(box, 4321, 4321))
		}, "wrong ownership (4321)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				needRoot(t)
			}
			a, spool, log := testAgent(t, nil)
			outside := filepath.Join(t.TempDir(), "victim")
			must(t, os.WriteFile(outside, []byte("precious\n"), 0o600))
			box := filepath.Join(spool, "alice")
			tt.setup(t, box, outside)
			done := make(chan error, 1)
			go func() { done <- a.Mailbox(context.Background(), "alice", msg("a@x", "s", "b\n")) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("delivery blocked")
			}
			st := wantStatus(t, err, 450, "4.2.0")
			if st.Text != box+": "+tt.why {
				t.Errorf("text %q, want %q", st.Text, box+": "+tt.why)
			}
			if got := readFile(t, outside); got != "precious\n" {
				t.Errorf("victim changed: %q", got)
			}
			if _, err := os.Lstat(outside + ".new"); err == nil {
				t.Errorf("symlink target created")
			}
			if !strings.Contains(log.String(), "SECURITY: "+box+": "+tt.why) {
				t.Errorf("not logged: %q", log.String())
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// failingWriter passes n bytes through and then fails, like a disk that
// fills up in the middle of a message.
type failingWriter struct {
	w io.Writer
	n int
}

func (f *failingWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		n, _ := f.w.Write(p[:f.n])
		f.n = 0
		return n, syscall.EIO
	}
	f.n -= len(p)
	return f.w.Write(p)
}

func TestAppendRollbackOnWriteError(t *testing.T) {
	for _, cut := range []int{0, 1, 100, 5000} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			box := filepath.Join(dir, "alice")
			must(t, os.WriteFile(box, []byte("From a Wed Nov 25 04:34:12 2026\n\nold\n\n"), 0o600))
			before := readFile(t, box)
			dirfd, _ := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
			defer unix.Close(dirfd)
			lc := lockConfig{timeout: time.Second, stale: time.Minute, now: time.Now}
			body := strings.Repeat("line of body text\n", 1000)
			err := appendMessage(context.Background(), spot{dirfd, "alice", box}, appendRules{create: true, mode: 0o600}, lc,
				func(w io.Writer) error {
					return render(&failingWriter{w: w, n: cut}, FromLine("s@x", testTime), []byte("Subject: x\n"), strings.NewReader(body), mboxFormat)
				})
			wantStatus(t, err, 451, "4.3.0")
			if got := readFile(t, box); got != before {
				t.Errorf("mailbox changed: %d bytes, was %d", len(got), len(before))
			}
			if _, err := os.Stat(box + ".lock"); !os.IsNotExist(err) {
				t.Error("lock left behind")
			}
		})
	}
}

// errReader fails after its data, like a queue file that cannot be read.
type errReader struct{ data string }

func (e *errReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(e.data)) {
		return 0, errors.New("df: read error")
	}
	n := copy(p, e.data[off:])
	return n, nil
}

func TestMailboxRollbackOnBodyReadError(t *testing.T) {
	a, spool, _ := testAgent(t, nil)
	ctx := context.Background()
	must(t, a.Mailbox(ctx, "bob", msg("a@x", "first", "ok\n")))
	before := readFile(t, filepath.Join(spool, "bob"))
	m := &Message{Sender: "a@x", Header: []byte("Subject: broken\n"), Body: &errReader{"partial body\n"}, BodySize: 1 << 20}
	wantStatus(t, a.Mailbox(ctx, "bob", m), 451, "4.3.0")
	if got := readFile(t, filepath.Join(spool, "bob")); got != before {
		t.Errorf("mailbox changed:\n%s", got)
	}
}

// TestMailboxFullDisk fills a 64 KiB tmpfs: the delivery that does not fit
// fails temporarily (452 4.3.1) and leaves the mailbox as it was; a small
// one afterwards still works.
func TestMailboxFullDisk(t *testing.T) {
	needRoot(t)
	a, spool, _ := testAgent(t, nil)
	if err := unix.Mount("tmpfs", spool, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(spool, unix.MNT_DETACH) })
	ctx := context.Background()
	must(t, a.Mailbox(ctx, "alice", msg("a@x", "small", "fits\n")))
	before := readFile(t, filepath.Join(spool, "alice"))
	big := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 2000) // 128 KiB
	st := wantStatus(t, a.Mailbox(ctx, "alice", msg("a@x", "big", big)), 452, "4.3.1")
	if !strings.Contains(st.Text, "No space left on device") {
		t.Errorf("text %q", st.Text)
	}
	if got := readFile(t, filepath.Join(spool, "alice")); got != before {
		t.Errorf("mailbox changed by a failed delivery: %d bytes, was %d", len(got), len(before))
	}
	must(t, a.Mailbox(ctx, "alice", msg("a@x", "small again", "fits\n")))
	if n := strings.Count(readFile(t, filepath.Join(spool, "alice")), "\nFrom a@x "); n != 1 {
		t.Errorf("%d later messages, want 1", n)
	}
}

func TestStaleDotLockBroken(t *testing.T) {
	a, spool, log := testAgent(t, nil)
	lock := filepath.Join(spool, "alice.lock")
	must(t, os.WriteFile(lock, []byte("99999\n"), 0o600))
	old := time.Now().Add(-10 * time.Minute)
	must(t, os.Chtimes(lock, old, old))
	must(t, a.Mailbox(context.Background(), "alice", msg("a@x", "s", "b\n")))
	if !strings.Contains(log.String(), "alice.lock: removed stale lock") {
		t.Errorf("log: %q", log.String())
	}
}

func TestHeldDotLockTimesOut(t *testing.T) {
	a, spool, _ := testAgent(t, func(o *Options) { o.LockTimeout = 300 * time.Millisecond })
	must(t, os.WriteFile(filepath.Join(spool, "alice.lock"), []byte("1\n"), 0o600))
	st := wantStatus(t, a.Mailbox(context.Background(), "alice", msg("a@x", "s", "b\n")), 450, "4.2.0")
	if !strings.HasSuffix(st.Text, "mailbox is locked") {
		t.Errorf("text %q", st.Text)
	}
	if _, err := os.Stat(filepath.Join(spool, "alice.lock")); err != nil {
		t.Errorf("someone else's lock removed: %v", err)
	}
}

// TestFcntlLockHeldByOtherProgram takes a classic POSIX lock (lockf, as
// mutt and procmail do) in a Python process: the delivery waits for it.
func TestFcntlLockHeldByOtherProgram(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	a, spool, _ := testAgent(t, func(o *Options) { o.LockTimeout = 500 * time.Millisecond })
	box := filepath.Join(spool, "alice")
	must(t, os.WriteFile(box, nil, 0o600))
	cmd := exec.Command(py, "-c", `import fcntl,sys,time
f=open(sys.argv[1],"a"); fcntl.lockf(f, fcntl.LOCK_EX); print("locked", flush=True); time.sleep(float(sys.argv[2]))`, box, "1.5")
	out, _ := cmd.StdoutPipe()
	must(t, cmd.Start())
	defer cmd.Wait()
	buf := make([]byte, 7)
	io.ReadFull(out, buf)
	wantStatus(t, a.Mailbox(context.Background(), "alice", msg("a@x", "s", "b\n")), 450, "4.2.0")
	if _, err := os.Stat(box + ".lock"); !os.IsNotExist(err) {
		t.Error("dot-lock left behind after timeout")
	}
	cmd.Wait()
	must(t, a.Mailbox(context.Background(), "alice", msg("a@x", "s", "b\n")))
}

// checkMbox splits an mbox at its From_ lines and checks that it holds
// exactly the messages with the given ids, each complete: bodyLines quoted
// ">From " lines and the empty line after it.
func checkMbox(t *testing.T, data string, ids map[string]bool, bodyLines int) {
	t.Helper()
	if !strings.HasPrefix(data, "From ") || !strings.HasSuffix(data, "\n\n") {
		t.Fatalf("mbox does not start with a From_ line or end with an empty line")
	}
	msgs := strings.Split(data[len("From "):], "\nFrom ")
	if len(msgs) != len(ids) {
		t.Fatalf("%d messages, want %d", len(msgs), len(ids))
	}
	seen := map[string]bool{}
	for i, m := range msgs {
		if i < len(msgs)-1 {
			m += "\n" // the newline the split took
		}
		_, rest, _ := strings.Cut(m, "Subject: ")
		id, body, _ := strings.Cut(rest, "\n\n")
		if !ids[id] || seen[id] {
			t.Fatalf("unexpected or repeated message %q", id)
		}
		seen[id] = true
		want := strings.Repeat(">From a line that needs quoting, and some more text.\n", bodyLines) + "\n"
		if body != want {
			t.Fatalf("message %s: body damaged (%d bytes, want %d)", id, len(body), len(want))
		}
	}
}

func TestConcurrentDeliveriesOneMailbox(t *testing.T) {
	const n = 40
	body := strings.Repeat("From a line that needs quoting, and some more text.\n", 200)
	t.Run("goroutines, one agent", func(t *testing.T) {
		a, spool, _ := testAgent(t, func(o *Options) { o.LockTimeout = 2 * time.Minute })
		ids := runConcurrent(t, n, func(i int, m *Message) error { return a.Mailbox(context.Background(), "carol", m) }, body)
		checkMbox(t, readFile(t, filepath.Join(spool, "carol")), ids, 200)
	})
	t.Run("goroutines, separate agents", func(t *testing.T) {
		// Separate Agents share no in-process queue: only the dot-lock and
		// the fcntl lock keep them apart, as for separate processes.
		_, spool, _ := testAgent(t, nil)
		agents := make([]*Agent, n)
		for i := range agents {
			agents[i], _, _ = testAgent(t, func(o *Options) { o.MailSpoolDirectory = spool; o.LockTimeout = 2 * time.Minute })
		}
		ids := runConcurrent(t, n, func(i int, m *Message) error { return agents[i].Mailbox(context.Background(), "carol", m) }, body)
		checkMbox(t, readFile(t, filepath.Join(spool, "carol")), ids, 200)
	})
	t.Run("processes, mail.local", func(t *testing.T) {
		spool := t.TempDir()
		self, _ := os.Executable()
		ids := runConcurrent(t, n, func(i int, m *Message) error {
			cmd := exec.Command(self, "-maillocal", spool, itoa(os.Geteuid()), "-f", m.Sender, "carol")
			cmd.Stdin = io.MultiReader(bytes.NewReader(m.Header), strings.NewReader("\n"), io.NewSectionReader(m.Body, 0, m.BodySize))
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		}, body)
		checkMbox(t, readFile(t, filepath.Join(spool, "carol")), ids, 200)
	})
}

func runConcurrent(t *testing.T, n int, deliver func(int, *Message) error, body string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		id := fmt.Sprintf("message-%02d", i)
		ids[id] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- deliver(i, msg("s@x", id, body))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// TestMailboxReplacedWhileWaiting: a reader that rewrites the mailbox by
// renaming a new file over it while we wait for the lock must not make us
// append to the old, unlinked file.
func TestMailboxReplacedWhileWaiting(t *testing.T) {
	a, spool, _ := testAgent(t, nil)
	box := filepath.Join(spool, "alice")
	must(t, os.WriteFile(box, []byte("From old Wed Nov 25 04:34:12 2026\n\nold\n\n"), 0o600))
	must(t, os.WriteFile(box+".lock", nil, 0o600))
	done := make(chan error, 1)
	go func() { done <- a.Mailbox(context.Background(), "alice", msg("a@x", "new", "b\n")) }()
	time.Sleep(300 * time.Millisecond) // the delivery has opened the old file and waits
	must(t, os.WriteFile(box+".tmp", []byte("From kept Wed Nov 25 04:34:12 2026\n\nkept\n\n"), 0o600))
	must(t, os.Rename(box, box+".old"))
	must(t, os.Rename(box+".tmp", box))
	must(t, os.Remove(box+".lock"))
	must(t, <-done)
	if got := readFile(t, box+".old"); strings.Contains(got, "Subject: new") {
		t.Errorf("appended to the replaced file")
	}
	if got := readFile(t, box); !strings.HasPrefix(got, "From kept") || !strings.Contains(got, "Subject: new") {
		t.Errorf("mailbox: %q", got)
	}
}
