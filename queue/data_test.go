package queue

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// A df reader handed out for a job reads nothing once the job is removed,
// even though the next job's files reuse its inode (the spare pool).
func TestRemovedJobDataNotRead(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	old := bytes.Repeat([]byte("A"), 100<<10)
	a := sampleJob("<a@x.example>")
	if err := s.Enqueue(a, bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	l, err := s.Lock(dir, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	ino := inodeOf(t, l.dataPath())
	d, err := l.OpenData()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := d.ReadAt(buf, 0); err != nil || string(buf) != "AAAAAAAAAA" {
		t.Fatalf("read before removal: %q %v", buf, err)
	}
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
	b := sampleJob("<b@x.example>")
	if err := s.Enqueue(b, bytes.NewReader(bytes.Repeat([]byte("B"), 100<<10))); err != nil {
		t.Fatal(err)
	}
	// The pool hands the inode out again, as the next job's qf or df.
	if q, df := inodeOf(t, dir+"/qf"+b.ID), inodeOf(t, dir+"/df"+b.ID); q != ino && df != ino {
		t.Fatalf("the new job's files are inodes %d and %d, not the removed df's %d: reuse not exercised", q, df, ino)
	}
	n, err := d.ReadAt(buf, 0)
	if !errors.Is(err, os.ErrClosed) || n != 0 {
		t.Errorf("read after removal: %d bytes %q, err %v; want os.ErrClosed", n, buf[:n], err)
	}
	if _, err := io.ReadAll(d.Reader()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("reader after removal: %v", err)
	}
}

// Readers in other goroutines (a mailer's) race with the removal and with
// new jobs taking the removed df from the pool: every byte read is the old
// job's, and the old job's df is never written while a read is in
// progress.
func TestDataReadsRaceRemoval(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	for round := 0; round < 30; round++ {
		a := sampleJob("<a@x.example>")
		if err := s.Enqueue(a, strings.NewReader(strings.Repeat("A", 64<<10))); err != nil {
			t.Fatal(err)
		}
		l, err := s.Lock(dir, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.OpenData()
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var bad sync.Once
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for off := int64(0); ; off = (off + 4096) % (64 << 10) {
					n, err := d.ReadAt(buf, off)
					for _, c := range buf[:n] {
						if c != 'A' {
							bad.Do(func() { t.Errorf("round %d: read %q of another job", round, c) })
							return
						}
					}
					if errors.Is(err, os.ErrClosed) {
						return
					}
					if err != nil && err != io.EOF {
						t.Error(err)
						return
					}
				}
			}()
		}
		if err := l.Remove(); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 3; k++ {
			b := sampleJob("<b@x.example>")
			if err := s.Enqueue(b, strings.NewReader(strings.Repeat("B", 64<<10))); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
	}
}

// Unlock and Lose close the readers too: after either, another process may
// remove the job and reuse its files.
func TestDataClosedOnRelease(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	for _, release := range []func(*Locked) error{(*Locked).Unlock, func(l *Locked) error { return l.Lose("test") }} {
		j := sampleJob("<a@x.example>")
		if err := s.Enqueue(j, strings.NewReader("body\n")); err != nil {
			t.Fatal(err)
		}
		l, err := s.Lock(dir, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		d, err := l.OpenData()
		if err != nil {
			t.Fatal(err)
		}
		if body, err := io.ReadAll(d.Reader()); err != nil || string(body) != "body\n" || d.Size() != 5 {
			t.Fatalf("body %q size %d: %v", body, d.Size(), err)
		}
		release(l)
		if _, err := d.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
			t.Errorf("read after release: %v", err)
		}
		if _, err := l.OpenData(); !errors.Is(err, ErrClosed) {
			t.Errorf("OpenData after release: %v", err)
		}
	}
}

// Detach keeps the job locked in the returned file; Adopt takes it over
// from that file (as a child process inheriting it does) without a scan,
// and refuses a file that is not the job's qf.
func TestDetachAdopt(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Write([]byte("body\n"))
	l, err := tx.CommitLocked(sampleJob("<a@x.example>"))
	if err != nil {
		t.Fatal(err)
	}
	id := l.ID()
	d, _ := l.OpenData()
	f, err := l.Detach()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(make([]byte, 1), 0); !errors.Is(err, os.ErrClosed) {
		t.Errorf("data readable after Detach: %v", err)
	}
	if _, err := s.Lock(dir, id); !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock while detached: %v", err)
	}
	other, _ := os.Open(filepath.Join(dir, "df"+id))
	if _, err := s.Adopt(dir, id, other); err == nil {
		t.Error("Adopt took a file that is not the qf")
	}
	a, err := s.Adopt(dir, id, f)
	if err != nil {
		t.Fatal(err)
	}
	if a.Job().Sender != "<alice@refhost.example.org>" || len(a.Job().Recipients) != 1 {
		t.Errorf("adopted job %+v", a.Job())
	}
	if err := a.Remove(); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(dir, "qf"+id)) {
		t.Error("adopted job not removed")
	}
}
