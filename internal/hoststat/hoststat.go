// Package hoststat keeps sendmail 8's host status: the outcome of the last
// connection to each host, in memory for one process and, when
// HostStatusDirectory is set, in sendmail's on-disk layout so that other
// processes (queue runs, hoststat, purgestat) share it.
//
// # Layout
//
// One file per host, under directories named by the host's labels in
// reverse, each with a trailing dot (sendmail's
// mci_generate_persistent_path):
//
//	<HostStatusDirectory>/example./remote./mx     mx.remote.example
//	<HostStatusDirectory>/local                   the local mailer
//	<HostStatusDirectory>/1./2./0./192            [192.0.2.1]
//
// Names are lower case and a '/' in a name is written ':'. Directories are
// made 0755 and files 0600, as sendmail makes them. Names that start with
// a dot are not status files: posthorn writes a file as a dot-named
// temporary beside it and renames it into place, so a reader (posthorn or
// sendmail) never sees half a file, and sendmail's traversal skips them.
//
// # File format
//
// Lines of a letter and a value, in this order, ending with a "." line
// (sendmail's mci_store_persistent; every line ends in LF):
//
//	V0                      format version, always 0
//	E111                    errno of the failed connection (111 ECONNREFUSED), 0 if none
//	H0                      resolver error (h_errno), 0 if none
//	S75                     sysexits status of the attempt (0 success, 75 EX_TEMPFAIL)
//	D4.4.1                  enhanced status code; line left out when empty
//	R250 2.0.0 Ok: queued   the host's last SMTP reply, at most 80 bytes; left out when empty
//	U1795581153             when it was recorded (Unix seconds)
//	.
//
// Reading accepts the lines in any order and stops at the "."; an empty or
// unknown line, or a version other than 0, makes the file unreadable, as in
// sendmail. Numbers are read as C's atoi reads them.
//
// # What is skipped
//
// A host is down (Status.Down) when the Exit of its last attempt is not 0,
// and it stays down until Timeout.hoststatus has passed since Updated:
// sendmail's deliver skips every host whose mci_exitstat is not EX_OK and
// mci_get forgets a status older than MciInfoTimeout. So what the relay
// client records as Exit decides: the outcome of the connection (refused,
// timed out, no address, a 4xx or 5xx greeting), not of one recipient. A
// recipient refused with 550 on a working connection is recorded with Exit
// 0 and its reply in R, as sendmail does for bounce.example in the
// reference capture. An Exit of 76 (EX_PROTOCOL) is never sticky: the
// previous Exit is kept, as in sendmail's mci_setstat.
//
// Lookup sees what other processes record: it stats the file on each call
// and reads it again when its size, modification time or inode changed
// (a stat costs a few microseconds, reading and parsing the file each time
// about ten times more; see BenchmarkLookup). With no directory the table
// lives in this process only. Files are not fsynced: host status is a
// cache, and a file lost or emptied by a crash reads as no status.
//
// # SingleThreadDelivery
//
// Lock takes sendmail's per-host lock: an exclusive flock on the host's
// status file, held for as long as a connection to the host is open
// (see lock.go). A table that has locked once writes every file in place
// under its lock instead of renaming, so that a lock always sits on the
// file others open; purgestat leaves locked files alone.
//
// # hoststat and purgestat
//
// Print writes sendmail's hoststat table (mci_print_persistent): a header
// line, then one line per file in the tree, "%c%-39s %12s %s": '*' when
// another process holds a lock on the file, the host, how long ago the
// status was recorded ("HH:MM:SS", with "D+" in front after a day), and
// the result cut to 25 bytes (78 with -v): the recorded reply; else
// "Deferred: " and the errno text for an EX_TEMPFAIL with an errno; else
// the sysexits text ("5.1.2 Host unknown"); else "OK". sendmail lists the
// files in directory order; posthorn lists them sorted by name at each
// level, so the output does not depend on the file system. Nothing is
// printed, not even the header, when there is no status file.
//
// Purge is purgestat (mci_purge_persistent): it removes each file whose
// modification time is older than Timeout.hoststatus, then each directory
// whose entries are all gone and that itself was not modified within
// Timeout.hoststatus, so a directory emptied by this run stays until the
// next one, as in sendmail.
package hoststat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/sysexits"
)

// Status is the outcome of the last attempt on one host.
type Status struct {
	Host    string    // "mx.remote.example", or "local" for the local mailer
	Errno   int       // E: errno of a failed connection (111 ECONNREFUSED), 0 if none
	Herrno  int       // H: resolver error (h_errno), 0 if none
	Exit    int       // S: sysexits status of the attempt (0 success, 75 temporary)
	DSN     string    // D: enhanced status, "4.4.1"
	Reply   string    // R: the host's last reply, or "" (sendmail omits the line)
	Updated time.Time // U: when this was recorded
}

