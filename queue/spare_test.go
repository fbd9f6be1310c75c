package queue

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func inode(t testing.TB, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// spares lists the pool of dir: inode-number names, each checked to be a
// regular file of at most keepSpare bytes.
func spares(t testing.TB, dir string) map[uint64]bool {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, spareDir))
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint64]bool{}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if e.Name() != strconv.FormatUint(ino, 10) || fi.Size() > keepSpare || !fi.Mode().IsRegular() {
			t.Errorf("spare %s: inode %d, %d bytes, mode %v", e.Name(), ino, fi.Size(), fi.Mode())
		}
		m[ino] = true
	}
	return m
}

func enqueue(t testing.TB, s *Store, body string) *Job {
	t.Helper()
	j := sampleJob("<a@x.example>")
	if err := s.Enqueue(j, strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	return j
}

func remove(t testing.TB, s *Store, dir, id string) {
	t.Helper()
	l, err := s.Lock(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(); err != nil {
		t.Fatal(err)
	}
}

func TestRemovedJobFilesAreReused(t *testing.T) {
	for _, layout := range []string{"flat", "subdirs"} {
		t.Run(layout, func(t *testing.T) {
			dir := copyQueue(t, "")
			qdir, ddir := dir, dir
			if layout == "subdirs" {
				qdir, ddir = filepath.Join(dir, "qf"), filepath.Join(dir, "df")
				os.Mkdir(qdir, 0o700)
				os.Mkdir(ddir, 0o700)
			}
			for _, mode := range []SyncMode{SyncBatch, SyncFiles, SyncEach} {
				s, err := Open(Options{Dirs: []string{dir}, Sync: mode, Mode: 0o600})
				if err != nil {
					t.Fatal(err)
				}
				j := enqueue(t, s, "first\n")
				qf, df := inode(t, filepath.Join(qdir, "qf"+j.ID)), inode(t, filepath.Join(ddir, "df"+j.ID))
				remove(t, s, dir, j.ID)
				if exists(filepath.Join(qdir, "qf"+j.ID)) || exists(filepath.Join(ddir, "df"+j.ID)) {
					t.Fatal("job files still there")
				}
				if layout == "flat" {
					if got := spares(t, dir); len(got) != 2 || !got[qf] || !got[df] {
						t.Errorf("%v: spares %v, want %d and %d", mode, got, qf, df)
					}
				} else if q, d := spares(t, qdir), spares(t, ddir); len(q) != 1 || !q[qf] || len(d) != 1 || !d[df] {
					t.Errorf("%v: spares %v %v, want %d and %d", mode, q, d, qf, df)
				}
				k := enqueue(t, s, "second\n")
				qf2, df2 := inode(t, filepath.Join(qdir, "qf"+k.ID)), inode(t, filepath.Join(ddir, "df"+k.ID))
				if got := map[uint64]bool{qf2: true, df2: true}; !got[qf] || !got[df] {
					t.Errorf("%v: new job has inodes %d %d, want %d %d", mode, qf2, df2, qf, df)
				}
				if data, _ := os.ReadFile(filepath.Join(ddir, "df"+k.ID)); string(data) != "second\n" {
					t.Errorf("df %q", data)
				}
				l, err := s.Lock(dir, k.ID)
				if err != nil || l.Job().Recipients[0].Addr != "<a@x.example>" {
					t.Fatalf("reused qf: %v", err)
				}
				l.Unlock()
				remove(t, s, dir, k.ID)
				s.Close()
			}
		})
	}
}

// A rewrite takes its tf from the pool too, and the job keeps its lock.
func TestRewriteTakesSpare(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	a, b := enqueue(t, s, "a\n"), enqueue(t, s, "b\n")
	remove(t, s, dir, a.ID)
	l, err := s.Lock(dir, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	before := spares(t, dir)
	j := l.Job()
	j.Attempts = 1
	if err := l.Rewrite(j); err != nil {
		t.Fatal(err)
	}
	if !before[inode(t, filepath.Join(dir, "qf"+b.ID))] {
		t.Error("rewritten qf is not a former spare")
	}
	if _, err := s.Lock(dir, b.ID); !errors.Is(err, ErrLocked) {
		t.Errorf("lock after rewrite: %v", err)
	}
	l.Unlock()
}

func TestSparePoolBound(t *testing.T) {
	dir := copyQueue(t, "")
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Mode: 0o600, MaxSpares: 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 5; i++ {
		ids = append(ids, enqueue(t, s, "x\n").ID)
	}
	for _, id := range ids {
		remove(t, s, dir, id)
	}
	if got := spares(t, dir); len(got) != 3 {
		t.Errorf("%d spares, want 3", len(got))
	}
	if names, _ := os.ReadDir(dir); len(names) != 1 {
		t.Errorf("left: %v", names)
	}
	s.Close()
	// A pool found over its bound (another process, a smaller setting) is
	// trimmed by Open.
	s2, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Mode: 0o600, MaxSpares: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := spares(t, dir); len(got) != 2 || s2.dirs[0].qfPool.len() != 2 {
		t.Errorf("%d spares after reopen, want 2", len(got))
	}
	// No pool: files are unlinked, nothing is kept.
	s3, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Mode: 0o600, MaxSpares: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s3.Close()
	j := enqueue(t, s3, "y\n")
	if spares(t, dir)[inode(t, filepath.Join(dir, "qf"+j.ID))] {
		t.Error("MaxSpares -1 took a spare")
	}
	remove(t, s3, dir, j.ID)
	if len(spares(t, dir)) != 2 {
		t.Error("MaxSpares -1 kept a spare")
	}
}

// fillPool leaves n empty spares in dir's pool.
func fillPool(t testing.TB, dir string, n int) {
	t.Helper()
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < (n+1)/2; i++ {
		ids = append(ids, enqueue(t, s, "filler\n").ID)
	}
	for _, id := range ids {
		remove(t, s, dir, id)
	}
	s.Close()
}

// checkJobs verifies that every job is complete, its qf and df hold what
// was written, and no two files share an inode.
func checkJobs(t *testing.T, dir string, bodies map[string]string) {
	t.Helper()
	seen := map[uint64]string{}
	for id, body := range bodies {
		for _, name := range []string{"qf" + id, "df" + id} {
			p := filepath.Join(dir, name)
			ino := inode(t, p)
			if other, dup := seen[ino]; dup {
				t.Errorf("%s and %s share inode %d", name, other, ino)
			}
			seen[ino] = name
		}
		if data, err := os.ReadFile(filepath.Join(dir, "df"+id)); err != nil || string(data) != body {
			t.Errorf("df%s = %q (%v), want %q", id, data, err, body)
		}
		data, err := os.ReadFile(filepath.Join(dir, "qf"+id))
		if err != nil {
			t.Fatal(err)
		}
		if j, err := Parse(id, data); err != nil || j.ID != id {
			t.Errorf("qf%s: %v", id, err)
		}
	}
	for ino := range spares(t, dir) {
		if name, dup := seen[ino]; dup {
			t.Errorf("spare %d is also %s", ino, name)
		}
	}
}

// Two processes' stores on one directory, both knowing the same spares,
// take them concurrently: no file is ever handed to two jobs.
func TestSpareRaceTwoStores(t *testing.T) {
	dir := copyQueue(t, "")
	fillPool(t, dir, 60)
	var stores []*Store
	for pid := 1; pid <= 2; pid++ {
		s, err := Open(Options{Dirs: []string{dir}, Sync: SyncBatch, Mode: 0o600, Pid: 4000 + pid})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if n := s.dirs[0].qfPool.len(); n != 60 {
			t.Fatalf("store %d knows %d spares, want 60", pid, n)
		}
		stores = append(stores, s)
	}
	var mu sync.Mutex
	bodies := map[string]string{}
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			s := stores[w%2]
			for i := 0; i < 5; i++ {
				body := fmt.Sprintf("writer %d message %d\n%s", w, i, strings.Repeat("x", w*100+i))
				j := sampleJob("<a@x.example>")
				if err := s.Enqueue(j, strings.NewReader(body)); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				bodies[j.ID] = body
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if len(bodies) != 100 {
		t.Fatalf("%d jobs", len(bodies))
	}
	checkJobs(t, dir, bodies)
}

// 200 concurrent enqueues on one store whose pool has fewer spares than
// jobs, while other jobs are being removed into the pool: all distinct.
func TestConcurrentEnqueueWithSpares(t *testing.T) {
	dir := copyQueue(t, "")
	fillPool(t, dir, 100)
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncFiles, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	bodies := map[string]string{}
	var wg sync.WaitGroup
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				body := fmt.Sprintf("%d/%d\n", w, i)
				j := sampleJob("<a@x.example>")
				if err := s.Enqueue(j, strings.NewReader(body)); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 2 { // a finished job feeds the pool meanwhile
					l, err := s.Lock(dir, j.ID)
					if err != nil {
						t.Error(err)
						return
					}
					l.Remove()
					continue
				}
				mu.Lock()
				bodies[j.ID] = body
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	checkJobs(t, dir, bodies)
	x, lost, err := s.LoadIndex()
	if err != nil || len(lost) != 0 || indexLen(x) != len(bodies) {
		t.Errorf("index: %d jobs, want %d (%v %v)", indexLen(x), len(bodies), lost, err)
	}
}

func TestSpareCrashLeftovers(t *testing.T) {
	dir := copyQueue(t, "one")
	fillPool(t, dir, 4)
	pool := filepath.Join(dir, spareDir)
	var names []string
	for ino := range spares(t, dir) {
		names = append(names, strconv.FormatUint(ino, 10))
	}
	sort.Strings(names)
	// 1. A crash between moving a job's file into the pool and emptying it.
	os.WriteFile(filepath.Join(pool, names[0]), []byte("old body of a finished job\n"), 0o600)
	// 2. A crash between "spare -> tf" and the commit: an unlocked tf, and
	// its df, taken from the pool.
	os.Rename(filepath.Join(pool, names[1]), filepath.Join(dir, "tfCRASH0000001"))
	os.Rename(filepath.Join(pool, names[2]), filepath.Join(dir, "dfCRASH0000001"))
	os.WriteFile(filepath.Join(dir, "tfCRASH0000001"), []byte("V8\nT1\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "dfCRASH0000001"), []byte("half a body"), 0o600)
	// 3. fsck after a crash joined a spare and a live qf into hard links.
	qf := filepath.Join(dir, "qf6AP4T98X005913")
	os.Remove(filepath.Join(pool, names[3]))
	link := strconv.FormatUint(inode(t, qf), 10)
	if err := os.Link(qf, filepath.Join(pool, link)); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(qf)

	s := openTest(t, dir)
	if exists(filepath.Join(dir, "tfCRASH0000001")) || exists(filepath.Join(dir, "dfCRASH0000001")) {
		t.Error("crash leftovers not cleaned up")
	}
	for _, n := range names[1:3] { // recycled by Open
		if _, err := os.Stat(filepath.Join(pool, n)); err != nil {
			t.Errorf("leftover %s not recycled: %v", n, err)
		}
	}
	// Take every spare: none of the old contents shows in the new jobs,
	// the hard link is skipped and the job it shares an inode with is
	// untouched.
	var txs []*Txn
	for i := 0; i < 3; i++ {
		tx, err := s.Begin()
		if err != nil {
			t.Fatal(err)
		}
		tx.Write([]byte("new\n"))
		txs = append(txs, tx)
	}
	for _, tx := range txs {
		j := sampleJob("<a@x.example>")
		if err := tx.Commit(j); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "df"+j.ID)); string(data) != "new\n" {
			t.Errorf("df%s = %q", j.ID, data)
		}
		if l, err := s.Lock(dir, j.ID); err != nil {
			t.Errorf("qf%s: %v", j.ID, err)
		} else {
			l.Unlock()
		}
		if inode(t, filepath.Join(dir, "qf"+j.ID)) == inode(t, qf) || inode(t, filepath.Join(dir, "df"+j.ID)) == inode(t, qf) {
			t.Error("a job got the hard-linked spare")
		}
	}
	if got, _ := os.ReadFile(qf); !bytes.Equal(got, want) {
		t.Errorf("qf sharing an inode with a spare was changed:\n%s", got)
	}
	if exists(filepath.Join(pool, link)) {
		t.Error("hard-linked spare still in the pool")
	}
	var st unix.Stat_t
	if unix.Stat(qf, &st) != nil || st.Nlink != 1 {
		t.Errorf("qf has %d links", st.Nlink)
	}
}

// A spare never replaces an existing name: BeginID with an ID whose tf
// exists fails, and the spare stays in the pool.
func TestSpareNoReplace(t *testing.T) {
	dir := copyQueue(t, "")
	fillPool(t, dir, 2)
	s := openTest(t, dir)
	busy := filepath.Join(dir, "tfBUSY00000001")
	os.WriteFile(busy, []byte("someone's\n"), 0o600)
	if _, err := s.BeginID("BUSY00000001"); !errors.Is(err, os.ErrExist) {
		t.Errorf("BeginID over an existing tf: %v", err)
	}
	if data, _ := os.ReadFile(busy); string(data) != "someone's\n" {
		t.Errorf("existing tf changed: %q", data)
	}
	if n := s.dirs[0].qfPool.len(); n != 2 {
		t.Errorf("pool has %d spares, want 2", n)
	}
	// A df left by a crash under the new ID is overwritten as before.
	os.WriteFile(filepath.Join(dir, "dfLEFT00000001"), []byte("stale\n"), 0o600)
	tx, err := s.BeginID("LEFT00000001")
	if err != nil {
		t.Fatal(err)
	}
	tx.Write([]byte("fresh\n"))
	if err := tx.Commit(sampleJob("<a@x.example>")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "dfLEFT00000001")); string(data) != "fresh\n" {
		t.Errorf("df %q", data)
	}
}

// Spares keep the mode they had; a store configured with another mode
// fixes it when it takes one.
func TestSpareModeFixed(t *testing.T) {
	dir := copyQueue(t, "")
	fillPool(t, dir, 2) // mode 0600
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j := enqueue(t, s, "m\n")
	for _, n := range []string{"qf", "df"} {
		fi, err := os.Stat(filepath.Join(dir, n+j.ID))
		if err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("%s mode %v %v", n, fi.Mode(), err)
		}
	}
	if len(spares(t, dir)) != 0 {
		t.Error("spares not taken")
	}
}

// mailq, the index and a read-only store never see the pool.
func TestSparesInvisible(t *testing.T) {
	for _, tc := range []struct{ set, golden string }{{"one", "one.txt"}, {"several", "several-v.txt"}, {"", "empty.txt"}} {
		dir := copyQueue(t, tc.set)
		fillPool(t, dir, 6)
		// A spare that still has a job's content (a crash before emptying).
		for ino := range spares(t, dir) {
			os.WriteFile(filepath.Join(dir, spareDir, strconv.FormatUint(ino, 10)), []byte("V8\nT1\nP1\nSx\nR:y\n.\n"), 0o600)
			break
		}
		ro, err := Open(Options{Dirs: []string{dir}, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		got := listing(t, ro, ListOptions{Verbose: strings.HasSuffix(tc.golden, "-v.txt")}, map[string]string{dir: "/var/spool/mqueue"})
		if want := golden(t, tc.golden); got != want {
			t.Errorf("%s:\n got:\n%s\nwant:\n%s", tc.set, got, want)
		}
		ro.Close()
		s := openTest(t, dir)
		x, lost, err := s.LoadIndex()
		qfs, _ := filepath.Glob(filepath.Join(dir, "qf*"))
		if err != nil || len(lost) != 0 || indexLen(x) != len(qfs) {
			t.Errorf("%s: index has %d jobs, %d qf files (%v %v)", tc.set, indexLen(x), len(qfs), lost, err)
		}
		if _, err := s.Lock(dir, spareDir); !errors.Is(err, ErrNotFound) {
			t.Errorf("lock of the pool: %v", err)
		}
	}
	// A read-only store makes no pool.
	dir := copyQueue(t, "one")
	ro, err := Open(Options{Dirs: []string{dir}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ro.Close()
	if exists(filepath.Join(dir, spareDir)) {
		t.Error("read-only Open made a pool")
	}
}

// An empty pool looks on disk again, at most every rescanEvery, for the
// spares another process (a queue run from cron) put there.
func TestSpareRescan(t *testing.T) {
	dir := copyQueue(t, "")
	var mu sync.Mutex
	now := time.Unix(1795580949, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	a, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Mode: 0o600, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b := openTest(t, dir)
	j := enqueue(t, b, "from b\n")
	remove(t, b, dir, j.ID)
	had := spares(t, dir)
	k := enqueue(t, a, "too early\n")
	if had[inode(t, filepath.Join(dir, "qf"+k.ID))] || len(spares(t, dir)) != 2 {
		t.Error("pool read again before rescanEvery")
	}
	mu.Lock()
	now = now.Add(rescanEvery)
	mu.Unlock()
	k = enqueue(t, a, "now\n")
	if !had[inode(t, filepath.Join(dir, "qf"+k.ID))] || len(spares(t, dir)) != 0 {
		t.Error("spares of another process not found")
	}
}

// Only our own files are reused: another user's spare stays in the pool.
func TestSpareOfAnotherUserSkipped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	dir := copyQueue(t, "")
	fillPool(t, dir, 2)
	var theirs string
	for ino := range spares(t, dir) {
		theirs = strconv.FormatUint(ino, 10)
		if err := os.Chown(filepath.Join(dir, spareDir, theirs), 4242, -1); err != nil {
			t.Fatal(err)
		}
		break
	}
	s := openTest(t, dir)
	for i := 0; i < 2; i++ {
		j := enqueue(t, s, "x\n")
		for _, n := range []string{"qf", "df"} {
			var st unix.Stat_t
			if unix.Stat(filepath.Join(dir, n+j.ID), &st) != nil || st.Uid != 0 {
				t.Errorf("%s%s owned by %d", n, j.ID, st.Uid)
			}
		}
	}
	if !exists(filepath.Join(dir, spareDir, theirs)) {
		t.Error("another user's spare was taken")
	}
}

// A df with another link (an admin's copy) is unlinked, never emptied.
func TestRemoveKeepsLinkedDataIntact(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	j := enqueue(t, s, "keep me\n")
	copyPath := filepath.Join(t.TempDir(), "saved")
	if err := os.Link(filepath.Join(dir, "df"+j.ID), copyPath); err != nil {
		t.Skip(err) // TempDir on another file system
	}
	remove(t, s, dir, j.ID)
	if data, _ := os.ReadFile(copyPath); string(data) != "keep me\n" {
		t.Errorf("linked copy now %q", data)
	}
	if got := spares(t, dir); len(got) != 1 {
		t.Errorf("%d spares, want 1 (the qf)", len(got))
	}
}

// A small job's files go to the pool with their contents, to be
// overwritten by the next job and cut to its length; a big one's are
// emptied on the way in, so that the pool holds little disk space.
func TestSpareContentsReusedOrEmptied(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	small := sampleJob("<a@x.example>", "<another@x.example>", "<and-a-third-recipient@x.example>")
	if err := s.Enqueue(small, strings.NewReader(strings.Repeat("a fairly long line of the first body\n", 100))); err != nil {
		t.Fatal(err)
	}
	big := enqueue(t, s, strings.Repeat("x", keepSpare+1))
	dfSmall, dfBig := inode(t, filepath.Join(dir, "df"+small.ID)), inode(t, filepath.Join(dir, "df"+big.ID))
	remove(t, s, dir, small.ID)
	remove(t, s, dir, big.ID)
	sizes := map[uint64]int64{}
	entries, _ := os.ReadDir(filepath.Join(dir, spareDir))
	for _, e := range entries {
		fi, _ := e.Info()
		sizes[fi.Sys().(*syscall.Stat_t).Ino] = fi.Size()
	}
	if sizes[dfSmall] != 3700 || sizes[dfBig] != 0 {
		t.Errorf("spare sizes: small df %d (want its 3700 bytes kept), big df %d (want 0)", sizes[dfSmall], sizes[dfBig])
	}
	// The next jobs get shorter bodies and qf files than the old ones.
	for i := range 4 {
		j := sampleJob("<b@x.example>")
		if err := s.Enqueue(j, strings.NewReader("short\n")); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "df"+j.ID)); string(data) != "short\n" {
			t.Errorf("job %d: df %q", i, data)
		}
		l, err := s.Lock(dir, j.ID)
		if err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
		if got := l.Job().Recipients; len(got) != 1 || got[0].Addr != "<b@x.example>" {
			t.Errorf("job %d: recipients %v", i, got)
		}
		l.Unlock()
	}
}
