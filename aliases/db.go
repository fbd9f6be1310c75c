package aliases

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/sysexits"
)

var (
	bucketAliases = []byte("aliases")
	bucketSource  = []byte("source")
	keyMtime      = []byte("mtime") // source file modification time, Unix nanoseconds
	keySize       = []byte("size")  // source file size in bytes
)

// Stats are the figures newaliases prints.
type Stats struct {
	Aliases int // entries stored, duplicates included
	Longest int // longest value in bytes
	Total   int // sum of name and value lengths
}

// String renders the statistics line without the file name prefix.
func (s Stats) String() string {
	return fmt.Sprintf("%d aliases, longest %d bytes, %d bytes total", s.Aliases, s.Longest, s.Total)
}

// BuildOptions configure Newaliases.
type BuildOptions struct {
	// IsLocal reports whether a domain is one of this host's names ($=w);
	// alias names may carry only those. nil: none.
	IsLocal func(domain string) bool
	// Logger receives the "rebuilt by" notice, the statistics and every
	// error as sendmail logs them (SYSERR lines). nil discards.
	Logger *maillog.Logger
	// RunUser is the name of the user running the rebuild ("root"), for
	// the log lines.
	RunUser string
	// Warnings receives posthorn's own warnings (no postmaster or
	// MAILER-DAEMON alias), kept off w so that w carries exactly what
	// sendmail prints; cmd passes os.Stderr. nil: logged only.
	Warnings io.Writer
}

// DBPath is the database file for an aliases file.
func DBPath(aliasFile string) string { return aliasFile + ".db" }

// Newaliases rebuilds the database of aliasFile as sendmail -bi does,
// printing diagnostics and the statistics line to w, and returns the exit
// status: 0, or 70 (EX_SOFTWARE) when the file had errors or the database
// could not be written (the database is still written with the good
// entries, as sendmail does).
func Newaliases(w io.Writer, aliasFile string, opts BuildOptions) int {
	runUser := opts.RunUser
	if runUser == "" {
		runUser = "root"
	}
	syserr := func(msg string) {
		fmt.Fprintln(w, msg)
		opts.Logger.Errf("NOQUEUE", "SYSERR(%s): %s", runUser, msg)
	}
	f, err := os.Open(aliasFile)
	if err != nil {
		syserr(fmt.Sprintf("Cannot open %s: %s", aliasFile, errText(err)))
		return sysexits.Software
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		syserr(fmt.Sprintf("Cannot open %s: %s", aliasFile, errText(err)))
		return sysexits.Software
	}
	opts.Logger.Noticef("", "alias database %s rebuilt by %s", aliasFile, runUser)
	p, err := Parse(f, opts.IsLocal)
	if err != nil {
		syserr(fmt.Sprintf("%s: read error: %s", aliasFile, errText(err)))
		return sysexits.Software
	}
	code := sysexits.OK
	for _, d := range p.Diags {
		if d.Warning {
			fmt.Fprintln(w, d.Format(aliasFile))
			continue
		}
		syserr(d.Format(aliasFile))
		code = sysexits.Software
	}
	st, err := WriteDB(DBPath(aliasFile), p.Entries, fi)
	if err != nil {
		syserr(fmt.Sprintf("%s: %s", DBPath(aliasFile), errText(err)))
		return sysexits.Software
	}
	m := p.Map()
	for _, n := range []string{"postmaster", "mailer-daemon"} {
		if _, ok := m[n]; !ok {
			msg := fmt.Sprintf("%s: Warning: no alias for %s", aliasFile, n)
			opts.Logger.Warnf("", "%s", msg)
			if opts.Warnings != nil {
				fmt.Fprintln(opts.Warnings, msg)
			}
		}
	}
	line := fmt.Sprintf("%s: %s", aliasFile, st)
	fmt.Fprintln(w, line)
	opts.Logger.Infof("", "%s", line)
	return code
}

// errText is the strerror-like text of an error, without Go's "open x:"
// prefix.
func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		s := errno.Error()
		return strings.ToUpper(s[:1]) + s[1:]
	}
	return err.Error()
}

