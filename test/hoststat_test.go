package test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// statusFiles are sendmail-format host status files, by path below the
// directory, recorded the given time before the test runs.
var statusFiles = []struct {
	rel, host string
	ago       time.Duration
	content   string // %d is the U line's time
}{
	{"example./remote./mx", "mx.remote.example", 5*time.Minute + 7*time.Second, "V0\nE111\nH0\nS75\nD4.4.1\nU%d\n.\n"},
	{"example./accept./mx", "mx.accept.example", time.Hour + 2*time.Minute + 3*time.Second, "V0\nE0\nH0\nS0\nD2.0.0\nR250 2.0.0 Ok: queued as SINK1795581152\nU%d\n.\n"},
	{"invalid./nxdomain", "nxdomain.invalid", 10 * time.Second, "V0\nE0\nH1\nS68\nD5.1.2\nR550 Host unknown\nU%d\n.\n"},
	{"example./multi./mx1", "mx1.multi.example", 26*time.Hour + 30*time.Second, "V0\nE110\nH0\nS75\nD4.4.1\nU%d\n.\n"},
	{"local", "local", 3 * time.Second, "V0\nE0\nH0\nS0\nD2.1.5\nR250 2.1.5 alice Ok\nU%d\n.\n"},
}

// writeStatus writes statusFiles under dir, each file's U line and
// modification time set relative to now.
func writeStatus(t *testing.T, dir string, now time.Time) {
	t.Helper()
	for _, f := range statusFiles {
		p := filepath.Join(dir, f.rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		when := now.Add(-f.ago)
		if err := os.WriteFile(p, []byte(fmt.Sprintf(f.content, when.Unix())), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
	}
}

// maskAgo replaces the "How long ago" column (bytes 41-52 of a table line
// whose host fits its column) after checking that it is want, or a few
// seconds more because the clock moved on while the program ran.
func maskAgo(t *testing.T, out string, want map[string]time.Duration) string {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if len(l) < 54 || strings.HasPrefix(l, " ---") {
			continue
		}
		host := strings.TrimSpace(l[1:40])
		ago, ok := want[host]
		if !ok {
			t.Errorf("unexpected line %q", l)
			continue
		}
		col := strings.TrimSpace(l[41:53])
		okAgo := false
		for d := ago; d <= ago+5*time.Second; d += time.Second {
			if col == brief(d) {
				okAgo = true
			}
		}
		if !okAgo {
			t.Errorf("%s: How long ago %q, want %q", host, col, brief(ago))
		}
		lines[i] = l[:41] + "     ~~~~~~~" + l[53:]
	}
	return strings.Join(lines, "\n")
}

// brief is sendmail's [D+]HH:MM:SS.
func brief(d time.Duration) string {
	s := int64(d / time.Second)
	day := ""
	if s >= 86400 {
		day = fmt.Sprintf("%d+", s/86400)
	}
	return fmt.Sprintf("%s%02d:%02d:%02d", day, s/3600%24, s/60%60, s%60)
}

func TestHoststat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hoststatus")
	r := newRoot(t, "O HostStatusDirectory="+dir)
	writeStatus(t, dir, time.Now())
	agos := map[string]time.Duration{}
	for _, f := range statusFiles {
		agos[f.host] = f.ago
	}
	// sendmail's layout: " %-39s %12s %.25s", sorted by path here.
	want := " -------------- Hostname --------------- How long ago ---------Results---------\n"
	for _, l := range [][2]string{
		{"mx.accept.example", "250 2.0.0 Ok: queued as S"},
		{"mx1.multi.example", "Deferred: Connection time"},
		{"mx.remote.example", "Deferred: Connection refu"},
		{"nxdomain.invalid", "550 Host unknown"},
		{"local", "250 2.1.5 alice Ok"},
	} {
		want += fmt.Sprintf(" %-39s %12s %s\n", l[0], "~~~~~~~", l[1])
	}
	for _, args := range [][]string{{"hoststat"}, {"sendmail", "-bh"}} {
		bin := binary(t)
		if args[0] == "hoststat" {
			bin = linkAs(t, "hoststat")
		}
		got := run(t, bin, "", append([]string{"-C", r.cf}, args[1:]...)...)
		if got.code != 0 || got.stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", args, got.code, got.stderr)
		}
		if out := maskAgo(t, got.stdout, agos); out != want {
			t.Errorf("%v:\n%s\nwant\n%s", args, out, want)
		}
	}
	got := run(t, binary(t), "", "-C", r.cf, "-bh", "-v")
	if !strings.Contains(got.stdout, " Deferred: Connection timed out\n") || !strings.Contains(got.stdout, " 250 2.0.0 Ok: queued as SINK1795581152\n") {
		t.Errorf("-bh -v does not widen the Results column:\n%s", got.stdout)
	}
}

func TestPurgestat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "hoststatus")
	r := newRoot(t, "O HostStatusDirectory="+dir, "O Timeout.hoststatus=1h")
	writeStatus(t, dir, time.Now())
	got := run(t, linkAs(t, "purgestat"), "", "-C", r.cf)
	if got.code != 0 || got.stdout != "" || got.stderr != "" {
		t.Errorf("purgestat: %+v", got)
	}
	// Older than an hour: accept. and multi.'s files go; their directories
	// stay until they are old themselves, as in sendmail.
	var left []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			rel, _ := filepath.Rel(dir, p)
			left = append(left, rel)
		}
		return nil
	})
	want := ". example. example./accept. example./multi. example./remote. example./remote./mx invalid. invalid./nxdomain local"
	if strings.Join(left, " ") != want {
		t.Errorf("left after purgestat:\n%s\nwant\n%s", strings.Join(left, " "), want)
	}
	got = run(t, binary(t), "", "-C", r.cf, "-bh")
	if n := strings.Count(got.stdout, "\n"); n != 4 || strings.Contains(got.stdout, "accept") {
		t.Errorf("hoststat after purgestat:\n%s", got.stdout)
	}
	// -bH with Timeout.hoststatus=0 clears the rest.
	run(t, binary(t), "", "-C", r.cf, "-bH", "-O", "Timeout.hoststatus=0")
	if got := run(t, binary(t), "", "-C", r.cf, "-bh"); got.stdout != "" {
		t.Errorf("hoststat after -bH with Timeout.hoststatus=0:\n%s", got.stdout)
	}
}

// TestHostStatusDirectoryResolved: a relative HostStatusDirectory is below
// the queue directory (the cf's commented default is .hoststat), and one
// that is missing is refused with sendmail's warning.
func TestHostStatusDirectoryResolved(t *testing.T) {
	r := newRoot(t, "O HostStatusDirectory=.hoststat")
	writeStatus(t, r.path("spool/mqueue/.hoststat"), time.Now())
	got := run(t, binary(t), "", "-C", r.cf, "-bh")
	if got.code != 0 || !strings.Contains(got.stdout, " mx.remote.example ") {
		t.Errorf("relative directory: %+v", got)
	}
	r = newRoot(t, "O HostStatusDirectory=/nonexistent/hoststatus")
	got = run(t, binary(t), "", "-C", r.cf, "-bh")
	want := "Warning: Cannot use HostStatusDirectory = /nonexistent/hoststatus: No such file or directory\n"
	if got.code != 0 || got.stdout != want {
		t.Errorf("missing directory: %+v", got)
	}
}