// Down reports whether the last attempt on the host failed at host level
// (any Exit but 0, as sendmail's mci_exitstat != EX_OK): the host is
// skipped until Timeout.hoststatus has passed. Lookup returns only
// statuses that young.
func (s Status) Down() bool { return s.Exit != 0 }

// Table is the host status of this process, backed by a directory when
// one is configured. It is safe for concurrent use.
type Table struct {
	dir    string
	expire time.Duration
	now    func() time.Time

	mu  sync.Mutex
	mem map[string]entry
	// held are the status files this table has locked (Lock), by host.
	held map[string]*os.File
	// locking is set by the first Lock (SingleThreadDelivery): from then
	// on every Record writes under the file's lock, never by rename.
	locking bool
}

// entry is what the table knows of one host; stamp identifies the file
// version it was read from or written as (zero: not on disk).
type entry struct {
	s     Status
	stamp stamp
}

type stamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func stampOf(fi fs.FileInfo) stamp {
	st := stamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// Open returns the table for dir ("" keeps status in memory only, as
// sendmail does within one run when HostStatusDirectory is unset); expire is
// Timeout.hoststatus; now is the clock (nil: time.Now).
func Open(dir string, expire time.Duration, now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	return &Table{dir: dir, expire: expire, now: now, mem: map[string]entry{}, held: map[string]*os.File{}}
}

// Lookup returns the recorded status of host while it is younger than
// Timeout.hoststatus.
func (t *Table) Lookup(host string) (Status, bool) {
	key, err := canonHost(host)
	if err != nil {
		return Status{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.current(key)
	if !ok || !t.now().Before(e.s.Updated.Add(t.expire)) {
		return Status{}, false
	}
	return e.s, true
}

// current is the latest status of key: the file when it changed since it
// was last read, else the memory. Called with t.mu held.
func (t *Table) current(key string) (entry, bool) {
	e, ok := t.mem[key]
	if t.dir == "" {
		return e, ok
	}
	path, err := Path(t.dir, key)
	if err != nil {
		return e, ok
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if ok && e.stamp != (stamp{}) {
			// Removed by purgestat (or by hand) since we read it.
			delete(t.mem, key)
			return entry{}, false
		}
		return e, ok // recorded here, but the file could not be written
	case err != nil || !fi.Mode().IsRegular():
		return e, ok
	}
	st := stampOf(fi)
	if ok && st == e.stamp {
		return e, true
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return e, ok
	}
	s, err := Parse(data)
	if err != nil {
		// Being rewritten in place by a sendmail, or damaged: keep what
		// we had.
		return e, ok
	}
	s.Host = key
	e = entry{s: s, stamp: st}
	t.mem[key] = e
	return e, true
}

// Record stores the outcome of an attempt on s.Host; Updated defaults to
// now. The status is kept in memory even when the file cannot be written
// (the error says why).
func (t *Table) Record(s Status) error {
	key, err := canonHost(s.Host)
	if err != nil {
		return err
	}
	s.Host = key
	if s.Updated.IsZero() {
		s.Updated = t.now()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.Exit == sysexits.Protocol {
		prev, _ := t.current(key)
		s.Exit = prev.s.Exit
	}
	e := entry{s: s}
	defer func() { t.mem[key] = e }()
	if t.dir == "" {
		return nil
	}
	path, err := Path(t.dir, key)
	if err != nil {
		return err
	}
	st, err := t.write(key, path, Format(s))
	if err != nil {
		return err
	}
	e.stamp = st
	return nil
}

// write stores a status file. Without SingleThreadDelivery it is replaced
// atomically. With it, it is written in place under its lock: the one
// this table holds for a connection, else one taken for the write; when
// another process holds the host, the file is left to it (sendmail's
// mci_unlock_host: "stat file already locked") and the status stays in
// memory. Called with t.mu held.
func (t *Table) write(key, path string, data []byte) (stamp, error) {
	if f := t.held[key]; f != nil {
		return writeLocked(f, data)
	}
	if !t.locking {
		return writeAtomic(path, data)
	}
	f, err := lockFile(path)
	if errors.Is(err, ErrLocked) {
		return stamp{}, nil
	}
	if err != nil {
		return stamp{}, err
	}
	defer f.Close()
	return writeLocked(f, data)
}

// writeAtomic writes data to path through a dot-named temporary file in
// the same directory, creating the directories on the way.
func writeAtomic(path string, data []byte) (stamp, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return stamp{}, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return stamp{}, err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return stamp{}, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, nil
	}
	return stampOf(fi), nil
}
