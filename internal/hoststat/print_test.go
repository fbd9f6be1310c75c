package hoststat

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// writeTree writes status files (path below dir → content).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrintMatchesSendmail prints the capture's own files at the time
// they were written: every line is sendmail's (the order is by name here,
// directory order there).
func TestPrintMatchesSendmail(t *testing.T) {
	c := readCapture(t)
	dir := t.TempDir()
	writeTree(t, dir, c.files)
	tab := Open(dir, 30*time.Minute, func() time.Time { return time.Unix(1795581153, 0) })
	var out bytes.Buffer
	if err := tab.Print(&out, false); err != nil {
		t.Fatal(err)
	}
	if got, want := sortedLines(out.String()), sortedLines(strings.Join(c.table, "\n")); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant (any order)\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(out.String(), header) {
		t.Errorf("header not first:\n%s", out.String())
	}
}

// TestPrintGolden covers the columns: intervals, each kind of result, the
// widths, a lock held by another process and an unreadable file.
func TestPrintGolden(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	dir := t.TempDir()
	at := func(ago time.Duration) time.Time { return now.Add(-ago) }
	tab := Open(dir, 30*time.Minute, func() time.Time { return now })
	for _, s := range []Status{
		{Host: "mx.remote.example", Errno: 111, Exit: 75, DSN: "4.4.1", Updated: at(5 * time.Second)},
		{Host: "mx.timeout.example", Errno: 110, Exit: 75, DSN: "4.4.1", Updated: at(time.Hour + 2*time.Minute + 3*time.Second)},
		{Host: "mx.accept.example", DSN: "2.0.0", Reply: "250 2.0.0 Ok: queued as SINK1795581152", Updated: at(49 * time.Hour)},
		{Host: "nxdomain.invalid", Herrno: 1, Exit: 68, DSN: "5.1.2", Updated: at(0)},
		{Host: "mx.odd.example", Exit: 99, Updated: at(time.Minute)},
		{Host: "mx.ok.example", Updated: at(time.Minute)},
		{Host: "mx.okerr.example", Errno: 104, Updated: at(time.Minute)},
		{Host: "a-host-name-that-is-longer-than-the-thirty-nine-column.example", Exit: 75, Updated: at(time.Minute)},
		{Host: "future.example", Exit: 75, Errno: 111, Updated: now.Add(65 * time.Second)},
		{Host: "[192.0.2.1]", Exit: 75, Errno: 113, Updated: at(10 * 24 * time.Hour)},
		{Host: "local", DSN: "2.1.5", Reply: "250 2.1.5 alice Ok", Updated: at(0)},
	} {
		if err := tab.Record(s); err != nil {
			t.Fatal(err)
		}
	}
	// Another process delivering to mx.ok.example holds its lock.
	p, _ := Path(dir, "mx.ok.example")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	writeTree(t, dir, map[string]string{"example./broken": "not a status file\n", "example./.tmp": "V0\n.\n"})

	for _, tc := range []struct {
		golden  string
		verbose bool
	}{{"testdata/hoststat.golden", false}, {"testdata/hoststat-v.golden", true}} {
		var out bytes.Buffer
		err := tab.Print(&out, tc.verbose)
		if err == nil || !strings.Contains(err.Error(), "example./broken: could not read status file") {
			t.Errorf("error for the broken file: %v", err)
		}
		golden(t, tc.golden, out.Bytes())
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\ngot\n%s\nwant\n%s", path, got, want)
	}
}

func TestPrintNothing(t *testing.T) {
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		var out bytes.Buffer
		if err := Open(dir, time.Hour, nil).Print(&out, false); err != nil || out.Len() != 0 {
			t.Errorf("dir %q: printed %q, %v", dir, out.String(), err)
		}
	}
	// Directories without files print no header either (the capture after
	// an expiring purgestat).
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "example./remote."), 0o755)
	var out bytes.Buffer
	if err := Open(dir, time.Hour, nil).Print(&out, false); err != nil || out.Len() != 0 {
		t.Errorf("empty tree: printed %q, %v", out.String(), err)
	}
}

func TestInterval(t *testing.T) {
	for secs, want := range map[int64]string{
		0: "00:00:00", 5: "00:00:05", 3723: "01:02:03", 86399: "23:59:59",
		86400: "1+00:00:00", 10*86400 + 61: "10+00:01:01", -65: "00:-1:-5",
	} {
		if got := interval(secs); got != want {
			t.Errorf("interval(%d) = %q, want %q", secs, got, want)
		}
	}
}

func TestStrerror(t *testing.T) {
	for n, want := range map[int]string{
		111: "Connection refused", 110: "Connection timed out", 113: "No route to host",
		2: "No such file or directory", 9999: "Unknown error 9999",
	} {
		if got := strerror(n); got != want {
			t.Errorf("strerror(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestPurge follows the reference capture: with Timeout.hoststatus=1s and
// files two seconds old, the files go and the directories stay (removing
// their files just changed them); a later purge removes the directories
// once they are old too. The top directory always stays.
func TestPurge(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, readCapture(t).files)
	fresh := "example./fresh./mx"
	writeTree(t, dir, map[string]string{fresh: "V0\nE0\nH0\nS0\nU1\n.\n"})
	now := time.Now()
	old := now.Add(-2 * time.Second)
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && !strings.HasSuffix(p, fresh) {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	tab := Open(dir, time.Second, func() time.Time { return now })
	if err := tab.Purge(); err != nil {
		t.Fatal(err)
	}
	want := []string{".", "example.", "example./accept.", "example./bounce.", "example./fresh.", "example./fresh./mx",
		"example./multi.", "example./remote."}
	if got := tree(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("after the first purge:\n%q\nwant\n%q", got, want)
	}
	var out bytes.Buffer
	tab.Print(&out, false)
	if lines := strings.Count(out.String(), "\n"); lines != 2 {
		t.Errorf("hoststat after purge:\n%s", out.String())
	}

	// Later: the emptied directories are old now; fresh.'s file is not.
	later := now.Add(10 * time.Second)
	for _, d := range want[1:] {
		os.Chtimes(filepath.Join(dir, d), now, now)
	}
	os.Chtimes(filepath.Join(dir, fresh), later, later)
	tab = Open(dir, time.Second, func() time.Time { return later })
	tab.Purge()
	want = []string{".", "example.", "example./fresh.", "example./fresh./mx"}
	if got := tree(t, dir); !reflect.DeepEqual(got, want) {
		t.Errorf("after the second purge:\n%q\nwant\n%q", got, want)
	}
}

func TestPurgeNothing(t *testing.T) {
	for _, dir := range []string{"", filepath.Join(t.TempDir(), "missing")} {
		if err := Open(dir, time.Second, nil).Purge(); err != nil {
			t.Errorf("dir %q: %v", dir, err)
		}
	}
}

func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	return out
}
