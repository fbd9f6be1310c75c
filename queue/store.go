package queue

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/maillog"
)

// SyncMode says how the store makes new queue files durable.
type SyncMode int

const (
	// SyncBatch (the default) gathers every Enqueue waiting at the moment
	// into one batch: one syncfs(2) per file system makes all their df and
	// tf files (and the spare pools they came from) durable, then each tf
	// is renamed to qf, and one fsync of each queue directory (and of a
	// separate df directory) makes the renames durable, while the next
	// batch's syncfs runs. Nobody is answered before both the syncfs and
	// the directory fsync covering their files have returned.
	SyncBatch SyncMode = iota
	// SyncFiles batches the same way but fsyncs each df and tf, then each
	// queue directory once per batch, instead of syncing the whole file
	// system (for file systems shared with heavy unrelated writers).
	SyncFiles
	// SyncNone never syncs: for tests and throw-away queues only.
	SyncNone
	// SyncEach does the whole protocol for every job on its own (fsync df
	// and tf, rename, fsync the directory) without sharing anything: the
	// baseline the batched modes are measured against.
	SyncEach
)

// Options configures a Store. The zero value with Dirs set is usable.
type Options struct {
	// Dirs are the queue directories (QueueDirectory, or the -oQ
	// alternative). Each may be a glob such as /var/spool/mqueue/q*, which
	// stands for every matching directory.
	Dirs []string
	// Create makes a missing directory (not a glob) with mode 0700.
	Create bool
	// Mode of new queue files; 0 means 0640 when the group smmsp exists
	// (files are then given that group) and 0600 otherwise.
	Mode os.FileMode
	// Sync chooses how enqueued files are made durable.
	Sync SyncMode
	// Logger receives lost-file and clean-up notices; nil discards them.
	Logger *maillog.Logger
	// Now is the clock (nil = time.Now); Pid goes into queue IDs (0 =
	// os.Getpid()).
	Now func() time.Time
	Pid int
	// ReadOnly opens the store for mailq: Open cleans nothing up and makes
	// no spare pool, and everything that would write (Begin, BeginID,
	// Lock, Adopt) fails with ErrReadOnly. Listing works.
	ReadOnly bool
	// NoCleanup skips that clean-up at Open (it reads the whole
	// directory): for a short-lived process (a submission, the child that
	// delivers it) that leaves crash leftovers to the daemon and queue
	// runs, as sendmail's submissions do.
	NoCleanup bool
	// OrphanAge: a df with neither qf nor tf that is older than this is
	// removed by Open (0 = one hour). Such files are left behind by a crash
	// between the removal of a qf and of its df.
	OrphanAge time.Duration
	// MaxSpares bounds the pool of spare files kept in each directory
	// (0 = DefaultMaxSpares, negative = no pool: finished jobs' files are
	// unlinked and new ones created, as sendmail does).
	MaxSpares int
}

// Store is a set of queue directories. It is safe for concurrent use.
type Store struct {
	dirs     []*queueDir
	byPath   map[string]*queueDir
	mode     os.FileMode
	gid      int // -1: leave the group alone
	log      *maillog.Logger
	now      func() time.Time
	ids      *IDGen
	next     atomic.Uint64 // round-robin choice of directory for new jobs
	readOnly bool
	commit   *committer
}

// queueDir is one queue directory and where its kinds of files live.
type queueDir struct {
	path   string // as configured: shown by mailq, written in d lines
	qf, df string // directories holding qf/tf/Qf files and df files
	qfFd   *os.File
	dfFd   *os.File // == qfFd when they are the same directory
	fsid   uint64   // device: one syncfs per file system
	// Spare files for new tf and df files; dfPool == qfPool when df
	// files live with the qf files; nil when not recycling.
	qfPool, dfPool *pool
}

// Errors returned by the store.
var (
	ErrLocked   = errors.New("queue: job is locked by another process")
	ErrNotFound = errors.New("queue: job not found")
	ErrCorrupt  = errors.New("queue: unreadable queue file")
	ErrClosed   = errors.New("queue: store closed")
	ErrReadOnly = errors.New("queue: store opened read-only")
)

// Open expands the queue directories, opens their pools of spare files
// (see the package comment), recycles what earlier crashes left (unlocked
// tf files, orphaned df files) and starts the group committer.
func Open(o Options) (*Store, error) {
	if len(o.Dirs) == 0 {
		return nil, errors.New("queue: no queue directory configured")
	}
	s := &Store{byPath: map[string]*queueDir{}, log: o.Logger, now: o.Now, gid: -1}
	if s.now == nil {
		s.now = time.Now
	}
	pid := o.Pid
	if pid == 0 {
		pid = os.Getpid()
	}
	s.ids = NewIDGen(pid, s.now)
	s.mode = o.Mode
	if s.mode == 0 {
		s.mode = 0o600
		if g, err := user.LookupGroup("smmsp"); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				s.mode, s.gid = 0o640, gid
			}
		}
	}
	var paths []string
	for _, d := range o.Dirs {
		if strings.ContainsAny(d, "*?[") {
			m, err := filepath.Glob(d)
			if err != nil {
				return nil, fmt.Errorf("queue: bad QueueDirectory pattern %s: %w", d, err)
			}
			var dirs []string
			for _, p := range m {
				if fi, err := os.Stat(p); err == nil && fi.IsDir() {
					dirs = append(dirs, p)
				}
			}
			if len(dirs) == 0 {
				return nil, fmt.Errorf("queue: no queue directory matches %s", d)
			}
			sort.Strings(dirs)
			paths = append(paths, dirs...)
			continue
		}
		if o.Create {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, fmt.Errorf("queue: cannot create queue directory: %w", err)
			}
		}
		paths = append(paths, d)
	}
	for _, p := range paths {
		if _, dup := s.byPath[p]; dup {
			continue
		}
		d, err := openDir(p)
		if err != nil {
			s.closeDirs()
			return nil, err
		}
		s.dirs = append(s.dirs, d)
		s.byPath[p] = d
	}
	orphanAge := o.OrphanAge
	if orphanAge == 0 {
		orphanAge = time.Hour
	}
	if !o.ReadOnly {
		max := o.MaxSpares
		if max == 0 {
			max = DefaultMaxSpares
		}
		for _, d := range s.dirs {
			if max > 0 {
				d.qfPool = openPool(d.qf, max, s.mode, s.gid, s.now)
				d.dfPool = d.qfPool
				if d.df != d.qf {
					d.dfPool = openPool(d.df, max, s.mode, s.gid, s.now)
				}
			}
			if !o.NoCleanup {
				s.cleanup(d, orphanAge)
			}
		}
	}
	s.readOnly = o.ReadOnly
	s.commit = newCommitter(o.Sync)
	return s, nil
}

