package aliases

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/posthorn/posthorn/internal/maillog"
)

// TestNewaliasesReference rebuilds the reference aliases file and compares
// the statistics line with 04-newaliases.txt.
func TestNewaliasesReference(t *testing.T) {
	// The file exactly as on the reference host (its :include: path is
	// only text here), so that the byte counts match.
	text, err := os.ReadFile("testdata/ref/aliases")
	if err != nil {
		t.Fatal(err)
	}
	f := struct{ path string }{filepath.Join(t.TempDir(), "aliases")}
	mustWrite(t, f.path, string(text), 0o644)
	var out, warn, log bytes.Buffer
	code := Newaliases(&out, f.path, BuildOptions{IsLocal: refLocal, Warnings: &warn,
		Logger: maillog.New(&log, "sendmail"), RunUser: "root"})
	if code != 0 {
		t.Fatalf("exit %d, output %q", code, out.String())
	}
	got := strings.ReplaceAll(out.String(), f.path, "/etc/mail/aliases")
	want := strings.Join(refBody(t, "04-newaliases.txt"), "\n") + "\n"
	if got != want {
		t.Errorf("output %q, want %q", got, want)
	}
	if warn.Len() != 0 {
		t.Errorf("unexpected warnings %q", warn.String())
	}
	for _, l := range []string{"alias database " + f.path + " rebuilt by root", f.path + ": 13 aliases, longest 75 bytes, 373 bytes total"} {
		if !strings.Contains(log.String(), l) {
			t.Errorf("log lacks %q:\n%s", l, log.String())
		}
	}
	// The stored pairs are those of 04-aliases-db-dump.txt (modulo the
	// include path moved under the test root).
	got = dumpDB(t, DBPath(f.path))
	var dump []string
	for _, l := range refBody(t, "04-aliases-db-dump.txt") {
		dump = append(dump, strings.ReplaceAll(strings.TrimSuffix(l, "$"), "^I", "\t"))
	}
	want = sortedLines(dump)
	if got != want {
		t.Errorf("db dump:\n%s\nwant:\n%s", got, want)
	}
}

// TestNewaliasesErrors replays 04-newaliases-errors.txt: messages, exit 70,
// and what was stored anyway.
func TestNewaliasesErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad-aliases")
	data, err := os.ReadFile("testdata/ref/bad-aliases")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, path, string(data), 0o644)
	var out, warn, log bytes.Buffer
	code := Newaliases(&out, path, BuildOptions{IsLocal: refLocal, Warnings: &warn,
		Logger: maillog.New(&log, "sendmail"), RunUser: "root"})
	if code != 70 {
		t.Errorf("exit %d, want 70", code)
	}
	ref := refBody(t, "04-newaliases-errors.txt")
	var wantOut, wantDump []string
	section := 0
	for _, l := range ref {
		switch {
		case l == "-----":
			section = 1
		case l == "----- db dump":
			section = 2
		case section == 1 && !strings.HasPrefix(l, "exit="):
			wantOut = append(wantOut, l)
		case section == 2 && !strings.HasPrefix(l, "WARNING:"):
			wantDump = append(wantDump, l)
		}
	}
	got := strings.ReplaceAll(out.String(), path, "/tmp/bad-aliases")
	if want := strings.Join(wantOut, "\n") + "\n"; got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	if got, want := dumpDB(t, path+".db"), sortedLines(wantDump); got != want {
		t.Errorf("db dump:\n%s\nwant:\n%s", got, want)
	}
	if want := "no alias for postmaster"; !strings.Contains(warn.String(), want) {
		t.Errorf("warnings %q lack %q", warn.String(), want)
	}
	for _, l := range []string{"NOQUEUE: SYSERR(root): " + path + ": line 3: missing colon",
		"NOQUEUE: SYSERR(root): " + path + ": line 10: user@domain... cannot alias non-local names"} {
		if !strings.Contains(log.String(), l) {
			t.Errorf("log lacks %q:\n%s", l, log.String())
		}
	}
	if strings.Contains(log.String(), "duplicate") {
		t.Errorf("a duplicate is not a SYSERR:\n%s", log.String())
	}
}

