package aliases

import (
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
)

// Map is where the expander looks aliases up: a *Source in the daemon, a
// StaticMap in tests.
type Map interface {
	// Lookup returns the value of an alias; name is matched
	// case-insensitively. An error is a temporary failure.
	Lookup(name string) (value string, ok bool, err error)
}

// StaticMap is a fixed table of aliases (keys lower-case).
type StaticMap map[string]string

// Lookup implements Map.
func (m StaticMap) Lookup(name string) (string, bool, error) {
	v, ok := m[strings.ToLower(name)]
	return v, ok, nil
}

// SourceOptions configure a Source.
type SourceOptions struct {
	AliasFile string // the text file; the database is AliasFile + ".db"
	// AutoRebuild rebuilds an out-of-date database (sendmail's
	// AutoRebuildAliases); otherwise an out-of-date database is used and
	// "alias database <db> out of date" is logged once.
	AutoRebuild bool
	IsLocal     func(domain string) bool // $=w, for parsing alias names
	Logger      *maillog.Logger
	RunUser     string // for the rebuild's log line
	// CheckInterval limits how often the files are stat()ed for changes;
	// 0 checks at every lookup.
	CheckInterval time.Duration
}

// Source serves alias lookups from AliasFile.db, following rebuilds, or from
// the text file itself when there is no database (parsed once per change).
// A missing aliases file means no aliases.
//
// Close releases the database but leaves the Source usable: the daemon
// closes the previous configuration's Source a while after SIGHUP, and a
// session that began before the reload may still look aliases up. A closed
// Source opens the database for each lookup and closes it again, so it
// holds no file however long such a session lasts.
type Source struct {
	opts SourceOptions
	now  func() time.Time

	mu       sync.Mutex
	closed   bool
	checked  time.Time
	db       *DB
	text     StaticMap // used when there is no database
	textID   fileID
	warnedID fileID // text file version already reported as newer than the db
}

// NewSource returns a Source; files are opened at the first lookup.
func NewSource(opts SourceOptions) *Source {
	return &Source{opts: opts, now: time.Now}
}

// Lookup implements Map.
func (s *Source) Lookup(name string) (string, bool, error) {
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		if s.closed {
			defer s.mu.Unlock()
			return s.lookupClosed(name)
		}
		if err := s.check(); err != nil {
			s.mu.Unlock()
			return "", false, err
		}
		db, text := s.db, s.text
		s.mu.Unlock()
		if db == nil {
			v, ok := text[strings.ToLower(name)]
			return v, ok, nil
		}
		v, ok, err := db.Lookup(name)
		if errors.Is(err, errClosed) && attempt == 0 {
			continue // Close ran meanwhile: look again, the closed way
		}
		return v, ok, err
	}
}

// lookupClosed serves a lookup after Close: the files are checked afresh
// and a database opened for this lookup is closed again. Called with s.mu
// held.
func (s *Source) lookupClosed(name string) (string, bool, error) {
	s.checked = time.Time{}
	if err := s.check(); err != nil {
		return "", false, err
	}
	if s.db == nil {
		v, ok := s.text[strings.ToLower(name)]
		return v, ok, nil
	}
	v, ok, err := s.db.Lookup(name)
	s.db.Close()
	s.db = nil
	return v, ok, err
}

// Close releases the database; the Source stays usable (see Source).
func (s *Source) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

// check brings the view up to date with the files. Called with s.mu held.
func (s *Source) check() error {
	now := s.now()
	if s.opts.CheckInterval > 0 && !s.checked.IsZero() && now.Sub(s.checked) < s.opts.CheckInterval {
		return nil
	}
	s.checked = now
	dbPath := DBPath(s.opts.AliasFile)
	textFI, textErr := os.Stat(s.opts.AliasFile)
	if _, err := os.Stat(dbPath); err != nil {
		if s.db != nil {
			s.db.Close()
			s.db = nil
		}
		return s.loadText(textErr)
	}
	s.text = nil
	if s.db == nil {
		db, err := OpenDB(dbPath)
		if err != nil {
			return err
		}
		s.db = db
	}
	if textErr != nil || !s.stale(textFI) {
		return nil
	}
	tid, _ := statID(s.opts.AliasFile)
	if s.opts.AutoRebuild {
		Newaliases(io.Discard, s.opts.AliasFile, BuildOptions{IsLocal: s.opts.IsLocal,
			Logger: s.opts.Logger, RunUser: s.opts.RunUser})
		// DB.Lookup notices the new inode by itself.
		return nil
	}
	if tid != s.warnedID {
		s.warnedID = tid
		s.opts.Logger.Warnf("", "alias database %s out of date", dbPath)
	}
	return nil
}

// stale reports whether the text file changed since the database was built.
func (s *Source) stale(text os.FileInfo) bool {
	if size, mtime, ok := s.db.Source(); ok {
		return size != text.Size() || !mtime.Equal(text.ModTime())
	}
	dbFI, err := os.Stat(DBPath(s.opts.AliasFile))
	return err == nil && text.ModTime().After(dbFI.ModTime())
}

func (s *Source) loadText(statErr error) error {
	if statErr != nil {
		if os.IsNotExist(statErr) {
			s.text, s.textID = StaticMap{}, fileID{}
			return nil
		}
		return statErr
	}
	id, err := statID(s.opts.AliasFile)
	if err != nil {
		return err
	}
	if s.text != nil && id == s.textID {
		return nil
	}
	f, err := os.Open(s.opts.AliasFile)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := Parse(f, s.opts.IsLocal)
	if err != nil {
		return err
	}
	s.text, s.textID = p.Map(), id
	return nil
}
