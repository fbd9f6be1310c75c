package route

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"time"
)

// Table is one of sendmail's plain key-value maps, as the source of a
// makemap database: the mailertable (remote domains to mailer:host) or
// the virtusertable (virtual addresses to targets); formats in the package
// comment. It reads its file again, at most once a second, when the
// file's size or time changes.
type Table struct {
	path  string
	kind  string              // "mailertable", "virtusertable": for messages
	check func(string) string // what is wrong with a value, "" if nothing
	now   func() time.Time

	mu       sync.Mutex
	entries  map[string]string
	warnings []string
	checked  time.Time
	stamp    fileStamp
}

type fileStamp struct {
	size int64
	mod  time.Time
	ok   bool
}

// LoadMailerTable reads the mailertable at path. A missing file is an
// empty table that appears when the file does; any other error is
// returned. now is the clock for the re-read check (nil: time.Now).
func LoadMailerTable(path string, now func() time.Time) (*Table, error) {
	return loadTable(path, "mailertable", checkMailer, now)
}

// ParseMailerTable reads a mailertable from r (no file behind it).
func ParseMailerTable(r io.Reader) (*Table, error) {
	return parseTableFrom(r, "mailertable", checkMailer)
}

// LoadVirtUserTable reads the virtusertable at path, as LoadMailerTable.
func LoadVirtUserTable(path string, now func() time.Time) (*Table, error) {
	return loadTable(path, "virtusertable", checkVirtUser, now)
}

// ParseVirtUserTable reads a virtusertable from r.
func ParseVirtUserTable(r io.Reader) (*Table, error) {
	return parseTableFrom(r, "virtusertable", checkVirtUser)
}

func loadTable(path, kind string, check func(string) string, now func() time.Time) (*Table, error) {
	if now == nil {
		now = time.Now
	}
	t := &Table{path: path, kind: kind, check: check, now: now}
	if err := t.load(); err != nil {
		return nil, err
	}
	return t, nil
}

func parseTableFrom(r io.Reader, kind string, check func(string) string) (*Table, error) {
	entries, warnings, err := parseTable(r, kind, check)
	if err != nil {
		return nil, err
	}
	return &Table{kind: kind, check: check, entries: entries, warnings: warnings, now: time.Now}, nil
}

// Warnings are the lines that could not be read, "file: line N: why".
func (t *Table) Warnings() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.warnings...)
}

// Len is the number of entries.
func (t *Table) Len() int {
	t.refresh()
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.entries)
}

// Get is an exact lookup, for -bt's /map mailertable.
func (t *Table) Get(key string) (string, bool) {
	t.refresh()
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.entries[strings.ToLower(key)]
	return v, ok
}

// Lookup finds the entry for domain (lower case, no trailing dot): the
// domain, then ".parent" keys from the most specific, then ".". It
// returns the key that matched.
func (t *Table) Lookup(domain string) (key, value string, ok bool) {
	t.refresh()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.entries) == 0 {
		return "", "", false
	}
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	if v, ok := t.entries[d]; ok {
		return d, v, true
	}
	for i := 0; i < len(d); i++ {
		if d[i] == '.' {
			if v, ok := t.entries[d[i:]]; ok {
				return d[i:], v, true
			}
		}
	}
	if v, ok := t.entries["."]; ok {
		return ".", v, true
	}
	return "", "", false
}

func (t *Table) refresh() {
	if t.path == "" {
		return
	}
	t.mu.Lock()
	now := t.now()
	due := now.Sub(t.checked) >= time.Second || now.Before(t.checked)
	if due {
		t.checked = now
	}
	t.mu.Unlock()
	if due {
		_ = t.load() // a failed re-read keeps the table in use
	}
}

func (t *Table) load() error {
	st := fileStamp{}
	fi, err := os.Stat(t.path)
	switch {
	case err == nil:
		st = fileStamp{size: fi.Size(), mod: fi.ModTime(), ok: true}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return err
	}
	t.mu.Lock()
	same := t.entries != nil && st == t.stamp
	t.mu.Unlock()
	if same {
		return nil
	}
	entries := map[string]string{}
	var warnings []string
	if st.ok {
		f, err := os.Open(t.path)
		if err != nil {
			return err
		}
		entries, warnings, err = parseTable(f, t.path, t.check)
		f.Close()
		if err != nil {
			return err
		}
	}
	t.mu.Lock()
	t.entries, t.warnings, t.stamp = entries, warnings, st
	t.mu.Unlock()
	return nil
}

// parseTable reads "key value" lines; keys are lower-cased.
func parseTable(r io.Reader, name string, check func(string) string) (map[string]string, []string, error) {
	entries := map[string]string{}
	var warnings []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			warnings = append(warnings, fmt.Sprintf("%s: line %d: no value for %s", name, n, line))
			continue
		}
		key := strings.TrimSuffix(strings.ToLower(line[:i]), ".")
		if line[:i] == "." {
			key = "."
		}
		value := strings.TrimSpace(line[i:])
		if why := check(value); why != "" {
			warnings = append(warnings, fmt.Sprintf("%s: line %d: %s: %s", name, n, key, why))
			continue
		}
		entries[key] = value
	}
	return entries, warnings, sc.Err()
}

// checkVirtUser says what is wrong with a virtusertable value.
func checkVirtUser(v string) string {
	if strings.TrimSpace(v) == "" {
		return "no target"
	}
	return ""
}

// checkMailer says what is wrong with a mailertable value, "" if nothing.
func checkMailer(v string) string {
	m, rest, ok := strings.Cut(v, ":")
	if !ok {
		return "value is not mailer:host"
	}
	switch strings.ToLower(m) {
	case Local, Error:
		return ""
	case ESMTP, SMTP, SMTP8, DSMTP, Relay:
		if strings.TrimSpace(rest) == "" {
			return "no host for mailer " + m
		}
		return ""
	}
	return "unknown mailer " + m
}
