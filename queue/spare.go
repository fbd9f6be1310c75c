package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// spareDir is the name of the pool of spare files inside a directory that
// holds qf or df files. sendmail and this package only look at names
// starting with a letter and "f", so a dot-name is never taken for a job.
const spareDir = ".spare"

// DefaultMaxSpares is the number of spare files kept per pool when
// Options.MaxSpares is 0.
const DefaultMaxSpares = 4096

// keepSpare is the largest spare kept with its old contents: reusing its
// blocks (overwriting them, then cutting the file to the new length)
// spares the file system freeing blocks when a job ends and allocating
// them for the next (on a discard-mounted file system, freeing blocks
// issues discards). A larger file is emptied as it enters the pool, so
// the pool holds at most MaxSpares × keepSpare bytes.
const keepSpare = 32 << 10

// rescanEvery limits how often an empty pool looks on disk for spares that
// other processes (a queue run from cron) put there.
const rescanEvery = 30 * time.Second

// errNoSpare says the pool had nothing usable: create a new file.
var errNoSpare = errors.New("queue: no spare file")

// pool is the spare files of one directory: empty regular files, named by
// their inode number, waiting in <dir>/.spare to become a tf or df again.
// Reusing an inode instead of unlinking one and allocating another spares
// a journal-less ext4 the search for a free inode that was not deleted
// recently, which costs up to a millisecond of CPU after many deletions.
//
// Several processes may share a pool. A file enters it either empty (a
// df) or under flock(LOCK_EX) until it is emptied (a qf, under the job's
// lock). A taker opens a spare, locks it, and only then renames it out,
// with RENAME_NOREPLACE: a spare that another process is moving cannot be
// locked, one it took is gone (ENOENT), and an existing name is never
// replaced. The in-memory list of names is only a hint.
type pool struct {
	path string
	dir  *os.File // open for fsync
	max  int
	mode os.FileMode
	gid  int
	uid  int // our effective user: only our own files are reused
	now  func() time.Time

	mu       sync.Mutex
	names    []string // last in, first out: recently used inodes are cached
	lastScan time.Time
}

// openPool makes (if needed) and opens the pool of directory parent and
// learns the spares already in it. Failing to, it returns nil: the
// directory then works without recycling.
func openPool(parent string, max int, mode os.FileMode, gid int, now func() time.Time) *pool {
	p := filepath.Join(parent, spareDir)
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	if fi, err := f.Stat(); err != nil || !fi.IsDir() {
		f.Close()
		return nil
	}
	pl := &pool{path: p, dir: f, max: max, mode: mode, gid: gid, uid: os.Geteuid(), now: now}
	pl.mu.Lock()
	pl.scanLocked()
	pl.mu.Unlock()
	return pl
}

func (p *pool) close() {
	if p != nil {
		p.dir.Close()
	}
}

// scanLocked replaces the list with the names in the pool directory (one
// getdents pass) and unlinks what is beyond the bound. It opens the
// directory anew: Store.Close may close p.dir while enqueuers run.
func (p *pool) scanLocked() {
	p.lastScan = p.now()
	f, err := os.Open(p.path)
	if err != nil {
		return
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return
	}
	p.names = p.names[:0]
	for _, n := range names {
		if _, err := strconv.ParseUint(n, 10, 64); err != nil {
			continue // not ours: leave it alone
		}
		if len(p.names) >= p.max {
			os.Remove(filepath.Join(p.path, n))
			continue
		}
		p.names = append(p.names, n)
	}
}

// Len is the number of spares the pool believes it has.
func (p *pool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.names)
}

func (p *pool) pop() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.names) == 0 && p.now().Sub(p.lastScan) >= rescanEvery {
		p.scanLocked()
	}
	if len(p.names) == 0 {
		return "", false
	}
	n := p.names[len(p.names)-1]
	p.names = p.names[:len(p.names)-1]
	return n, true
}

func (p *pool) push(n string) {
	p.mu.Lock()
	p.names = append(p.names, n)
	p.mu.Unlock()
}

func (p *pool) full() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.names) >= p.max
}

