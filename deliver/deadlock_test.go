package deliver

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// deadPid returns the pid of a process that has exited.
func deadPid(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true")
	}
	return cmd.Process.Pid
}

// TestKilledWriterRolledBack: a deliverer killed with SIGKILL in the middle
// of an append leaves its dot-lock and half a message. The next delivery
// does not wait for the lock to age: the lock's pid is dead, so it takes
// it over, truncates the mailbox back to where the dead writer began and
// appends whole.
func TestKilledWriterRolledBack(t *testing.T) {
	a, spool, log := testAgent(t, nil)
	ctx := context.Background()
	must(t, a.Mailbox(ctx, "alice", msg("a@x", "before", "kept\n")))
	box := filepath.Join(spool, "alice")
	before := readFile(t, box)

	cmd := exec.Command(os.Args[0], "-hangappend", spool)
	out, _ := cmd.StdoutPipe()
	must(t, cmd.Start())
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "appending\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child said %q", line)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if got := readFile(t, box); len(got) <= len(before) {
		t.Fatalf("the killed writer appended nothing (%d bytes)", len(got))
	}
	if _, err := os.Stat(box + ".lock"); err != nil {
		t.Fatalf("the killed writer left no lock: %v", err)
	}

	start := time.Now()
	must(t, a.Mailbox(ctx, "alice", msg("a@x", "after", "new\n")))
	if waited := time.Since(start); waited > 3*time.Second {
		t.Errorf("waited %s for a dead writer's lock", waited)
	}
	got := readFile(t, box)
	if !strings.HasPrefix(got, before) || strings.Contains(got, "first half") || strings.Count(got, "\nFrom a@x ") != 1 {
		t.Errorf("mailbox after the take-over:\n%s", got)
	}
	for _, want := range []string{"alice.lock: taken over from pid ", "alice: rolled back "} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	if _, err := os.Stat(box + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock left: %v", err)
	}
}

// TestDeadLockRules: only a lock that is surely ours and surely dead is
// taken over; every other one is waited for until it ages.
func TestDeadLockRules(t *testing.T) {
	boot, ns := identity()
	if boot == "" || ns == "" {
		t.Skip("no boot id or pid namespace in /proc")
	}
	dead := deadPid(t)
	rec := func(pid int, b, n string) string { return lockRecord{pid: pid, boot: b, pidns: n}.String() }
	for _, tc := range []struct {
		name    string
		content string
		mode    os.FileMode
		owner   int // -1: ours
		taken   bool
	}{
		{"dead, ours", rec(dead, boot, ns), 0o600, -1, true},
		{"alive (init)", rec(1, boot, ns), 0o600, -1, false},
		{"another boot", rec(dead, "00000000-0000-0000-0000-000000000000", ns), 0o600, -1, false},
		{"another pid namespace", rec(dead, boot, "1"), 0o600, -1, false},
		{"liblockfile's", "99999\n", 0o600, -1, false},
		{"readable by others", rec(dead, boot, ns), 0o644, -1, false},
		{"owned by someone else", rec(dead, boot, ns), 0o600, 65534, false},
		{"trailing junk", rec(dead, boot, ns) + "x", 0o600, -1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.owner >= 0 && os.Geteuid() != 0 {
				t.Skip("needs root")
			}
			a, spool, _ := testAgent(t, func(o *Options) { o.LockTimeout = 300 * time.Millisecond })
			lock := filepath.Join(spool, "alice.lock")
			must(t, os.WriteFile(lock, []byte(tc.content), tc.mode))
			must(t, os.Chmod(lock, tc.mode))
			if tc.owner >= 0 {
				must(t, os.Chown(lock, tc.owner, tc.owner))
			}
			err := a.Mailbox(context.Background(), "alice", msg("a@x", "s", "b\n"))
			if tc.taken && err != nil {
				t.Errorf("not taken over: %v", err)
			}
			if !tc.taken {
				wantStatus(t, err, 450, "4.2.0")
				if b, _ := os.ReadFile(lock); string(b) != tc.content {
					t.Errorf("the lock was changed to %q", b)
				}
			}
		})
	}
}

