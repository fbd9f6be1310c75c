package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
)

// spot names a file to append to: a directory descriptor and a name in it.
// The file and its dot-lock are both reached from the directory descriptor,
// so a symlink swapped in for a directory later cannot redirect either.
type spot struct {
	dirfd   int
	name    string // final path component
	display string // the full path, for messages and logs
}

// appendRules say what may be appended to and how a missing file is made.
type appendRules struct {
	create bool
	mode   uint32 // of a created file
	chown  bool   // fchown a created file to uid:gid
	uid    int
	gid    int
	owners []int // accepted owners of an existing file; empty accepts any
	noExec bool  // refuse a file with an execute bit (sendmail's *file* does)
	// optionalDotlock: a dot-lock that cannot be created at all (no write
	// permission on the directory, read-only) is skipped and the fcntl lock
	// alone is used, as for /file targets in directories such as /var/tmp
	// subdirectories. A dot-lock held by someone else is always waited for.
	optionalDotlock bool
	// fsUID, fsGID: root writes with this filesystem identity, so that the
	// user's quota and the filesystem's root reserve apply (see
	// writeAsUser); 0 for none.
	fsUID, fsGID int
	// accessPermanent: permission denied on the file is a permanent failure
	// (sendmail's EX_CANTCREAT for a /file the user may not write).
	accessPermanent bool
	// unsafePermanent: an unsafe target (symlink, hard link, not a regular
	// file, executable) fails permanently with sendmail's *file* mailer
	// words ("cannot open /x: Symbolic links not allowed") instead of
	// deferring: a /file target is the user's choice, not a spool an
	// attacker tampered with, and the sender must hear of it.
	unsafePermanent bool
}

// unsafe is why a target is refused: posthorn's words for the mailbox log
// and sendmail's (sm_errstring's E_SM_* texts) for a /file target.
type unsafe struct{ why, sm string }

// lockConfig carries the lock bounds and the log.
type lockConfig struct {
	timeout time.Duration
	stale   time.Duration
	now     func() time.Time
	log     *maillog.Logger
	qid     string
}

// errChanged means the path no longer names the file we locked.
var errChanged = errors.New("file changed after open")

// appendMessage opens (or creates) sp according to r, takes the dot-lock and
// the fcntl lock, appends what write produces, fsyncs, and unlocks. On any
// failure the file is truncated back to its size before the append. The
// error is a *status.Error.
func appendMessage(ctx context.Context, sp spot, r appendRules, lc lockConfig, write func(io.Writer) error) error {
	return appendAll(ctx, sp, r, lc, time.Now().Add(lc.timeout), []func(io.Writer) error{write})[0]
}

// appendAll is appendMessage for several messages under one lock and one
// fsync (the group commit of a mailbox): each write is one message, all
// or nothing; the result of each (nil only once the fsync covering it
// succeeded) is at its index. A message that fails to be written is cut
// off again and the next ones are still appended; a failed fsync cuts the
// file back to its size before the first and fails them all.
func appendAll(ctx context.Context, sp spot, r appendRules, lc lockConfig, deadline time.Time, writes []func(io.Writer) error) []error {
	errs := make([]error, len(writes))
	for attempt := 0; ; attempt++ {
		f, err := openForAppend(sp, r, lc)
		if err == nil {
			err = lockedAppend(ctx, f, sp, r, lc, deadline, writes, errs)
			f.Close()
			if errors.Is(err, errChanged) && attempt < 3 {
				continue // replaced while we waited for the lock: start again
			}
		}
		for i := range errs {
			if err != nil {
				errs[i] = err
			}
			if errs[i] != nil {
				errs[i] = asStatus(sp, errs[i])
			}
		}
		return errs
	}
}

// asStatus is err as a *status.Error.
func asStatus(sp spot, err error) error {
	var st *status.Error
	if errors.As(err, &st) {
		return st
	}
	return ioStatus(sp.display, err)
}

