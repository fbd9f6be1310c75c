package queue

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzList feeds arbitrary control files to the mailq listing (issue 9):
// whatever a qf holds, the listing does not panic, shows the job by its ID
// once, counts it, ends with the total, and leaves the queue as it was
// (listing is read-only).
func FuzzList(f *testing.F) {
	for _, name := range referenceQF(f) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, false)
		f.Add(data, true)
	}
	f.Add([]byte("V8\nT0\nS\x00\\\x81\nR:\x1b[2J\nMx\ty\n.\n"), true)
	f.Add([]byte("garbage"), false)
	f.Add([]byte(""), true)
	const id = "6AP4T98X005913"
	f.Fuzz(func(t *testing.T, qf []byte, verbose bool) {
		dir := filepath.Join(t.TempDir(), "mqueue")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "qf"+id), qf, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "df"+id), []byte("body\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := dirState(t, dir)
		s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone, Mode: 0o600, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out bytes.Buffer
		n, err := s.List(&out, ListOptions{Verbose: verbose, Location: time.UTC, Now: time.Unix(1<<31, 0)})
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		text := out.String()
		if n != 1 || !strings.HasSuffix(text, "\t\tTotal requests: 1\n") {
			t.Fatalf("listed %d jobs:\n%q", n, text)
		}
		// One entry: one line starting with the ID (the qf's own texts,
		// such as a status message, may repeat it further on).
		entries := 0
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, id) {
				entries++
			}
		}
		if entries != 1 {
			t.Fatalf("job listed %d times:\n%q", entries, text)
		}
		if after := dirState(t, dir); after != before {
			t.Fatalf("listing changed the queue:\n%s\nto\n%s", before, after)
		}
	})
}

// dirState is the names, sizes and modes of a directory's files.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(e.Name() + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String() + "\n")
	}
	return b.String()
}

// FuzzPrtstr holds the listing's address column to sendmail's prtstr: at
// most ml bytes, printable ASCII only, and a short printable string
// without backslashes unchanged.
func FuzzPrtstr(f *testing.F) {
	f.Add("<alice@example.org>", 39)
	f.Add("a\\b\x00\x81\r\n", 78)
	f.Add(strings.Repeat("\x01", 20), 9)
	f.Fuzz(func(t *testing.T, s string, ml int) {
		ml %= 200
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		prtstr(w, s, ml)
		w.Flush()
		out := b.String()
		if len(out) > max(ml, 0) {
			t.Fatalf("prtstr(%q, %d) = %q: longer than %d", s, ml, out, ml)
		}
		for i := 0; i < len(out); i++ {
			if out[i] < 0x20 || out[i] >= 0x7f {
				t.Fatalf("prtstr(%q, %d) = %q: byte %#x", s, ml, out, out[i])
			}
		}
		plain := !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r >= 0x7f || r == '\\' })
		if plain && len(s) <= ml && out != s {
			t.Fatalf("prtstr(%q, %d) = %q", s, ml, out)
		}
	})
}
