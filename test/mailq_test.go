package test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMailqOnSendmailQueue: a queue written by real sendmail 8.17 is listed
// byte for byte as sendmail listed it (reference 03-mailq-one-message.txt),
// by `mailq` and by `sendmail -bp`.
func TestMailqOnSendmailQueue(t *testing.T) {
	r := newRoot(t)
	q := r.path("spool/mqueue")
	src := "../queue/testdata/one"
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, _ := os.ReadFile(filepath.Join(src, e.Name()))
		os.WriteFile(filepath.Join(q, e.Name()), data, 0o600)
	}
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
