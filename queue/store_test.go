package queue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/maillog"
)

func sampleJob(rcpts ...string) *Job {
	j := &Job{Created: time.Unix(1795580949, 0), Priority: 30155, Flags: "bs",
		Macros: []Macro{{"_", "localhost [127.0.0.1]"}, {"r", "ESMTP"}},
		Sender: "<alice@refhost.example.org>",
		Headers: []Header{{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
			{HasCond: true, Name: "Subject", Value: " test"}}}
	for _, r := range rcpts {
		j.Recipients = append(j.Recipients, Recipient{Flags: "PFD", Addr: r, FinalRcpt: "RFC822; " + strings.Trim(r, "<>")})
	}
	return j
}

func TestEnqueueLockRewriteRemove(t *testing.T) {
	dir := copyQueue(t, "")
	for _, mode := range []SyncMode{SyncBatch, SyncFiles, SyncNone} {
		s, err := Open(Options{Dirs: []string{dir}, Sync: mode})
		if err != nil {
			t.Fatal(err)
		}
		j := sampleJob("<a@x.example>", "<b@y.example>")
		if err := s.Enqueue(j, strings.NewReader("body\n")); err != nil {
			t.Fatal(err)
		}
		qf, df := filepath.Join(dir, "qf"+j.ID), filepath.Join(dir, "df"+j.ID)
		for _, p := range []string{qf, df} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s mode %v", p, fi.Mode())
			}
		}
		if tfs, _ := filepath.Glob(filepath.Join(dir, "tf*")); len(tfs) != 0 {
			t.Errorf("tf left: %v", tfs)
		}
		l, err := s.Lock(dir, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(Marshal(l.Job()), Marshal(j)) {
			t.Errorf("read back differs")
		}
		if _, err := s.Lock(dir, j.ID); !errors.Is(err, ErrLocked) {
			t.Errorf("second lock: %v", err)
		}
		// Deliver the first recipient, defer the second.
		k := *l.Job()
		k.Recipients = k.Recipients[1:]
		k.Attempts, k.LastTry, k.Message = 1, time.Unix(1795581000, 0), "Deferred: Connection refused by y.example."
		if err := l.Rewrite(&k); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lock(dir, j.ID); !errors.Is(err, ErrLocked) {
			t.Errorf("lock after rewrite: %v", err)
		}
		l.Unlock()
		l2, err := s.Lock(dir, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := l2.Job(); len(got.Recipients) != 1 || got.Attempts != 1 || !strings.Contains(got.DataInode, "/") {
			t.Errorf("rewritten job %+v", got)
		}
		body, _ := os.ReadFile(l2.dataPath())
		if string(body) != "body\n" {
			t.Errorf("body %q", body)
		}
		if err := l2.Remove(); err != nil {
			t.Fatal(err)
		}
		if exists(qf) || exists(df) {
			t.Error("files left after Remove")
		}
		if _, err := s.Lock(dir, j.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("lock after remove: %v", err)
		}
		s.Close()
	}
}

func TestCommitLockedShowsStar(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(tx, "hello\n")
	l, err := tx.CommitLocked(sampleJob("<a@x.example>"))
	if err != nil {
		t.Fatal(err)
	}
	out := listing(t, s, ListOptions{}, nil)
	if !strings.Contains(out, l.ID()+"*       6 ") {
		t.Errorf("no * mark:\n%s", out)
	}
	if _, err := s.Lock(dir, l.ID()); !errors.Is(err, ErrLocked) {
		t.Errorf("runner got a job being delivered: %v", err)
	}
	l.Unlock()
	if out := listing(t, s, ListOptions{}, nil); !strings.Contains(out, l.ID()+"        6 ") {
		t.Errorf("still marked:\n%s", out)
	}
}

func TestBeginAbortLeavesNothing(t *testing.T) {
	dir := copyQueue(t, "")
	s := openTest(t, dir)
	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Write([]byte("partial"))
	if out := listing(t, s, ListOptions{}, nil); !strings.Contains(out, "is empty") {
		t.Errorf("uncommitted job listed:\n%s", out)
	}
	tx.Abort()
	// Only the pool is left, holding the tf and df, emptied.
	if names, _ := os.ReadDir(dir); len(names) != 1 || names[0].Name() != spareDir {
		t.Errorf("left: %v", names)
	}
	spares, _ := os.ReadDir(filepath.Join(dir, spareDir))
	for _, e := range spares {
		if fi, err := e.Info(); err != nil || fi.Size() != 0 {
			t.Errorf("spare %s not empty", e.Name())
		}
	}
	if len(spares) != 2 {
		t.Errorf("%d spares, want 2", len(spares))
	}
}

func TestCorruptQfIsLost(t *testing.T) {
	dir := copyQueue(t, "")
	os.WriteFile(filepath.Join(dir, "qfBAD000000001"), []byte("V8\nT1\nSx\nRnocolon\n.\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "dfBAD000000001"), []byte("x\n"), 0o600)
	var logbuf bytes.Buffer
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Logger: maillog.New(&logbuf, "sm-mta")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x, lost, err := s.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	if indexLen(x) != 0 || !reflect.DeepEqual(lost, []string{"BAD000000001"}) {
		t.Errorf("index %d lost %v", indexLen(x), lost)
	}
	if !exists(filepath.Join(dir, "QfBAD000000001")) || exists(filepath.Join(dir, "qfBAD000000001")) {
		t.Error("qf not renamed to Qf")
	}
	if !strings.Contains(logbuf.String(), "BAD000000001: Losing "+dir+"/qfBAD000000001: line 4: recipient without flags separator") {
		t.Errorf("log: %q", logbuf.String())
	}
	out := listing(t, s, ListOptions{Lost: true}, map[string]string{dir: "/q"})
	if !strings.Contains(out, "BAD000000001?       2 Thu Jan  1 00:00 x\n") {
		t.Errorf("lost listing:\n%s", out)
	}
}

func TestOpenCleansUp(t *testing.T) {
	dir := copyQueue(t, "one")
	write := func(name string) { os.WriteFile(filepath.Join(dir, name), []byte("x\n"), 0o600) }
	write("tfSTALE0000001") // crash while enqueueing
	write("dfSTALE0000001")
	write("tf6AP4T98X005913") // crash while rewriting: the qf stays
	write("tfBUSY00000001")   // being written by a live process
	write("dfBUSY00000001")
	write("dfORPHAN000001") // crash between removing qf and df
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(dir, "dfORPHAN000001"), old, old)
	write("dfYOUNG0000001")
	busy, _ := os.Open(filepath.Join(dir, "tfBUSY00000001"))
	defer busy.Close()
	unix.Flock(int(busy.Fd()), unix.LOCK_EX)

	openTest(t, dir)
	for name, want := range map[string]bool{
		"tfSTALE0000001": false, "dfSTALE0000001": false, "tf6AP4T98X005913": false,
		"qf6AP4T98X005913": true, "df6AP4T98X005913": true,
		"tfBUSY00000001": true, "dfBUSY00000001": true,
		"dfORPHAN000001": false, "dfYOUNG0000001": true,
	} {
		if got := exists(filepath.Join(dir, name)); got != want {
			t.Errorf("%s exists=%v, want %v", name, got, want)
		}
	}
}

func TestBeginSkipsUsedID(t *testing.T) {
	dir := copyQueue(t, "")
	now := time.Date(2026, 11, 25, 4, 29, 9, 0, time.UTC)
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Pid: 5913, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.ids.offset = 0
	// A job left by an earlier process with the same pid in the same second.
	used := EncodeID(now, 0, 5913)
	os.WriteFile(filepath.Join(dir, "qf"+used), []byte("V8\n.\n"), 0o600)
	tx, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	if tx.ID() == used || tx.ID() != EncodeID(now, 1, 5913) {
		t.Errorf("got ID %s (used %s)", tx.ID(), used)
	}
}

func TestConcurrentEnqueue(t *testing.T) {
	dir := copyQueue(t, "")
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncBatch})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ids := map[string]bool{}
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				j := sampleJob("<a@x.example>")
				if err := s.Enqueue(j, strings.NewReader("hello\n")); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids[j.ID] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	x, lost, err := s.LoadIndex()
	if err != nil || len(lost) != 0 {
		t.Fatal(err, lost)
	}
	if len(ids) != 200 || indexLen(x) != 200 {
		t.Errorf("%d ids, %d indexed", len(ids), indexLen(x))
	}
}