func TestNewaliasesMissingFile(t *testing.T) {
	var out bytes.Buffer
	path := filepath.Join(t.TempDir(), "nonexistent")
	if code := Newaliases(&out, path, BuildOptions{}); code != 70 {
		t.Errorf("exit %d", code)
	}
	if want := "Cannot open " + path + ": No such file or directory\n"; out.String() != want {
		t.Errorf("got %q want %q", out.String(), want)
	}
}

func dumpDB(t *testing.T, path string) string {
	t.Helper()
	db, err := bolt.Open(path, 0, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var lines []string
	db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAliases).ForEach(func(k, v []byte) error {
			lines = append(lines, string(k)+"\t"+string(v))
			return nil
		})
	})
	return sortedLines(lines)
}

func sortedLines(l []string) string {
	l = append([]string(nil), l...)
	sort.Strings(l)
	return strings.Join(l, "\n") + "\n"
}

// TestDBReopen: a reader kept open sees a rebuilt database at once, and the
// replaced file is never seen half-written.
func TestDBReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "aliases.db")
	if _, err := WriteDB(path, []Entry{{Name: "a", Value: "one"}}, nil); err != nil {
		t.Fatal(err)
	}
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, ok, err := db.Lookup("A"); err != nil || !ok || v != "one" {
		t.Fatalf("lookup: %q %v %v", v, ok, err)
	}
	if _, err := WriteDB(path, []Entry{{Name: "a", Value: "two"}, {Name: "b", Value: "x"}}, nil); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := db.Lookup("a"); err != nil || !ok || v != "two" {
		t.Fatalf("after rebuild: %q %v %v", v, ok, err)
	}
	if _, ok, _ := db.Lookup("nope"); ok {
		t.Error("found a missing key")
	}
	// With a check interval, the new file is picked up only when due.
	db.CheckInterval = time.Hour
	clock := time.Now()
	db.now = func() time.Time { return clock }
	db.Lookup("a")
	if _, err := WriteDB(path, []Entry{{Name: "a", Value: "three"}}, nil); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := db.Lookup("a"); v != "two" {
		t.Errorf("reopened before the interval: %q", v)
	}
	clock = clock.Add(2 * time.Hour)
	if v, _, _ := db.Lookup("a"); v != "three" {
		t.Errorf("not reopened after the interval: %q", v)
	}
	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d files", len(ents))
	}
}

// TestSource: text fallback without a database, the database when present,
// and the out-of-date handling (warn, or rebuild with AutoRebuild).
func TestSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "aliases")
	mustWrite(t, path, "postmaster: root\nlist: a, b\n", 0o644)
	var log bytes.Buffer
	s := NewSource(SourceOptions{AliasFile: path, Logger: maillog.New(&log, "sm-mta")})
	defer s.Close()
	if v, ok, err := s.Lookup("LIST"); err != nil || !ok || v != "a, b" {
		t.Fatalf("text fallback: %q %v %v", v, ok, err)
	}
	// The text file changes: the fallback re-reads it.
	mustWrite(t, path, "postmaster: root\nlist: c\nmailer-daemon: postmaster\n", 0o644)
	touch(t, path, time.Now().Add(time.Second))
	if v, _, _ := s.Lookup("list"); v != "c" {
		t.Errorf("text not re-read: %q", v)
	}
	if code := Newaliases(&bytes.Buffer{}, path, BuildOptions{}); code != 0 {
		t.Fatal(code)
	}
	if v, _, _ := s.Lookup("list"); v != "c" {
		t.Errorf("from db: %q", v)
	}
	// Edited after the build: the old database answers, with one warning.
	mustWrite(t, path, "postmaster: root\nlist: d\nmailer-daemon: postmaster\n", 0o644)
	touch(t, path, time.Now().Add(2*time.Second))
	s.Lookup("list")
	if v, _, _ := s.Lookup("list"); v != "c" {
		t.Errorf("stale db: %q", v)
	}
	if n := strings.Count(log.String(), "alias database "+path+".db out of date"); n != 1 {
		t.Errorf("%d out-of-date warnings:\n%s", n, log.String())
	}
	// AutoRebuild rebuilds it instead.
	s2 := NewSource(SourceOptions{AliasFile: path, AutoRebuild: true})
	defer s2.Close()
	if v, _, _ := s2.Lookup("list"); v != "d" {
		t.Errorf("auto rebuild: %q", v)
	}
	// A missing aliases file is no error: no aliases.
	s3 := NewSource(SourceOptions{AliasFile: filepath.Join(dir, "none")})
	if _, ok, err := s3.Lookup("x"); ok || err != nil {
		t.Errorf("missing file: %v %v", ok, err)
	}
}

