package queue

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Entry is what a queue runner needs to know about a job without reading
// its qf: enough to choose, order and filter jobs.
type Entry struct {
	Dir        string // queue directory
	ID         string
	Priority   int64
	Created    time.Time
	LastTry    time.Time
	Attempts   int
	Warned     bool
	Sender     string   // S line as stored
	Recipients []string // addresses of the R lines
}

// EntryOf summarises a job that lives in queue directory dir.
func EntryOf(dir string, j *Job) Entry {
	e := Entry{Dir: dir, ID: j.ID, Priority: j.Priority, Created: j.Created, LastTry: j.LastTry,
		Attempts: j.Attempts, Warned: j.HasFlag(FlagWarned), Sender: j.Sender,
		Recipients: make([]string, len(j.Recipients))}
	for i, r := range j.Recipients {
		e.Recipients[i] = r.Addr
	}
	return e
}

// attempt returns the schedule facts of the entry.
func (e *Entry) attempt() Attempt {
	return Attempt{Created: e.Created, LastTry: e.LastTry, Attempts: e.Attempts, Warned: e.Warned}
}

// Index is an in-memory table of the jobs in a store, built by one scan at
// start (Store.LoadIndex) and kept current by the runner (Put after an
// enqueue or rewrite, Delete after a removal), so that runs do not rescan
// the directories. The files stay the truth: a job the index names may be
// gone or locked when the runner comes to it (Store.Lock says so), and jobs
// queued by other processes appear at the next LoadIndex. Safe for
// concurrent use.
type Index struct {
	mu sync.Mutex
	m  map[indexKey]*Entry
}

type indexKey struct{ dir, id string }

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{m: map[indexKey]*Entry{}} }

// Put adds or replaces an entry.
func (x *Index) Put(e Entry) {
	x.mu.Lock()
	x.m[indexKey{e.Dir, e.ID}] = &e
	x.mu.Unlock()
}

// Delete removes the entry of job id in dir.
func (x *Index) Delete(dir, id string) {
	x.mu.Lock()
	delete(x.m, indexKey{dir, id})
	x.mu.Unlock()
}

// Select returns the jobs that pass f and are due under sched at now (not
// too young), lowest priority value first (sendmail's QueueSortOrder=
// priority), then oldest first, then by ID.
func (x *Index) Select(f Filter, sched Schedule, now time.Time) []Entry {
	x.mu.Lock()
	out := make([]Entry, 0, len(x.m))
	for _, e := range x.m {
		if f.Match(e) && sched.Decide(e.attempt(), now).Due {
			out = append(out, *e)
		}
	}
	x.mu.Unlock()
	sortEntries(out)
	return out
}

// sortEntries orders entries by priority, creation time and ID.
func sortEntries(es []Entry) {
	sort.Slice(es, func(a, b int) bool {
		x, y := &es[a], &es[b]
		if x.Priority != y.Priority {
			return x.Priority < y.Priority
		}
		if !x.Created.Equal(y.Created) {
			return x.Created.Before(y.Created)
		}
		return x.ID < y.ID
	})
}

// LoadIndex scans every queue directory and returns a fresh index. Only
// the envelope of each qf is parsed (the lines before the headers hold
// all an Entry needs); the run that locks a job reads the whole file. A qf
// whose envelope cannot be parsed is locked, read again and, if still bad,
// renamed to Qf and logged (a locked one is left alone: its writer may
// still be at work). The lost IDs are returned for the caller to report.
func (s *Store) LoadIndex() (*Index, []string, error) {
	x := NewIndex()
	var lost []string
	for _, d := range s.dirs {
		// Each job becomes its entry as soon as it is read, and its
		// parsed envelope is dropped (see scan).
		entries, err := s.scan(d, 'q', true, false, func(e *scanned) {
			if e.openErr == nil && e.parseOK {
				x.Put(EntryOf(d.path, e.job))
				e.job = nil
			}
		})
		if err != nil {
			return nil, nil, fmt.Errorf("queue: scan %s: %w", d.path, err)
		}
		for i := range entries {
			e := &entries[i]
			if e.openErr != nil || e.parseOK {
				continue // gone meanwhile or unreadable for us; or indexed
			}
			l, err := s.Lock(d.path, e.id)
			switch {
			case errors.Is(err, ErrCorrupt):
				lost = append(lost, e.id)
			case err == nil:
				x.Put(EntryOf(d.path, l.Job()))
				l.Unlock()
			}
		}
	}
	return x, lost, nil
}

// Match is one -qI, -qR or -qS limit: a substring, or with Negate a
// substring that must not occur.
type Match struct {
	Substr string
	Negate bool
}

// Filter is the set of queue-run limits given on the command line. Within
// one kind a job passes when any limit matches (sendmail's rule); all kinds
// given must pass. Queue IDs compare case-sensitively, addresses not.
type Filter struct {
	IDs        []Match
	Recipients []Match
	Senders    []Match
}

// Add parses one limit as written after -q: "I<substr>", "R<substr>",
// "S<substr>", each optionally preceded by "!" for negation ("-q!Rfoo").
func (f *Filter) Add(spec string) error {
	neg := strings.HasPrefix(spec, "!")
	if neg {
		spec = spec[1:]
	}
	if len(spec) < 2 {
		return fmt.Errorf("queue: bad queue limit %q", spec)
	}
	m := Match{Substr: spec[1:], Negate: neg}
	switch spec[0] {
	case 'I':
		f.IDs = append(f.IDs, m)
	case 'R':
		f.Recipients = append(f.Recipients, m)
	case 'S':
		f.Senders = append(f.Senders, m)
	default:
		return fmt.Errorf("queue: bad queue limit %q", spec)
	}
	return nil
}

// Empty reports whether the filter has no limit (every job passes).
func (f Filter) Empty() bool {
	return len(f.IDs) == 0 && len(f.Recipients) == 0 && len(f.Senders) == 0
}

// Match reports whether the job passes the filter.
func (f Filter) Match(e *Entry) bool {
	if len(f.IDs) > 0 && !anyMatch(f.IDs, e.ID, false) {
		return false
	}
	if len(f.Senders) > 0 && !anyMatch(f.Senders, e.Sender, true) {
		return false
	}
	if len(f.Recipients) > 0 {
		ok := false
		for _, r := range e.Recipients {
			if anyMatch(f.Recipients, r, true) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func anyMatch(ms []Match, s string, fold bool) bool {
	if fold {
		s = strings.ToLower(s)
	}
	for _, m := range ms {
		sub := m.Substr
		if fold {
			sub = strings.ToLower(sub)
		}
		if strings.Contains(s, sub) != m.Negate {
			return true
		}
	}
	return false
}
