package deliver

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// capEff reads the effective capability mask from a /proc status file.
func capEff(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no CapEff")
	return 0
}

func TestWriteAsUser(t *testing.T) {
	needRoot(t)
	const bit = uint64(1) << unix.CAP_SYS_RESOURCE
	// The same thread before, during and after.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := capEff(t, "/proc/thread-self/status")
	var inside uint64
	var fsuid, fsgid int
	if err := writeAsUser(4242, 4243, func() error {
		inside = capEff(t, "/proc/thread-self/status")
		fsuid, _ = unix.SetfsuidRetUid(-1)
		fsgid, _ = unix.SetfsgidRetGid(-1)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if inside&bit != 0 || fsuid != 4242 || fsgid != 4243 {
		t.Errorf("writing thread: CapEff %x fsuid %d fsgid %d", inside, fsuid, fsgid)
	}
	// The thread has its identity back, and the rest of the process was
	// never touched.
	if got, _ := unix.SetfsuidRetUid(-1); got != 0 {
		t.Errorf("this thread's fsuid is %d", got)
	}
	if got, _ := unix.SetfsgidRetGid(-1); got != 0 {
		t.Errorf("this thread's fsgid is %d", got)
	}
	if after := capEff(t, "/proc/thread-self/status"); after != before {
		t.Errorf("this thread's CapEff %x after, %x before", after, before)
	}
	outside := capEff(t, "/proc/self/status")
	if outside == 0 {
		t.Error("the process lost its capabilities")
	}
}

// TestMailboxRespectsReservedBlocks: on an ext4 filesystem with half its
// blocks reserved for root, deliveries by the root daemon stop where a
// user's own writes would (the same rule that makes quotas apply), with a
// temporary failure and the mailbox intact.
func TestMailboxRespectsReservedBlocks(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("no mkfs.ext4")
	}
	a, spool, _ := testAgent(t, func(o *Options) {
		o.LookupUser = func(string) (*User, error) { return &User{Name: "dave", UID: 4242, GID: 4242}, nil }
	})
	img := filepath.Join(t.TempDir(), "img")
	if out, err := exec.Command("sh", "-c", "truncate -s 4M "+img+" && mkfs.ext4 -q -m 50 "+img).CombinedOutput(); err != nil {
		t.Skipf("mkfs: %v %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, spool).CombinedOutput(); err != nil {
		t.Skipf("cannot loop-mount: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", spool).Run() })
	var sfs unix.Statfs_t
	must(t, unix.Statfs(spool, &sfs))
	avail := int64(sfs.Bavail) * sfs.Bsize // what non-root writers may use
	body := strings.Repeat("x", 100<<10-1) + "\n"
	var err error
	n := 0
	for ; n < 40; n++ {
		if err = a.Mailbox(context.Background(), "dave", msg("a@x", strconv.Itoa(n), body)); err != nil {
			break
		}
	}
	wantStatus(t, err, 452, "4.3.1")
	fi, serr := os.Stat(filepath.Join(spool, "dave"))
	if serr != nil {
		t.Fatal(serr)
	}
	if fi.Size() > avail {
		t.Errorf("mailbox grew to %d bytes, into the %d bytes reserved for root (non-root space %d)", fi.Size(), int64(sfs.Bfree)*sfs.Bsize-avail, avail)
	}
	if got := strings.Count(readFile(t, filepath.Join(spool, "dave")), "\nSubject: "); got != n {
		t.Errorf("%d messages in the mailbox, %d delivered", got, n)
	}
}