func touch(t *testing.T, path string, tm time.Time) {
	t.Helper()
	if err := os.Chtimes(path, tm, tm); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDBLookup measures one alias lookup in a 10,000-entry database
// through the reader a daemon keeps (stat for a rebuilt file included).
func BenchmarkDBLookup(b *testing.B) {
	for _, interval := range []time.Duration{0, time.Second} {
		b.Run(fmt.Sprintf("check=%v", interval), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "aliases.db")
			var entries []Entry
			for i := range 10000 {
				entries = append(entries, Entry{Name: fmt.Sprintf("user%d", i), Value: fmt.Sprintf("u%d@example.org, other%d", i, i)})
			}
			if _, err := WriteDB(path, entries, nil); err != nil {
				b.Fatal(err)
			}
			db, err := OpenDB(path)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.CheckInterval = interval
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, ok, err := db.Lookup(entries[i%len(entries)].Name); !ok || err != nil {
					b.Fatal("lookup failed")
				}
			}
		})
	}
}

// BenchmarkNewaliases measures a rebuild of 10,000 aliases (parse, write,
// fsync, rename).
func BenchmarkNewaliases(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "aliases")
	var sb strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&sb, "user%d: u%d@example.org, other%d\n", i, i, i)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if code := Newaliases(&bytes.Buffer{}, path, BuildOptions{}); code != 0 {
			b.Fatal(code)
		}
	}
}

func TestDBClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aliases.db")
	if _, err := WriteDB(path, []Entry{{Name: "a", Value: "b"}}, nil); err != nil {
		t.Fatal(err)
	}
	db, err := OpenDB(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, _, err := db.Lookup("a"); err == nil {
		t.Error("lookup on a closed database succeeded")
	}
	// Not a database at all: an error, not a panic.
	bad := filepath.Join(t.TempDir(), "bad.db")
	mustWrite(t, bad, "not bbolt", 0o644)
	if _, err := OpenDB(bad); err == nil {
		t.Error("opened a non-database")
	}
}

// TestSourceUsableAfterClose: the daemon closes an old configuration's
// Source while sessions may still use it; lookups keep working, follow a
// rebuild, and leave no database open.
func TestSourceUsableAfterClose(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "aliases")
	mustWrite(t, path, "staff: root\n", 0o644)
	if code := Newaliases(&bytes.Buffer{}, path, BuildOptions{}); code != 0 {
		t.Fatal(code)
	}
	s := NewSource(SourceOptions{AliasFile: path, CheckInterval: time.Hour})
	if v, ok, err := s.Lookup("staff"); err != nil || !ok || v != "root" {
		t.Fatalf("before Close: %q %v %v", v, ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if v, ok, err := s.Lookup("staff"); err != nil || !ok || v != "root" {
			t.Fatalf("after Close: %q %v %v", v, ok, err)
		}
		if s.db != nil {
			t.Fatal("a closed Source kept the database open")
		}
	}
	mustWrite(t, path, "staff: alice\n", 0o644)
	touch(t, path, time.Now().Add(time.Second))
	if code := Newaliases(&bytes.Buffer{}, path, BuildOptions{}); code != 0 {
		t.Fatal(code)
	}
	if v, _, _ := s.Lookup("staff"); v != "alice" {
		t.Errorf("after a rebuild: %q", v)
	}
	// Closing concurrently with lookups: none of them fails.
	s2 := NewSource(SourceOptions{AliasFile: path})
	errs := make(chan error, 50)
	for range 50 {
		go func() { _, _, err := s2.Lookup("staff"); errs <- err }()
	}
	s2.Close()
	for range 50 {
		if err := <-errs; err != nil {
			t.Errorf("lookup during Close: %v", err)
		}
	}
}