// WriteDB writes entries to dbPath atomically: a temporary file in the same
// directory, one bbolt transaction, synced, renamed over dbPath, directory
// synced. src, when not nil, is the aliases file's stat, recorded for the
// staleness check.
func WriteDB(dbPath string, entries []Entry, src os.FileInfo) (Stats, error) {
	var st Stats
	dir := filepath.Dir(dbPath)
	tmpf, err := os.CreateTemp(dir, "."+filepath.Base(dbPath)+".tmp*")
	if err != nil {
		return st, err
	}
	tmp := tmpf.Name()
	tmpf.Close()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o644); err != nil {
		return st, err
	}
	db, err := bolt.Open(tmp, 0o644, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return st, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bucketAliases)
		if err != nil {
			return err
		}
		// Sorted keys fill bbolt pages densely; FillPercent 1 is safe
		// because the database is never written again.
		b.FillPercent = 0.9
		for _, e := range entries {
			if err := b.Put([]byte(e.Name), []byte(e.Value)); err != nil {
				return err
			}
			st.Aliases++
			st.Total += len(e.Name) + len(e.Value)
			st.Longest = max(st.Longest, len(e.Value))
		}
		if err := b.Put([]byte("@"), []byte("@")); err != nil {
			return err
		}
		s, err := tx.CreateBucket(bucketSource)
		if err != nil {
			return err
		}
		if src != nil {
			if err := s.Put(keyMtime, u64(uint64(src.ModTime().UnixNano()))); err != nil {
				return err
			}
			if err := s.Put(keySize, u64(uint64(src.Size()))); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return st, err
	}
	// bbolt synced the commit; sync once more so the file's metadata is on
	// disk before the name points at it.
	if err := syncPath(tmp); err != nil {
		return st, err
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return st, err
	}
	ok = true
	return st, syncPath(dir)
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

var errClosed = errors.New("aliases database closed")

// DB is a read-only view of an aliases database that follows rebuilds: a
// daemon keeps one open, and when newaliases renames a new file into place
// (another inode) the next lookup reopens it.
type DB struct {
	path string

	mu  sync.RWMutex
	db  *bolt.DB
	id  fileID
	chk time.Time // when the path was last checked
	// CheckInterval limits how often Lookup stats the path for a new
	// file; 0 checks at every lookup (a stat is about a microsecond).
	CheckInterval time.Duration
	now           func() time.Time
}

type fileID struct {
	dev, ino uint64
	mtime    int64
}

func statID(path string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileID{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, mtime: st.Mtim.Nano()}, nil
}

// OpenDB opens the database at path read-only.
func OpenDB(path string) (*DB, error) {
	d := &DB{path: path, now: time.Now}
	if err := d.reopen(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *DB) reopen() error {
	id, err := statID(d.path)
	if err != nil {
		return err
	}
	db, err := bolt.Open(d.path, 0, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return err
	}
	old := d.db
	d.db, d.id, d.chk = db, id, d.now()
	if old != nil {
		old.Close()
	}
	return nil
}

// refresh reopens the file when the path now names another file.
func (d *DB) refresh() error {
	d.mu.RLock()
	due := d.CheckInterval == 0 || d.now().Sub(d.chk) >= d.CheckInterval
	cur := d.id
	d.mu.RUnlock()
	if !due {
		return nil
	}
	id, err := statID(d.path)
	if err != nil {
		// The file went away: keep serving the open one rather than
		// failing every recipient.
		return nil
	}
	if id == cur {
		if d.CheckInterval > 0 {
			d.mu.Lock()
			d.chk = d.now()
			d.mu.Unlock()
		}
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db != nil && d.id == cur { // not if Close ran meanwhile: it stays closed
		return d.reopen()
	}
	return nil
}

// Lookup returns the value stored for name (case-insensitive).
func (d *DB) Lookup(name string) (string, bool, error) {
	if err := d.refresh(); err != nil {
		return "", false, err
	}
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.db == nil {
		return "", false, errClosed
	}
	var val string
	var found bool
	err := d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAliases)
		if b == nil {
			return errors.New("not an aliases database")
		}
		if v := b.Get([]byte(strings.ToLower(name))); v != nil {
			val, found = string(v), true
		}
		return nil
	})
	return val, found, err
}

// Source returns the size and modification time of the aliases file the
// database was built from (ok false for a database without them).
func (d *DB) Source() (size int64, mtime time.Time, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.db == nil {
		return 0, time.Time{}, false
	}
	d.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSource)
		if b == nil {
			return nil
		}
		m, s := b.Get(keyMtime), b.Get(keySize)
		if len(m) == 8 && len(s) == 8 {
			size = int64(binary.BigEndian.Uint64(s))
			mtime = time.Unix(0, int64(binary.BigEndian.Uint64(m)))
			ok = true
		}
		return nil
	})
	return size, mtime, ok
}

// Close releases the database.
func (d *DB) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.db == nil {
		return nil
	}
	err := d.db.Close()
	d.db = nil
	return err
}