func TestIndexSelect(t *testing.T) {
	dir := copyQueue(t, "several")
	s := openTest(t, dir)
	x, lost, err := s.LoadIndex()
	if err != nil || len(lost) != 0 {
		t.Fatal(err, lost)
	}
	now := time.Unix(1795580975+60, 0)
	ids := func(es []Entry) string {
		var b []string
		for _, e := range es {
			b = append(b, e.ID)
		}
		return strings.Join(b, " ")
	}
	for _, tc := range []struct {
		limits []string
		sched  Schedule
		want   string
	}{
		{nil, Schedule{}, "6AP4T98X005913 6AP4TZoV006667 6AP4TZKs006657 6AP4TXDJ006594"},
		{[]string{"Rmulti"}, Schedule{}, "6AP4TXDJ006594"},
		{[]string{"!Rremote.example"}, Schedule{}, "6AP4TZoV006667 6AP4TZKs006657 6AP4TXDJ006594"},
		{[]string{"RNOMX", "Rbob"}, Schedule{}, "6AP4TZoV006667 6AP4TZKs006657"},
		{[]string{"Sbob@"}, Schedule{}, "6AP4TZKs006657"},
		{[]string{"!Sbob@", "ITZ"}, Schedule{}, "6AP4TZoV006667"},
		{[]string{"Itz"}, Schedule{}, ""},
		// Tried 60 to 86 seconds ago; never-tried 6AP4TZoV006667 is always due.
		{nil, Schedule{MinQueueAge: 80 * time.Second}, "6AP4T98X005913 6AP4TZoV006667"},
	} {
		var f Filter
		for _, l := range tc.limits {
			if err := f.Add(l); err != nil {
				t.Fatal(err)
			}
		}
		if got := ids(x.Select(f, tc.sched, now)); got != tc.want {
			t.Errorf("%v %+v: got %q, want %q", tc.limits, tc.sched, got, tc.want)
		}
	}
	var f Filter
	for _, bad := range []string{"", "X", "Z1", "!"} {
		if f.Add(bad) == nil {
			t.Errorf("limit %q accepted", bad)
		}
	}
	x.Delete(dir, "6AP4T98X005913")
	if got := ids(x.Select(Filter{}, Schedule{}, now)); indexLen(x) != 3 || strings.Contains(got, "6AP4T98X005913") {
		t.Errorf("after delete: %s", got)
	}
}

