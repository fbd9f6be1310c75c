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

// lockContent is what a dot-lock holds: this process's ID, as
// liblockfile writes it (readers may check that the process lives).
var lockContent = []byte(strconv.Itoa(os.Getpid()) + "\n")

// dotLock creates the lock file name (relative to the directory dirfd)
// exclusively, holding this process's pid, as liblockfile, procmail, mutt and
// Dovecot do. A lock whose mtime is older than stale is removed first
// (reported through onStale). The returned function removes the lock.
func dotLock(ctx context.Context, dirfd int, name string, deadline time.Time, stale time.Duration, now func() time.Time, onStale func(age time.Duration)) (func(), error) {
	bo := backoff{ctx: ctx, deadline: deadline}
	content := lockContent
	for {
		fd, err := unix.Openat(dirfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			_, werr := unix.Write(fd, content)
			unix.Close(fd)
			if werr != nil {
				unix.Unlinkat(dirfd, name, 0)
				return nil, &os.PathError{Op: "write", Path: name, Err: werr}
			}
			return func() { unix.Unlinkat(dirfd, name, 0) }, nil
		}
		if err != unix.EEXIST {
			return nil, &os.PathError{Op: "create", Path: name, Err: err}
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
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
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
