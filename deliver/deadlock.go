package deliver

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The dot-lock as a crash record.
//
// A dot-lock that posthorn writes holds one line:
//
//	<pid> posthorn <boot id> <pid namespace>\n
//	<pid> posthorn <boot id> <pid namespace> <inode> <size>\n
//
// The first word is the pid, as liblockfile and procmail write it (they
// read only that). The lock comes into being with its record in it
// (createLock), so a writer killed at any moment leaves a readable one. The second form is written once the mailbox is locked
// and before the first byte is appended: the inode and size of the file
// before the append.
//
// A daemon killed with SIGKILL (or a power cut of the process only: an
// OOM kill) while it appends leaves its dot-lock behind, and with it half
// a message, or a whole one that its queue file does not yet record as
// delivered (so the next run appends it a second time). When a deliverer
// finds such a lock it knows the writer is dead if the lock is its own
// kind (a regular file with one link, owned by this process's effective
// uid, mode without group or other bits), was written under the same boot
// and pid namespace, and the pid no longer exists. Then, holding the
// mailbox's fcntl lock so that no other deliverer does the same at the
// same time, it takes the lock over, truncates the file back to the
// recorded size (only when it is still the same inode and not shorter)
// and appends as usual. The mail is then delivered exactly once: the
// queue file still lists the recipient, because it is updated only after
// the append returns. Any other lock (another program's, another boot's,
// a live pid, one a user could have written) is only removed by age, as
// before (Options.StaleLockAge).

// lockRecord is the content of one of our dot-locks.
type lockRecord struct {
	pid     int
	boot    string
	pidns   string
	ino     uint64
	size    int64
	hasSize bool
}

func (r lockRecord) String() string {
	s := fmt.Sprintf("%d posthorn %s %s", r.pid, orDash(r.boot), orDash(r.pidns))
	if r.hasSize {
		s += fmt.Sprintf(" %d %d", r.ino, r.size)
	}
	return s + "\n"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseLockRecord reads a lock's content; ok is false for anything that is
// not exactly one of our records.
func parseLockRecord(b []byte) (lockRecord, bool) {
	line, rest, found := bytes.Cut(b, []byte("\n"))
	if !found || len(rest) != 0 {
		return lockRecord{}, false
	}
	f := strings.Fields(string(line))
	if (len(f) != 4 && len(f) != 6) || f[1] != "posthorn" {
		return lockRecord{}, false
	}
	var r lockRecord
	var err error
	if r.pid, err = strconv.Atoi(f[0]); err != nil || r.pid <= 0 {
		return lockRecord{}, false
	}
	r.boot, r.pidns = f[2], f[3]
	if len(f) == 6 {
		if r.ino, err = strconv.ParseUint(f[4], 10, 64); err != nil {
			return lockRecord{}, false
		}
		if r.size, err = strconv.ParseInt(f[5], 10, 64); err != nil || r.size < 0 {
			return lockRecord{}, false
		}
		r.hasSize = true
	}
	return r, true
}

// identity is this process's boot and pid namespace; empty parts when
// /proc does not tell (then no lock is ever judged dead by its pid).
var identity = sync.OnceValues(func() (boot, pidns string) {
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		boot = strings.TrimSpace(string(b))
	}
	if l, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		pidns = strings.TrimSuffix(strings.TrimPrefix(l, "pid:["), "]")
	}
	if strings.ContainsAny(boot+pidns, " \t\n") {
		return "", ""
	}
	return boot, pidns
})

// ourRecord is the record of a lock this process takes now.
func ourRecord() lockRecord {
	boot, ns := identity()
	return lockRecord{pid: os.Getpid(), boot: boot, pidns: ns}
}

// deadLock is a dot-lock left by a posthorn process that no longer exists.
type deadLock struct {
	ino uint64 // the lock file's inode
	rec lockRecord
}

// readDeadLock returns the lock at name when it is one of ours whose
// writer is dead, or nil.
func readDeadLock(dirfd int, name string) *deadLock {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 ||
		int(st.Uid) != os.Geteuid() || st.Mode&0o077 != 0 || st.Size > 256 {
		return nil
	}
	buf := make([]byte, 257)
	n, _ := unix.Pread(fd, buf, 0)
	rec, ok := parseLockRecord(buf[:max(n, 0)])
	if !ok {
		return nil
	}
	boot, ns := identity()
	if boot == "" || ns == "" || rec.boot != boot || rec.pidns != ns || rec.pid == os.Getpid() {
		return nil
	}
	if unix.Kill(rec.pid, 0) != unix.ESRCH {
		return nil // alive, or not ours to signal: someone holds it
	}
	return &deadLock{ino: st.Ino, rec: rec}
}

// takeOver makes the dead lock ours, if it is still the same file and
// still dead: the caller holds the mailbox's fcntl lock, so no other
// posthorn deliverer is doing this now. It returns the open lock.
func (d *deadLock) takeOver(dirfd int, name string) (*dotlock, bool) {
	again := readDeadLock(dirfd, name)
	if again == nil || again.ino != d.ino || again.rec != d.rec {
		return nil, false
	}
	fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Ino != d.ino {
		unix.Close(fd)
		return nil, false
	}
	l := &dotlock{dirfd: dirfd, name: name, fd: fd, rec: ourRecord()}
	if l.write() != nil {
		unix.Close(fd)
		return nil, false
	}
	return l, true
}

// dotlock is a dot-lock this process holds.
type dotlock struct {
	dirfd int
	name  string
	fd    int // -1 when the dot-lock could not be made (optional dot-locks)
	rec   lockRecord
}

// write puts the record into the lock file.
func (l *dotlock) write() error {
	b := []byte(l.rec.String())
	if _, err := unix.Pwrite(l.fd, b, 0); err != nil {
		return err
	}
	return unix.Ftruncate(l.fd, int64(len(b)))
}

// appending records the size of the file (inode ino) before the append.
func (l *dotlock) appending(ino uint64, size int64) error {
	if l == nil || l.fd < 0 {
		return nil
	}
	l.rec.ino, l.rec.size, l.rec.hasSize = ino, size, true
	return l.write()
}

// release removes the lock.
func (l *dotlock) release() {
	if l == nil || l.fd < 0 {
		return
	}
	unix.Unlinkat(l.dirfd, l.name, 0)
	unix.Close(l.fd)
	l.fd = -1
}
