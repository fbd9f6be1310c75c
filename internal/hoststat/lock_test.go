package hoststat

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Lock is exclusive between tables (processes: flock works per open
// file, so two tables in one process exclude each other as two processes
// do) and within one; unlock lets the next in.
func TestLockExclusive(t *testing.T) {
	dir := t.TempDir()
	a, b := Open(dir, time.Hour, nil), Open(dir, time.Hour, nil)
	unlock, err := a.Lock("MX.Remote.Example.")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "example.", "remote.", "mx")); err != nil {
		t.Errorf("lock file not made: %v", err)
	}
	if _, err := a.Lock("mx.remote.example"); !errors.Is(err, ErrLocked) {
		t.Errorf("second lock in the same table: %v", err)
	}
	if _, err := b.Lock("mx.remote.example"); !errors.Is(err, ErrLocked) {
		t.Errorf("lock from another table: %v", err)
	}
	if !locked(filepath.Join(dir, "example.", "remote.", "mx")) {
		t.Error("hoststat's check does not see the lock")
	}
	unlock()
	unlockB, err := b.Lock("mx.remote.example")
	if err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlockB()
	// Without a directory there is nothing to lock.
	mem := Open("", time.Hour, nil)
	u1, err1 := mem.Lock("mx.remote.example")
	u2, err2 := mem.Lock("mx.remote.example")
	if err1 != nil || err2 != nil {
		t.Errorf("memory-only table: %v %v", err1, err2)
	}
	u1()
	u2()
}

// While a host is locked, its status is written in place, through the
// locked file: the file others open keeps the lock. Another table's
// Record leaves a file it cannot lock alone.
func TestRecordUnderLock(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1795581153, 0)
	clock := func() time.Time { return now }
	a, b := Open(dir, time.Hour, clock), Open(dir, time.Hour, clock)
	path := filepath.Join(dir, "example.", "remote.", "mx")
	unlock, err := a.Lock("mx.remote.example")
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(path)
	if err := a.Record(Status{Host: "mx.remote.example", Errno: 111, Exit: 75, DSN: "4.4.1"}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) {
		t.Error("status file replaced while locked")
	}
	if _, err := b.Lock("mx.remote.example"); !errors.Is(err, ErrLocked) {
		t.Errorf("lock lost by the write: %v", err)
	}
	if s, ok := b.Lookup("mx.remote.example"); !ok || s.Errno != 111 || !s.Down() {
		t.Errorf("other table reads %+v %v", s, ok)
	}
	if _, err := b.Lock("other.example"); err != nil { // b writes under locks from now on
		t.Fatal(err)
	}
	if err := b.Record(Status{Host: "mx.remote.example", Exit: 0, DSN: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(path); string(data) != string(Format(Status{Errno: 111, Exit: 75, DSN: "4.4.1", Updated: now})) {
		t.Errorf("file written by a table without the lock:\n%s", data)
	}
	unlock()
	if err := b.Record(Status{Host: "mx.remote.example", Exit: 0, DSN: "2.0.0"}); err != nil {
		t.Fatal(err)
	}
	if s, ok := a.Lookup("mx.remote.example"); !ok || s.Down() || s.DSN != "2.0.0" {
		t.Errorf("after unlock: %+v %v", s, ok)
	}
}

// purgestat leaves the file of a host with an open connection alone,
// however old it is.
func TestPurgeKeepsLocked(t *testing.T) {
	dir := t.TempDir()
	tab := Open(dir, time.Second, nil)
	unlock, err := tab.Lock("mx.remote.example")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	path := filepath.Join(dir, "example.", "remote.", "mx")
	now := time.Unix(1795581153, 0)
	old := now.Add(-time.Hour)
	os.Chtimes(path, old, old)
	if err := Open(dir, time.Second, func() time.Time { return now }).Purge(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("locked file purged: %v", err)
	}
}
