package deliver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// errLockTimeout is returned when a lock is still held by someone else at
// the deadline.
var errLockTimeout = errors.New("mailbox is locked")

// backoff sleeps a growing interval (2 ms doubling up to 100 ms, with
// jitter), or returns
// errLockTimeout once the deadline has passed.
type backoff struct {
	ctx      context.Context
	deadline time.Time
	d        time.Duration
}

func (b *backoff) wait() error {
	if !time.Now().Before(b.deadline) {
		return errLockTimeout
	}
	if b.d == 0 {
		b.d = 2 * time.Millisecond
	} else if b.d < 100*time.Millisecond {
		b.d *= 2
	}
	// Jitter keeps waiters that started together from retrying together.
	d := min(b.d/2+rand.N(b.d/2+1), time.Until(b.deadline))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

// dotLock creates the lock file name (relative to the directory dirfd)
// exclusively, holding this process's pid (see deadlock.go for the whole
// record), as liblockfile, procmail, mutt and Dovecot do. A lock whose
// mtime is older than stale is removed first (reported through onStale).
// A lock left by a posthorn process that died is not removed here: it is
// returned as dead, for the caller to take over under the mailbox's fcntl
// lock.
func dotLock(ctx context.Context, dirfd int, name string, deadline time.Time, stale time.Duration, now func() time.Time, onStale func(age time.Duration)) (*dotlock, *deadLock, error) {
	bo := backoff{ctx: ctx, deadline: deadline}
	for {
		l, err := createLock(dirfd, name)
		if err == nil {
			return l, nil, nil
		}
		if err != unix.EEXIST {
			return nil, nil, &os.PathError{Op: "create", Path: name, Err: err}
		}
		if dead := readDeadLock(dirfd, name); dead != nil {
			return nil, dead, nil
		}
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			age := now().Sub(time.Unix(st.Mtim.Unix()))
			if age > stale {
				if unix.Unlinkat(dirfd, name, 0) == nil && onStale != nil {
					onStale(age)
				}
				continue
			}
		}
		if err := bo.wait(); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", name, err)
		}
	}
}

// createLock makes the dot-lock name in dirfd, holding this process's
// record from the moment it exists: the record is written to an unnamed
// file (O_TMPFILE) that is then linked under the lock's name, so that a
// writer killed at any moment never leaves an empty lock, which nothing
// could tell from another program's and which would only age out. Where
// the file system has no O_TMPFILE the lock is created and then written.
// The error is EEXIST when the lock is held.
func createLock(dirfd int, name string) (*dotlock, error) {
	rec := ourRecord()
	fd, err := unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err == nil {
		l := &dotlock{dirfd: dirfd, name: name, fd: fd, rec: rec}
		if err := l.write(); err != nil {
			unix.Close(fd)
			return nil, err
		}
		if err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), dirfd, name, unix.AT_SYMLINK_FOLLOW); err != nil {
			unix.Close(fd)
			return nil, err
		}
		return l, nil
	}
	if err != unix.EOPNOTSUPP && err != unix.EISDIR && err != unix.EINVAL && err != unix.ENOENT {
		return nil, err
	}
	fd, err = unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	l := &dotlock{dirfd: dirfd, name: name, fd: fd, rec: rec}
	if err := l.write(); err != nil {
		l.release()
		return nil, err
	}
	return l, nil
}

// fcntlLock takes a write lock on the whole file as an open file description
// lock: it conflicts with the POSIX fcntl locks of mutt, mailx, Dovecot and
// procmail, and with other descriptions in this very process. It is released
// by fcntlUnlock or when the descriptor is closed.
func fcntlLock(ctx context.Context, fd int, deadline time.Time) error {
	bo := backoff{ctx: ctx, deadline: deadline}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	for {
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return nil
		}
		if err != unix.EAGAIN && err != unix.EACCES && err != unix.EINTR {
			return os.NewSyscallError("fcntl", err)
		}
		if err := bo.wait(); err != nil {
			return err
		}
	}
}

func fcntlUnlock(fd int) {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: 0, Len: 0}
	unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
}