// take moves a spare to name in directory dirPath and returns it open
// read-write at offset 0, with the pool's mode and group, and the length
// of the old contents it still has (at most keepSpare): the caller
// writes from the start and cuts the file to what it wrote (see trim).
// With keepLock the file stays flock(LOCK_EX)ed, as a tf must be. An
// existing name gives an error matching os.ErrExist (the spare stays in
// the pool); an empty pool gives errNoSpare.
func (p *pool) take(dirPath, name string, keepLock bool) (*os.File, int64, error) {
	if p == nil {
		return nil, 0, errNoSpare
	}
	for {
		n, ok := p.pop()
		if !ok {
			return nil, 0, errNoSpare
		}
		sp, target := filepath.Join(p.path, n), filepath.Join(dirPath, name)
		// O_RDWR does not block even on a FIFO; fit refuses anything
		// but a regular file.
		fd, err := unix.Open(sp, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue // taken by another process
		}
		// Locked: another process is moving it in or out right now.
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
			unix.Close(fd)
			continue
		}
		// Another user's file (a queue shared by several users, such as
		// the MSP's clientmqueue) stays theirs: it would carry their
		// ownership into our job.
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil || int(st.Uid) != p.uid {
			unix.Close(fd)
			continue
		}
		if err := unix.Renameat2(unix.AT_FDCWD, sp, unix.AT_FDCWD, target, unix.RENAME_NOREPLACE); err != nil {
			unix.Close(fd)
			if err == unix.EEXIST {
				p.push(n)
				return nil, 0, &os.PathError{Op: "rename", Path: target, Err: err}
			}
			continue // ENOENT: another process took it between open and rename
		}
		stale, err := p.fit(fd, &st)
		if err != nil {
			// Not a file to reuse: remove our name for it (a hard link
			// left by fsck keeps its other name) and look further.
			unix.Unlink(target)
			unix.Close(fd)
			continue
		}
		if !keepLock {
			unix.Flock(fd, unix.LOCK_UN)
		}
		return os.NewFile(uintptr(fd), target), stale, nil
	}
}

// trim cuts a file taken from a pool with stale bytes of old contents to
// the n bytes written since, before it is synced and named as a job's.
func trim(f *os.File, stale, n int64) error {
	if stale > n {
		return f.Truncate(n)
	}
	return nil
}

// errUnfit marks a spare that cannot be reused.
var errUnfit = errors.New("queue: spare not reusable")

// fit checks that the file just taken (st is its status, from before the
// rename, which changes none of it) is a spare nobody else uses (one
// link: after a crash, fsck may have joined a spare's name and a queue
// file's into hard links of one inode), gives it the pool's mode and
// group, and returns the length of its old contents; one longer than
// keepSpare (left by a crash, or by an older version) is emptied.
func (p *pool) fit(fd int, st *unix.Stat_t) (int64, error) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return 0, errUnfit
	}
	stale := st.Size
	if stale > keepSpare {
		if err := unix.Ftruncate(fd, 0); err != nil {
			return 0, err
		}
		stale = 0
	}
	if os.FileMode(st.Mode&0o7777) != p.mode {
		if err := unix.Fchmod(fd, uint32(p.mode)); err != nil {
			return 0, err
		}
	}
	if p.gid >= 0 && int(st.Gid) != p.gid {
		unix.Fchown(fd, -1, p.gid) // best effort, as for new files
	}
	return stale, nil
}

// put moves name in directory dirPath, open as f, into the pool, emptied
// if it is longer than keepSpare; when the pool is full (or missing, or f is not a plain file with one
// link) it unlinks name instead, as sendmail does. Either way the name is
// gone in one step. f stays open but unlocked: its flock (a tf's or a
// job's) is released here.
func (p *pool) put(f *os.File, dirPath, name string) error {
	src := filepath.Join(dirPath, name)
	fd := int(f.Fd())
	var st unix.Stat_t
	ok := p != nil && !p.full() && unix.Fstat(fd, &st) == nil &&
		st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 &&
		unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil
	if ok {
		spare := strconv.FormatUint(st.Ino, 10)
		err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, filepath.Join(p.path, spare), unix.RENAME_NOREPLACE)
		if err == nil {
			if st.Size > keepSpare {
				unix.Ftruncate(fd, 0) // a crash before this: take truncates
			}
			// Unlock before the name is offered: a taker that finds it
			// locked would drop it. The job lock is not needed any more:
			// the qf name is gone, and Lock checks the name after locking.
			unix.Flock(fd, unix.LOCK_UN)
			p.push(spare)
			return nil
		}
		if err == unix.ENOENT {
			return &os.PathError{Op: "remove", Path: src, Err: err}
		}
	}
	return os.Remove(src)
}

// putPath is put for a file the caller does not have open: a df whose qf
// is gone, so that no job uses it any more. One longer than keepSpare is
// emptied where it is and then moved, so it needs no lock. A file with
// other links (or not a plain file) is unlinked, never emptied. It is
// emptied through a descriptor, not by path: ext4 marks a file truncated
// to zero for writeback at its next close, and that close would
// otherwise be the next job's.
func (p *pool) putPath(dirPath, name string) error {
	src := filepath.Join(dirPath, name)
	if p != nil && !p.full() {
		if fd, err := unix.Open(src, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0); err == nil {
			var st unix.Stat_t
			ok := unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 &&
				(st.Size <= keepSpare || unix.Ftruncate(fd, 0) == nil)
			unix.Close(fd)
			if ok {
				spare := strconv.FormatUint(st.Ino, 10)
				err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, filepath.Join(p.path, spare), unix.RENAME_NOREPLACE)
				if err == nil {
					p.push(spare)
					return nil
				}
				if err == unix.ENOENT {
					return &os.PathError{Op: "remove", Path: src, Err: err}
				}
			}
		}
	}
	return os.Remove(src)
}
