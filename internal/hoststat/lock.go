package hoststat

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrLocked is Lock's answer when another process, or another Lock of
// this process, holds the host.
var ErrLocked = errors.New("host status file locked")

// Lock is sendmail's mci_lock_host for SingleThreadDelivery: it opens
// host's status file (creating it, and its directories, empty) and takes
// an exclusive flock(2) on it without waiting, so that no other process
// (sendmail or posthorn) opens a connection to the host until unlock is
// called. sendmail locks the same file the same way (flock on Linux), so
// the two exclude each other, and hoststat marks the host with '*'.
//
// While this table holds the lock, Record writes the host's file in place
// through the locked descriptor: a new file renamed over it would carry
// no lock, and the next process would take that one. With no directory
// there is nothing to lock and Lock always succeeds, as in sendmail.
//
// ErrLocked means the host is busy; another error means the file could
// not be made (sendmail then goes on without a lock, and so may the
// caller).
func (t *Table) Lock(host string) (unlock func(), err error) {
	if t.dir == "" {
		return func() {}, nil
	}
	key, err := canonHost(host)
	if err != nil {
		return nil, err
	}
	path, err := Path(t.dir, key)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.locking = true
	_, busy := t.held[key]
	t.mu.Unlock()
	if busy {
		return nil, ErrLocked
	}
	f, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.held[key] = f
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		if t.held[key] == f {
			delete(t.held, key)
		}
		t.mu.Unlock()
		f.Close() // closing the last descriptor drops the flock
	}, nil
}

// lockFile opens path read-write (creating it and its directories) and
// locks it exclusively without waiting: ErrLocked when someone else has
// it.
func lockFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	// A file removed or replaced between our open and our flock is not
	// the one others will open: a lock on it excludes nobody. Try the
	// new one (a few times; each round means someone else is busy with
	// the file, so give up as locked after that).
	for range 3 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, ErrLocked
			}
			return nil, err
		}
		held, err1 := f.Stat()
		now, err2 := os.Lstat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
	}
	return nil, ErrLocked
}

// writeLocked replaces the contents of a locked status file in place, as
// sendmail's mci_store_persistent does (rewind, truncate, write). A
// reader between the two steps sees a short file, which fails to parse
// and is ignored (Lookup keeps what it had).
func writeLocked(f *os.File, data []byte) (stamp, error) {
	if err := f.Truncate(0); err != nil {
		return stamp{}, err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return stamp{}, err
	}
	fi, err := f.Stat()
	if err != nil {
		return stamp{}, nil
	}
	return stampOf(fi), nil
}