// TestDeadLockRollbackRules: the rollback needs the same inode and a file
// not shorter than the record; the record of a lock without a size (the
// writer died before appending) truncates nothing.
func TestDeadLockRollbackRules(t *testing.T) {
	boot, ns := identity()
	if boot == "" || ns == "" {
		t.Skip("no boot id or pid namespace in /proc")
	}
	dead := deadPid(t)
	for _, tc := range []struct {
		name string
		rec  func(ino uint64, size int64) lockRecord
		keep bool // the old content stays whole
	}{
		{"no size", func(ino uint64, size int64) lockRecord { return lockRecord{pid: dead, boot: boot, pidns: ns} }, true},
		{"other inode", func(ino uint64, size int64) lockRecord {
			return lockRecord{pid: dead, boot: boot, pidns: ns, ino: ino + 1, size: 3, hasSize: true}
		}, true},
		{"longer than the file", func(ino uint64, size int64) lockRecord {
			return lockRecord{pid: dead, boot: boot, pidns: ns, ino: ino, size: size + 100, hasSize: true}
		}, true},
		{"cut back", func(ino uint64, size int64) lockRecord {
			return lockRecord{pid: dead, boot: boot, pidns: ns, ino: ino, size: 4, hasSize: true}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, spool, _ := testAgent(t, nil)
			box := filepath.Join(spool, "alice")
			must(t, os.WriteFile(box, []byte("old\nhalf a message"), 0o600))
			var st unix.Stat_t
			must(t, unix.Stat(box, &st))
			must(t, os.WriteFile(box+".lock", []byte(tc.rec(st.Ino, st.Size).String()), 0o600))
			must(t, a.Mailbox(context.Background(), "alice", msg("a@x", "s", "b\n")))
			got := readFile(t, box)
			if kept := strings.HasPrefix(got, "old\nhalf a message"); kept != tc.keep {
				t.Errorf("mailbox:\n%q", got)
			}
			if !tc.keep && !strings.HasPrefix(got, "old\nFrom a@x ") {
				t.Errorf("not cut back to the record:\n%q", got)
			}
		})
	}
}

func TestLockRecordRoundTrip(t *testing.T) {
	for _, r := range []lockRecord{
		{pid: 42, boot: "b", pidns: "4026531836"},
		{pid: 42, boot: "b", pidns: "4026531836", ino: 7, size: 1 << 40, hasSize: true},
	} {
		got, ok := parseLockRecord([]byte(r.String()))
		if !ok || got != r {
			t.Errorf("%q: %+v %v", r.String(), got, ok)
		}
	}
	for _, bad := range []string{"", "42\n", "42 posthorn b\n", "42 sendmail b n\n", "-1 posthorn b n\n", "42 posthorn b n 1\n", "42 posthorn b n 1 -5\n", "42 posthorn b n\n\n"} {
		if _, ok := parseLockRecord([]byte(bad)); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

// FuzzParseLockRecord: whatever a lock file holds, a record is either
// refused or written back to exactly the same bytes.
func FuzzParseLockRecord(f *testing.F) {
	f.Add([]byte("42 posthorn 5c6c0c54-4a8e-4c47-9d8e-bb0d3b3fcb0e 4026531836\n"))
	f.Add([]byte("42 posthorn b n 7 1099511627776\n"))
	f.Add([]byte("99999\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, ok := parseLockRecord(b)
		if !ok {
			return
		}
		if r.pid <= 0 || (r.hasSize && r.size < 0) {
			t.Fatalf("%q: %+v", b, r)
		}
		again, ok := parseLockRecord([]byte(r.String()))
		if !ok || again != r {
			t.Fatalf("%q: %+v does not round-trip (%+v, %v)", b, r, again, ok)
		}
	})
}

// TestLockCreatedWithItsRecord: the lock file exists only with the record
// in it (a writer killed between creating and writing it would leave an
// empty lock that only ages out: the kill -9 test found that window).
func TestLockCreatedWithItsRecord(t *testing.T) {
	dir := t.TempDir()
	dirfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dirfd)
	l, err := createLock(dirfd, "alice.lock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.release()
	got, _ := os.ReadFile(filepath.Join(dir, "alice.lock"))
	if string(got) != ourRecord().String() {
		t.Errorf("lock holds %q, want %q", got, ourRecord().String())
	}
	if _, err := createLock(dirfd, "alice.lock"); err != unix.EEXIST {
		t.Errorf("a second lock: %v, want EEXIST", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want the lock alone", len(entries))
	}
}