// openForAppend opens sp for appending without following a symlink and
// without blocking on a FIFO, creates it when allowed, and checks on the
// descriptor what it is.
func openForAppend(sp spot, r appendRules, lc lockConfig) (*os.File, error) {
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY
	for range 5 {
		fd, err := unix.Openat(sp.dirfd, sp.name, flags, 0)
		created := false
		if err == unix.ENOENT && r.create {
			fd, err = unix.Openat(sp.dirfd, sp.name, flags|unix.O_CREAT|unix.O_EXCL, r.mode)
			if err == unix.EEXIST {
				continue // someone else created it first: check theirs
			}
			created = err == nil
		}
		switch {
		case err == unix.ELOOP:
			return nil, refuse(sp, r, lc, unsafe{"irregular file (symbolic link)", "Symbolic links not allowed"})
		case err == unix.ENXIO:
			return nil, refuse(sp, r, lc, unsafe{"irregular file (FIFO)", "Regular files only"})
		case err == unix.EISDIR:
			return nil, refuse(sp, r, lc, unsafe{"irregular file (directory)", "Regular files only"})
		case (err == unix.EACCES || err == unix.EPERM) && r.accessPermanent:
			return nil, status.Wrap(err, 550, "5.0.0", "%s... Can't create output: %s", sp.display, strerror(err))
		case err != nil:
			return nil, ioStatus(sp.display, err)
		}
		f := os.NewFile(uintptr(fd), sp.display)
		if created {
			if err := initCreated(fd, r); err != nil {
				unix.Unlinkat(sp.dirfd, sp.name, 0)
				f.Close()
				return nil, ioStatus(sp.display, err)
			}
		}
		if err := checkOpened(fd, r); err.why != "" {
			f.Close()
			return nil, refuse(sp, r, lc, err)
		}
		if err := unix.SetNonblock(fd, false); err != nil {
			f.Close()
			return nil, ioStatus(sp.display, err)
		}
		return f, nil
	}
	return nil, status.New(451, "4.3.0", "%s: cannot create", sp.display)
}

// initCreated gives a new file its owner and exact mode (the umask may have
// narrowed it).
func initCreated(fd int, r appendRules) error {
	if r.chown {
		if err := unix.Fchown(fd, r.uid, r.gid); err != nil {
			return err
		}
	}
	return unix.Fchmod(fd, r.mode)
}

// checkOpened returns why the open file must not be written to, or the
// zero unsafe.
func checkOpened(fd int, r appendRules) unsafe {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return unsafe{"cannot fstat: " + strerror(err), strerror(err)}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return unsafe{"irregular file (not a regular file)", "Regular files only"}
	case st.Nlink != 1:
		return unsafe{fmt.Sprintf("irregular file (%d links)", st.Nlink), "Hard links not allowed"}
	case len(r.owners) > 0 && !slices.Contains(r.owners, int(st.Uid)):
		return unsafe{fmt.Sprintf("wrong ownership (%d)", st.Uid), "Wrong ownership"}
	case r.noExec && st.Mode&0o111 != 0:
		return unsafe{"file is executable", "Executable files not allowed"}
	}
	return unsafe{}
}