func openDir(p string) (*queueDir, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("queue: cannot use queue directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("queue: %s is not a directory", p)
	}
	d := &queueDir{path: p, qf: p, df: p}
	// sendmail's layout for big queues: qf, df and xf subdirectories.
	if st, err := os.Stat(filepath.Join(p, "qf")); err == nil && st.IsDir() {
		d.qf = filepath.Join(p, "qf")
	}
	if st, err := os.Stat(filepath.Join(p, "df")); err == nil && st.IsDir() {
		d.df = filepath.Join(p, "df")
	}
	if d.qfFd, err = os.Open(d.qf); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	d.dfFd = d.qfFd
	if d.df != d.qf {
		if d.dfFd, err = os.Open(d.df); err != nil {
			d.qfFd.Close()
			return nil, fmt.Errorf("queue: %w", err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(d.qfFd.Fd()), &st); err == nil {
		d.fsid = st.Dev
	}
	return d, nil
}

func (s *Store) closeDirs() {
	for _, d := range s.dirs {
		if d.dfPool != d.qfPool {
			d.dfPool.close()
		}
		d.qfPool.close()
		if d.dfFd != d.qfFd {
			d.dfFd.Close()
		}
		d.qfFd.Close()
	}
}

// Close stops the committer (after the batches in flight) and releases the
// directories. Locks held through Locked values stay valid until released.
func (s *Store) Close() error {
	s.commit.close()
	s.closeDirs()
	return nil
}

// NewID returns a fresh queue ID without reserving it; Begin reserves one.
func (s *Store) NewID() string { return s.ids.Next() }

func (s *Store) dir(path string) (*queueDir, error) {
	if d, ok := s.byPath[path]; ok {
		return d, nil
	}
	if path == "" && len(s.dirs) > 0 {
		return s.dirs[0], nil
	}
	return nil, fmt.Errorf("queue: %s is not a queue directory of this store", path)
}

// dataPath is where the df of job id lives: in the queue directory named
// by a d line, or in the qf's own queue directory.
func (s *Store) dataPath(d *queueDir, dataDir, id string) string {
	if dataDir != "" {
		if dd, ok := s.byPath[dataDir]; ok {
			return filepath.Join(dd.df, "df"+id)
		}
		return filepath.Join(dataDir, "df"+id)
	}
	return filepath.Join(d.df, "df"+id)
}

// cleanup recycles (or removes, without a pool) tf files nobody holds (a
// crash while enqueueing or rewriting) and, when no qf exists for them,
// their df; then df files left without any control file for longer than
// orphanAge.
func (s *Store) cleanup(d *queueDir, orphanAge time.Duration) {
	names, err := readNames(int(d.qfFd.Fd()))
	if err != nil {
		s.log.Errf("", "queue: cannot read %s: %v", d.path, err)
		return
	}
	if _, err := d.qfFd.Seek(0, 0); err != nil {
		s.log.Errf("", "queue: cannot rewind %s: %v", d.path, err)
	}
	control := map[string]bool{}
	for _, n := range names {
		if len(n) > 2 && n[1] == 'f' && (n[0] == 'q' || n[0] == 'Q' || n[0] == 'h') {
			control[n[2:]] = true
		}
	}
	for _, n := range names {
		if len(n) <= 2 || n[0] != 't' || n[1] != 'f' {
			continue
		}
		p := filepath.Join(d.qf, n)
		f, err := os.OpenFile(p, os.O_RDWR, 0) // writable: recycling empties it
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil {
			f.Close() // being written right now by a live process
			continue
		}
		id := n[2:]
		d.qfPool.put(f, d.qf, n)
		if !control[id] {
			d.dfPool.putPath(d.df, "df"+id)
		}
		f.Close()
		s.log.Noticef(id, "removed stale %s", p)
	}
	dnames := names
	if d.df != d.qf {
		if dnames, err = readNames(int(d.dfFd.Fd())); err != nil {
			return
		}
		d.dfFd.Seek(0, 0)
	}
	cutoff := s.now().Add(-orphanAge)
	for _, n := range dnames {
		if len(n) <= 2 || n[0] != 'd' || n[1] != 'f' || control[n[2:]] {
			continue
		}
		id := n[2:]
		// A writer creates its tf before the df and renames it to qf, so
		// looking for the tf first, then the qf, cannot miss a live job.
		if exists(filepath.Join(d.qf, "tf"+id)) || exists(filepath.Join(d.qf, "qf"+id)) {
			continue
		}
		p := filepath.Join(d.df, n)
		if fi, err := os.Stat(p); err == nil && fi.ModTime().Before(cutoff) {
			d.dfPool.putPath(d.df, n)
			s.log.Noticef(id, "removed orphaned %s", p)
		}
	}
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