func TestSubdirLayoutAndGlob(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"q1/qf", "q1/df", "q2"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(Options{Dirs: []string{filepath.Join(root, "q*")}, Sync: SyncFiles})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.dirs; len(got) != 2 || got[0].path != filepath.Join(root, "q1") {
		t.Fatalf("dirs %v", got)
	}
	var jobs []*Job
	for i := 0; i < 4; i++ {
		j := sampleJob("<a@x.example>")
		if err := s.Enqueue(j, strings.NewReader("b\n")); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	// Round robin: jobs 0 and 2 in q1 (subdirectories), 1 and 3 in q2.
	for i, j := range jobs {
		var qf, df string
		if i%2 == 0 {
			qf, df = filepath.Join(root, "q1", "qf", "qf"+j.ID), filepath.Join(root, "q1", "df", "df"+j.ID)
		} else {
			qf, df = filepath.Join(root, "q2", "qf"+j.ID), filepath.Join(root, "q2", "df"+j.ID)
		}
		if !exists(qf) || !exists(df) {
			t.Errorf("job %d: %s or %s missing", i, qf, df)
		}
	}
	x, _, err := s.LoadIndex()
	if err != nil || indexLen(x) != 4 {
		t.Fatalf("index %v %v", indexLen(x), err)
	}
	e := x.Select(Filter{}, Schedule{}, time.Now())[0]
	l, err := s.Lock(e.Dir, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if data, err := os.ReadFile(l.dataPath()); err != nil || string(data) != "b\n" {
		t.Errorf("df %q %v", data, err)
	}
	out := listing(t, s, ListOptions{}, map[string]string{root: "/q"})
	if !strings.Contains(out, "\t\t/q/q1 (2 requests)") || !strings.Contains(out, "Total requests: 4") ||
		!strings.Contains(out, "*       2 ") {
		t.Errorf("listing:\n%s", out)
	}
	if _, err := Open(Options{Dirs: []string{filepath.Join(root, "nothing*")}}); err == nil {
		t.Error("glob without match accepted")
	}
	ro, err := Open(Options{Dirs: []string{filepath.Join(root, "q2")}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if _, err := ro.Begin(); err == nil {
		t.Error("read-only store enqueued")
	}
}

// TestSmmspGroupMode checks the 0640 root:smmsp files of Debian's queue.
// It creates the group itself, so it runs only as root.
func TestSmmspGroupMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create the smmsp group")
	}
	if _, err := exec.LookPath("groupadd"); err != nil {
		t.Skip("no groupadd")
	}
	if exec.Command("getent", "group", "smmsp").Run() == nil {
		t.Skip("smmsp exists on this machine; not touching it")
	}
	if out, err := exec.Command("groupadd", "-r", "smmsp").CombinedOutput(); err != nil {
		t.Skipf("groupadd: %v %s", err, out)
	}
	defer exec.Command("groupdel", "smmsp").Run()
	dir := copyQueue(t, "")
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j := sampleJob("<a@x.example>")
	if err := s.Enqueue(j, strings.NewReader("x\n")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"qf" + j.ID, "df" + j.ID} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		if st.Mode&0o777 != 0o640 || int(st.Gid) != s.gid {
			t.Errorf("%s: mode %o gid %d, want 0640 gid %d", p, st.Mode&0o777, st.Gid, s.gid)
		}
	}
}

func TestListJobCompletedMeanwhile(t *testing.T) {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeEntry(w, &scanned{id: "6AP4T98X005913", openErr: unix.ENOENT}, ListOptions{}, Schedule{})
	writeEntry(w, &scanned{id: "6AP4T98X005914", openErr: unix.EACCES}, ListOptions{}, Schedule{})
	w.Flush()
	want := "6AP4T98X005913 (job completed)\n6AP4T98X005914 (Permission denied)\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestCloseWhileEnqueueing(t *testing.T) {
	for round := 0; round < 20; round++ {
		dir := copyQueue(t, "")
		s, err := Open(Options{Dirs: []string{dir}, Sync: SyncFiles})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 5; i++ {
					// Either queued or refused with ErrClosed; never stuck.
					if err := s.Enqueue(sampleJob("<a@x>"), strings.NewReader("x\n")); err != nil && !errors.Is(err, ErrClosed) {
						t.Error(err)
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		s.Close()
		wg.Wait()
	}
}

// A read-only store (mailq) cleans nothing up, makes no pool and refuses
// everything that writes.
func TestReadOnlyStore(t *testing.T) {
	dir := copyQueue(t, "one")
	os.WriteFile(filepath.Join(dir, "tfSTALE0000001"), []byte("x\n"), 0o600)
	s, err := Open(Options{Dirs: []string{dir}, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !exists(filepath.Join(dir, "tfSTALE0000001")) || exists(filepath.Join(dir, spareDir)) {
		t.Error("a read-only open cleaned up or made a pool")
	}
	if _, err := s.Lock(dir, "6AP4T98X005913"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Lock: %v", err)
	}
	if _, err := s.BeginID("6AP4T98X999999"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("BeginID: %v", err)
	}
	if _, err := s.Begin(); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Begin: %v", err)
	}
	if n, err := s.List(io.Discard, ListOptions{}); n != 1 || err != nil {
		t.Errorf("List: %d %v", n, err)
	}
}
