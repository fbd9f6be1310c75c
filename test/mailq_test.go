package test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMailqOnSendmailQueue: a queue written by real sendmail 8.17 is listed
// byte for byte as sendmail listed it (reference 03-mailq-one-message.txt),
// by `mailq` and by `sendmail -bp`.
func TestMailqOnSendmailQueue(t *testing.T) {
	r := newRoot(t)
	q := r.path("spool/mqueue")
	copyQueueFiles(t, "../testdata/queues/one", q)
	ref, err := os.ReadFile("../testdata/reference/sendmail/03-mailq-one-message.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := strings.SplitN(string(ref), "\n", 2)[1]
	want = strings.TrimSuffix(want, "# exit status: 0\n")
	want = strings.ReplaceAll(want, "/var/spool/mqueue", q)
	for _, argv := range [][]string{{linkAs(t, "mailq"), "-C", r.cf}, {binary(t), "-C", r.cf, "-bp"}} {
		got := run(t, argv[0], "", argv[1:]...)
		if got.code != 0 || got.stdout != want {
			t.Errorf("%s: exit %d\n--- got\n%s--- want\n%s", filepath.Base(argv[0]), got.code, got.stdout, want)
		}
	}
	empty := newRoot(t)
	got := run(t, binary(t), "", "-C", empty.cf, "-bp")
	if want := empty.path("spool/mqueue") + " is empty\n\t\tTotal requests: 0\n"; got.stdout != want {
		t.Errorf("empty queue: %q, want %q", got.stdout, want)
	}
}

// copyQueueFiles copies the files of a sendmail-written queue as they
// are (mode 0600, as sendmail makes them): only for listings, whose
// Q-Time is the job's own, never for runs (copySendmailJob makes those
// times relative to the run).
func copyQueueFiles(t *testing.T, src, dst string) {
	t.Helper()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// queueSnapshot lists every file under dir (the directory itself too) with
// what a write would change: inode, size, modification and change times.
func queueSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		out[p] = fmt.Sprintf("ino=%d size=%d mode=%v mtime=%d.%09d ctime=%d.%09d", st.Ino, st.Size, fi.Mode(),
			st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestMailqReadOnly: listing the queue (as root too) changes nothing in
// it: no spare pool made, no stale tf recycled, no orphaned df removed,
// no file touched.
func TestMailqReadOnly(t *testing.T) {
	r := newRoot(t)
	q := r.path("spool/mqueue")
	copySendmailJob(t, "../testdata/queues/one", q, "6AP4T98X005913", time.Now().Add(-time.Hour))
	for name, body := range map[string]string{
		"tfSTALE0000001": "V8\n",   // left by a crash while enqueueing
		"dfSTALE0000001": "body\n", // ... with its df
		"dfORPHAN000001": "body\n", // a crash between removing qf and df
	} {
		if err := os.WriteFile(filepath.Join(q, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(q, "dfORPHAN000001"), old, old)
	before := queueSnapshot(t, q)
	for _, argv := range [][]string{{binary(t), "-C", r.cf, "-bp"}, {linkAs(t, "mailq"), "-C", r.cf, "-v"}} {
		if got := run(t, argv[0], "", argv[1:]...); got.code != 0 || !strings.Contains(got.stdout, "6AP4T98X005913") {
			t.Fatalf("%s: exit %d\n%s%s", argv[0], got.code, got.stdout, got.stderr)
		}
	}
	after := queueSnapshot(t, q)
	for p, was := range before {
		if now, ok := after[p]; !ok {
			t.Errorf("%s: removed by the listing", p)
		} else if now != was {
			t.Errorf("%s: changed by the listing:\n was %s\n now %s", p, was, now)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: created by the listing", p)
		}
	}
	// A queue run does clean up: the test's leftovers were real ones.
	run(t, binary(t), "", "-C", r.cf, "-q")
	if _, err := os.Stat(filepath.Join(q, "tfSTALE0000001")); err == nil {
		t.Error("the stale tf survived a queue run too: the fixture does not test the clean-up")
	}
}

// TestMailqLimits is mailq's -qI, -qR, -qS (negated with !) and -qL, as
// sendmail's mailq(1) documents them: only the selected jobs are listed
// and counted.
func TestMailqLimits(t *testing.T) {
	r := newRoot(t)
	q := r.path("spool/mqueue")
	copyQueueFiles(t, "../testdata/queues/several", q)
	listed := func(args ...string) []string {
		t.Helper()
		got := run(t, linkAs(t, "mailq"), "", append([]string{"-C", r.cf}, args...)...)
		if got.code != 0 {
			t.Fatalf("mailq %v: exit %d: %s", args, got.code, got.stderr)
		}
		var ids []string
		for _, l := range strings.Split(got.stdout, "\n") {
			if len(l) > 14 && l[0] == '6' {
				ids = append(ids, strings.TrimSpace(l[:14]))
			}
		}
		slices.Sort(ids)
		total := fmt.Sprintf("Total requests: %d\n", len(ids))
		if !strings.HasSuffix(got.stdout, total) {
			t.Errorf("mailq %v: listing does not end with %q:\n%s", args, total, got.stdout)
		}
		return ids
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"6AP4T98X005913", "6AP4TXDJ006594", "6AP4TZKs006657", "6AP4TZoV006667"}},
		{[]string{"-qRbob"}, []string{"6AP4TZoV006667"}},
		{[]string{"-qRNOBODY@nomx"}, []string{"6AP4TZKs006657"}},
		{[]string{"-qSalice"}, []string{"6AP4T98X005913", "6AP4TXDJ006594"}},
		{[]string{"-q!Salice"}, []string{"6AP4TZKs006657", "6AP4TZoV006667"}},
		{[]string{"-qI6AP4TZ"}, []string{"6AP4TZKs006657", "6AP4TZoV006667"}},
		{[]string{"-qSalice", "-qRmulti"}, []string{"6AP4TXDJ006594"}},
		{[]string{"-qL"}, nil},
	} {
		if got := listed(c.args...); !slices.Equal(got, c.want) {
			t.Errorf("mailq %v: %v, want %v", c.args, got, c.want)
		}
	}
	// A lost job (Qf) is what -qL lists, marked "?".
	os.Rename(filepath.Join(q, "qf6AP4TZoV006667"), filepath.Join(q, "Qf6AP4TZoV006667"))
	got := run(t, linkAs(t, "mailq"), "", "-C", r.cf, "-qL")
	if !strings.Contains(got.stdout, "6AP4TZoV006667?") || !strings.HasSuffix(got.stdout, "Total requests: 1\n") {
		t.Errorf("mailq -qL:\n%s", got.stdout)
	}
}
