package hoststat

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// capture is the reference capture of sendmail's hoststat: its table
// lines and its status files by path below the directory.
type capture struct {
	table []string
	files map[string]string
}

func readCapture(t *testing.T) capture {
	t.Helper()
	data, err := os.ReadFile("testdata/04-hoststat-enabled.txt")
	if err != nil {
		t.Fatal(err)
	}
	c := capture{files: map[string]string{}}
	cur := ""
	inFiles := false
	for _, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "----- files"):
			inFiles = true
		case !inFiles && strings.HasPrefix(line, " "):
			c.table = append(c.table, line)
		case inFiles && strings.HasPrefix(line, "== "):
			cur = strings.TrimPrefix(line, "== /var/lib/sendmail/host_status/")
		case inFiles && cur != "" && strings.HasSuffix(line, "$"):
			c.files[cur] += strings.TrimSuffix(line, "$") + "\n" // cat -A marks line ends with $
		}
	}
	if len(c.table) != 7 || len(c.files) != 6 {
		t.Fatalf("capture: %d table lines, %d files", len(c.table), len(c.files))
	}
	return c
}

func TestFormatMatchesSendmailFiles(t *testing.T) {
	c := readCapture(t)
	for rel, want := range c.files {
		s, err := Parse([]byte(want))
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if got := string(Format(s)); got != want {
			t.Errorf("%s: Format gives\n%s\nsendmail wrote\n%s", rel, got, want)
		}
	}
	want := "V0\nE111\nH0\nS75\nD4.4.1\nU1795581153\n.\n"
	s := Status{Errno: 111, Exit: 75, DSN: "4.4.1", Updated: time.Unix(1795581153, 0)}
	if got := string(Format(s)); got != want {
		t.Errorf("Format(%+v) = %q, want %q", s, got, want)
	}
	long := Status{Reply: "550 5.1.1 " + strings.Repeat("x", 100) + "\nsecond line", Updated: time.Unix(5, 0)}
	if got := string(Format(long)); !strings.Contains(got, "\nR550 5.1.1 "+strings.Repeat("x", 70)+"\nU5\n") {
		t.Errorf("long reply not cut to 80 bytes on one line: %q", got)
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Status
		err  bool
	}{
		{in: "V0\nE111\nH2\nS75\nD4.4.1\nRabc\nU100\n.\n", want: Status{Errno: 111, Herrno: 2, Exit: 75, DSN: "4.4.1", Reply: "abc", Updated: time.Unix(100, 0)}},
		// Any order; what follows the dot is not read.
		{in: "U7\nS69\nV0\n.\nXgarbage\n", want: Status{Exit: 69, Updated: time.Unix(7, 0)}},
		// C's atoi: white space, sign, digits, the rest ignored.
		{in: "V0\nE 12abc\nS-3\nU\n.\n", want: Status{Errno: 12, Exit: -3, Updated: time.Unix(0, 0)}},
		{in: "V0\nE99999999999\n.\n", want: Status{Errno: 2147483647}},
		// Missing dot with a version line: accepted, as sendmail.
		{in: "V0\nS75\n", want: Status{Exit: 75}},
		{in: "V0\nRno newline", want: Status{Reply: "no newline"}},
		// A CR stays part of the value (sendmail reads with fgets).
		{in: "V0\nR250 ok\r\n.\n", want: Status{Reply: "250 ok\r"}},
		{in: "", err: true},
		{in: "S75\n", err: true},
		{in: "V1\n.\n", err: true},
		{in: "V0\n\n.\n", err: true},
		{in: "V0\nQ1\n.\n", err: true},
	} {
		got, err := Parse([]byte(tc.in))
		if tc.err {
			if err == nil {
				t.Errorf("%q: no error, got %+v", tc.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"mx.remote.example", "/hs/example./remote./mx"},
		{"MX.Remote.Example.", "/hs/example./remote./mx"},
		{"local", "/hs/local"},
		{"[192.0.2.1]", "/hs/1./2./0./192"},
		{"[2001:db8::1]", "/hs/2001:db8::1"},
		{"a/b.example", "/hs/example./a:b"},
		{"", ""},
		{".hidden.example", ""},
		{"a..b", ""},
		{"[not.an.address]", ""},
		{"bad\nname", ""},
	} {
		got, err := Path("/hs", tc.host)
		if (err != nil) != (tc.want == "") || got != tc.want {
			t.Errorf("Path(%q) = %q, %v; want %q", tc.host, got, err, tc.want)
		}
	}
	if h := hostOf([]string{"example.", "remote.", "mx"}); h != "mx.remote.example" {
		t.Errorf("hostOf = %q", h)
	}
}

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

// TestLookupExpires runs at a fixed date, today and a year ahead: the
// expiry follows the table's clock, not the machine's.
func TestLookupExpires(t *testing.T) {
	today := time.Now().Truncate(time.Second)
	for _, start := range []time.Time{time.Unix(1_800_000_000, 0), today, today.AddDate(1, 0, 0)} {
		for _, dir := range []string{"", t.TempDir()} {
			lookupExpires(t, dir, start)
		}
	}
}

func lookupExpires(t *testing.T, dir string, start time.Time) {
	t.Helper()
	c := &clock{start}
	tab := Open(dir, 30*time.Minute, c.now)
	if _, ok := tab.Lookup("mx.remote.example"); ok {
		t.Fatal("found a status never recorded")
	}
	down := Status{Host: "MX.remote.example.", Errno: 111, Exit: 75, DSN: "4.4.1"}
	if err := tab.Record(down); err != nil {
		t.Fatal(err)
	}
	if err := tab.Record(Status{Host: "mx.bounce.example", DSN: "2.0.0", Reply: "250 2.0.0 Ok"}); err != nil {
		t.Fatal(err)
	}
	c.t = c.t.Add(30*time.Minute - time.Second)
	s, ok := tab.Lookup("mx.remote.example")
	if !ok || !s.Down() || s.Host != "mx.remote.example" || !s.Updated.Equal(start) {
		t.Errorf("dir %q at %v: within Timeout.hoststatus: %+v, %v", dir, start, s, ok)
	}
	if s, ok := tab.Lookup("mx.bounce.example"); !ok || s.Down() {
		t.Errorf("dir %q at %v: a success: %+v, %v", dir, start, s, ok)
	}
	c.t = c.t.Add(time.Second)
	if s, ok := tab.Lookup("mx.remote.example"); ok {
		t.Errorf("dir %q at %v: after Timeout.hoststatus: %+v", dir, start, s)
	}
}

func TestRecordWritesSendmailFile(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Unix(1795581153, 0)}
	tab := Open(dir, time.Hour, c.now)
	if err := tab.Record(Status{Host: "mx1.multi.example", Errno: 111, Exit: 75, DSN: "4.4.1"}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Record(Status{Host: "local", DSN: "2.1.5", Reply: "250 2.1.5 alice Ok"}); err != nil {
		t.Fatal(err)
	}
	want := readCapture(t).files
	for _, rel := range []string{"example./multi./mx1", "local"} {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want[rel] {
			t.Errorf("%s:\n%s\nwant\n%s", rel, got, want[rel])
		}
		fi, _ := os.Stat(filepath.Join(dir, rel))
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", rel, fi.Mode())
		}
	}
	fi, _ := os.Stat(filepath.Join(dir, "example./multi."))
	if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("directory mode %v", fi.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(dir, "example./multi./.*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %q", left)
	}
}

func TestOtherProcessesSeen(t *testing.T) {
	dir := t.TempDir()
	c := &clock{time.Unix(1_800_000_000, 0)}
	a := Open(dir, time.Hour, c.now)
	b := Open(dir, time.Hour, c.now) // another process sharing the directory
	if err := a.Record(Status{Host: "mx.example", Exit: 75, Errno: 111}); err != nil {
		t.Fatal(err)
	}
	if s, ok := b.Lookup("mx.example"); !ok || !s.Down() {
		t.Fatalf("b does not see a's record: %+v %v", s, ok)
	}
	if err := b.Record(Status{Host: "mx.example", Reply: "250 ok"}); err != nil {
		t.Fatal(err)
	}
	if s, ok := a.Lookup("mx.example"); !ok || s.Down() || s.Reply != "250 ok" {
		t.Errorf("a does not see b's update: %+v %v", s, ok)
	}
	// A file rewritten in place by a sendmail, same size, other content.
	path, _ := Path(dir, "mx.example")
	old, _ := os.ReadFile(path)
	repl := bytes.Replace(old, []byte("250 ok"), []byte("421 no"), 1)
	repl = bytes.Replace(repl, []byte("S0"), []byte("S9"), 1)
	if err := os.WriteFile(path, repl, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	if s, ok := a.Lookup("mx.example"); !ok || s.Exit != 9 {
		t.Errorf("in-place rewrite not seen: %+v %v", s, ok)
	}
	// A damaged file keeps the last good status; a removed one is gone.
	os.WriteFile(path, []byte("garbage\n"), 0o600)
	if s, ok := a.Lookup("mx.example"); !ok || s.Exit != 9 {
		t.Errorf("damaged file: %+v %v", s, ok)
	}
	os.Remove(path)
	if s, ok := a.Lookup("mx.example"); ok {
		t.Errorf("removed file still found: %+v", s)
	}
}

func TestProtocolErrorNotSticky(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	tab := Open("", time.Hour, c.now)
	tab.Record(Status{Host: "mx.example", Exit: 75, Errno: 111})
	tab.Record(Status{Host: "mx.example", Exit: 76, Reply: "500 what?"})
	if s, _ := tab.Lookup("mx.example"); s.Exit != 75 || s.Reply != "500 what?" {
		t.Errorf("got %+v, want Exit 75 kept", s)
	}
	tab.Record(Status{Host: "fresh.example", Exit: 76})
	if s, _ := tab.Lookup("fresh.example"); s.Exit != 0 {
		t.Errorf("got %+v, want Exit 0", s)
	}
}

func TestRecordBadHost(t *testing.T) {
	tab := Open(t.TempDir(), time.Hour, nil)
	if err := tab.Record(Status{Host: "../escape"}); err == nil {
		t.Error("no error for ../escape")
	}
	if _, ok := tab.Lookup("../escape"); ok {
		t.Error("found ../escape")
	}
}

func TestConcurrentUse(t *testing.T) {
	tab := Open(t.TempDir(), time.Hour, nil)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				tab.Record(Status{Host: "mx.example", Exit: 75 * (j % 2)})
				tab.Lookup("mx.example")
			}
		}()
	}
	wg.Wait()
	if _, ok := tab.Lookup("mx.example"); !ok {
		t.Error("no status after concurrent records")
	}
}

func sortedLines(s string) []string {
	l := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	sort.Strings(l)
	return l
}