// lockedAppend locks f, verifies that sp still names it, appends and syncs.
// The error returned concerns every write (the lock, the check, the
// fsync); errs[i] is set for a write that failed on its own.
func lockedAppend(ctx context.Context, f *os.File, sp spot, r appendRules, lc lockConfig, deadline time.Time, writes []func(io.Writer) error, errs []error) error {
	fd := int(f.Fd())
	lk, dead, err := takeLocks(ctx, fd, sp, r, lc, deadline)
	if err != nil {
		return err
	}
	defer lk.release()
	defer fcntlUnlock(fd)

	var st, now unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if err := unix.Fstatat(sp.dirfd, sp.name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil || now.Dev != st.Dev || now.Ino != st.Ino {
		return errChanged
	}
	size := st.Size
	if dead != nil && dead.rec.hasSize && dead.rec.ino == st.Ino {
		switch {
		case size > dead.rec.size:
			// what the dead writer appended: half a message, or a whole
			// one its queue file does not record as delivered
			if err := writeAsUser(r.fsUID, r.fsGID, func() error {
				if err := f.Truncate(dead.rec.size); err != nil {
					return err
				}
				return f.Sync()
			}); err != nil {
				lc.log.Errf(lc.qid, "%s: cannot roll back the append of pid %d, which died: %v", sp.display, dead.rec.pid, err)
				return err
			}
			lc.log.Warnf(lc.qid, "%s: rolled back %d bytes appended by pid %d, which died while delivering", sp.display, size-dead.rec.size, dead.rec.pid)
			size = dead.rec.size
		case size < dead.rec.size:
			lc.log.Warnf(lc.qid, "%s: shorter (%d bytes) than when pid %d, which died, began to append (%d): left alone", sp.display, size, dead.rec.pid, dead.rec.size)
		}
	}
	if err := lk.appending(st.Ino, size); err != nil {
		return err
	}
	start := size
	err = writeAsUser(r.fsUID, r.fsGID, func() error {
		size := start
		for i, write := range writes {
			w := &countingWriter{w: f}
			if errs[i] = write(w); errs[i] == nil {
				size += w.n
				continue
			}
			if w.n == 0 {
				continue
			}
			if err := f.Truncate(size); err != nil {
				// A partial message stays: nothing more may follow it.
				lc.log.Errf(lc.qid, "%s: cannot truncate back to %d bytes after %v: %v", sp.display, size, errs[i], err)
				for j := i + 1; j < len(errs); j++ {
					errs[j] = errs[i]
				}
				break
			}
		}
		return f.Sync()
	})
	if err != nil {
		// Put the mailbox back as it was; a failure here too is logged, as
		// it leaves a partial message that a reader may show.
		if terr := f.Truncate(start); terr != nil {
			lc.log.Errf(lc.qid, "%s: cannot truncate back to %d bytes after %v: %v", sp.display, start, err, terr)
		} else {
			f.Sync()
		}
		return err
	}
	return nil
}

// takeLocks takes the dot-lock and then the fcntl lock of f. A dot-lock
// left by a posthorn process that died is taken over while holding the
// fcntl lock (so that one deliverer alone does it) and returned as dead:
// the caller undoes what that process appended.
func takeLocks(ctx context.Context, fd int, sp spot, r appendRules, lc lockConfig, deadline time.Time) (*dotlock, *deadLock, error) {
	for {
		lk, dead, err := dotLock(ctx, sp.dirfd, sp.name+".lock", deadline, lc.stale, lc.now, func(age time.Duration) {
			lc.log.Warnf(lc.qid, "%s.lock: removed stale lock (%s old)", sp.display, maillog.Delay(age))
		})
		if err != nil {
			var pe *os.PathError
			if !r.optionalDotlock || !errors.As(err, &pe) || (pe.Err != unix.EACCES && pe.Err != unix.EROFS && pe.Err != unix.EPERM) {
				return nil, nil, err
			}
			lk = &dotlock{fd: -1}
		}
		if err := fcntlLock(ctx, fd, deadline); err != nil {
			lk.release()
			return nil, nil, err
		}
		if dead == nil {
			return lk, nil, nil
		}
		if lk, ok := dead.takeOver(sp.dirfd, sp.name+".lock"); ok {
			lc.log.Warnf(lc.qid, "%s.lock: taken over from pid %d, which died while delivering", sp.display, dead.rec.pid)
			return lk, dead, nil
		}
		// another deliverer took it over first: wait for its lock
		fcntlUnlock(fd)
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%s.lock: %w", sp.name, errLockTimeout)
		}
	}
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// refuse logs and returns the failure for an unsafe target: temporary for
// a mailbox (the mail waits while the administrator looks), permanent for
// a /file target (r.unsafePermanent).
func refuse(sp spot, r appendRules, lc lockConfig, u unsafe) *status.Error {
	if r.unsafePermanent {
		lc.log.Errf(lc.qid, "SECURITY: %s: %s; delivery refused", sp.display, u.why)
		return status.New(554, "5.3.0", "cannot open %s: %s", sp.display, u.sm)
	}
	lc.log.Errf(lc.qid, "SECURITY: %s: %s; delivery deferred", sp.display, u.why)
	return status.New(450, "4.2.0", "%s: %s", sp.display, u.why)
}

// ioStatus turns a system error into the temporary failure it is.
func ioStatus(path string, err error) *status.Error {
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case errno == unix.ENOSPC:
		return status.Wrap(err, 452, "4.3.1", "%s: %s", path, strerror(errno))
	case errno == unix.EDQUOT:
		return status.Wrap(err, 452, "4.2.2", "%s: %s", path, strerror(errno))
	case errors.Is(err, errLockTimeout):
		return status.Wrap(err, 450, "4.2.0", "%s: mailbox is locked", path)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.Wrap(err, 451, "4.3.0", "%s: delivery interrupted", path)
	case errno != 0:
		return status.Wrap(err, 451, "4.3.0", "%s: %s", path, strerror(errno))
	}
	return status.Wrap(err, 451, "4.3.0", "%s: %v", path, err)
}

// strerror is the C library's wording: "No space left on device".
func strerror(err error) string {
	s := err.Error()
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s = errno.Error()
	}
	if s != "" {
		s = strings.ToUpper(s[:1]) + s[1:]
	}
	return s
}
