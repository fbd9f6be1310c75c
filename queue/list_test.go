package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// copyQueue copies a reference queue (testdata/queues/<set>) into a new directory.
func copyQueue(t testing.TB, set string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "mqueue")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if set == "" {
		return dir
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "queues", set, "*"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func openTest(t testing.TB, dirs ...string) *Store {
	t.Helper()
	s, err := Open(Options{Dirs: dirs, Sync: SyncNone, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func listing(t testing.TB, s *Store, o ListOptions, rename map[string]string) string {
	t.Helper()
	var b bytes.Buffer
	if o.Location == nil {
		o.Location = time.UTC // the reference machine's clock was UTC
	}
	if _, err := s.List(&b, o); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for from, to := range rename {
		out = strings.ReplaceAll(out, from, to)
	}
	return out
}

func golden(t testing.TB, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "golden", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestListGolden(t *testing.T) {
	for _, tc := range []struct {
		set, golden string
		verbose     bool
	}{
		{"one", "one.txt", false},
		{"one", "one-v.txt", true},
		{"several", "several.txt", false},
		{"several", "several-v.txt", true},
		{"after-retries", "after-retries-v.txt", true},
		{"partial", "partial.txt", false},
		{"", "empty.txt", false},
	} {
		dir := copyQueue(t, tc.set)
		s := openTest(t, dir)
		got := listing(t, s, ListOptions{Verbose: tc.verbose}, map[string]string{dir: "/var/spool/mqueue"})
		if want := golden(t, tc.golden); got != want {
			t.Errorf("%s (-v=%v):\n got:\n%s\nwant:\n%s", tc.set, tc.verbose, got, want)
		}
	}
}

func TestListLockedJob(t *testing.T) {
	dir := copyQueue(t, "locked")
	s := openTest(t, dir)
	// A runner in another process holds the job.
	f, err := os.Open(filepath.Join(dir, "qf6AP4WWik011158"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	got := listing(t, s, ListOptions{}, map[string]string{dir: "/var/spool/mqueue"})
	if want := golden(t, "locked.txt"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestListMSPQueue(t *testing.T) {
	dir := copyQueue(t, "msp-client")
	s := openTest(t, dir)
	got := listing(t, s, ListOptions{}, map[string]string{dir: "/var/spool/mqueue-client"})
	if want := golden(t, "msp-client.txt"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestListDebianWrapper rebuilds Debian's mailq wrapper output: the MSP
// queue (empty) and the MTA queue, each listed by its own -bp.
func TestListDebianWrapper(t *testing.T) {
	msp, mta := copyQueue(t, ""), copyQueue(t, "several")
	got := "MSP Queue status...\n" +
		listing(t, openTest(t, msp), ListOptions{}, map[string]string{msp: "/var/spool/mqueue-client"}) +
		"MTA Queue status...\n" +
		listing(t, openTest(t, mta), ListOptions{}, map[string]string{mta: "/var/spool/mqueue"})
	if want := golden(t, "debian-wrapper-several.txt"); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestListMultipleDirs(t *testing.T) {
	root := t.TempDir()
	for _, q := range []string{"q1", "q2", "q3"} {
		if err := os.Mkdir(filepath.Join(root, q), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"qf6AP4T98X005913", "df6AP4T98X005913"} {
		data, _ := os.ReadFile(filepath.Join("..", "testdata", "queues", "one", f))
		os.WriteFile(filepath.Join(root, "q2", f), data, 0o600)
	}
	s := openTest(t, filepath.Join(root, "q*"))
	got := listing(t, s, ListOptions{}, map[string]string{root: "/var/spool/mqueue"})
	one := strings.TrimSuffix(golden(t, "one.txt"), "\t\tTotal requests: 1\n")
	want := "/var/spool/mqueue/q1 is empty\n" +
		strings.Replace(one, "/var/spool/mqueue ", "/var/spool/mqueue/q2 ", 1) +
		"/var/spool/mqueue/q3 is empty\n\t\tTotal requests: 1\n"
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestListMarksAndOddities(t *testing.T) {
	dir := copyQueue(t, "")
	write := func(name, data string) { os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600) }
	// Too young (MinQueueAge), a status message per recipient (verbose),
	// an unprintable sender byte, a quarantine reason, no df.
	write("qfAAAAAAAA000001", "V8\nT1795580949\nK1795580949\nN1\nP100\nqspam?\nSa\\b\x01c\nMper rcpt\nR:x@y\n.\n")
	s := openTest(t, dir)
	now := time.Unix(1795580949+60, 0)
	got := listing(t, s, ListOptions{Verbose: true, MinQueueAge: time.Hour, Now: now}, map[string]string{dir: "/q"})
	want := "\t\t/q (1 request)\n" +
		"-----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------\n" +
		"AAAAAAAA000001-      -1        100 Nov 25 04:29 a\\\\b\\001c\n" +
		"     QUARANTINE: spam?\n" +
		"\t\t\t\t\t\tx@y\n\t\t (per rcpt)\n" +
		"\t\tTotal requests: 1\n"
	if got != want {
		t.Errorf("got:\n%q\nwant:\n%q", got, want)
	}
	got = listing(t, s, ListOptions{ShouldQueue: func(int64, time.Time) bool { return true }, Location: time.FixedZone("EST", -5*3600)}, map[string]string{dir: "/q"})
	if !strings.Contains(got, "AAAAAAAA000001X      -1 Tue Nov 24 23:29 a\\\\b\\001c\n") {
		t.Errorf("X mark / time zone:\n%s", got)
	}
}

func TestLockedInodes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "locks")
	os.WriteFile(p, []byte("1: FLOCK  ADVISORY  WRITE 1234 fd:00:5342136 0 EOF\n"+
		"1: -> FLOCK  ADVISORY  WRITE 1240 fd:00:777 0 EOF\n"+
		"2: POSIX  ADVISORY  WRITE 99 fd:00:888 0 EOF\n"+
		"3: FLOCK  ADVISORY  READ 1 08:01:999 0 EOF\n"+
		"4: FLOCK  ADVISORY  WRITE 5 fd:00:42 0 EOF\n"), 0o600)
	m, err := lockedInodes(p, unix.Mkdev(0xfd, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 2 || !m[5342136] || !m[42] {
		t.Errorf("locked inodes %v", m)
	}
}

// mailq's marks and Q-Time come from the job's times and the caller's
// clock alone, whatever the date.
func TestListMarksAnyDate(t *testing.T) {
	for _, t0 := range anyDate() {
		dir := copyQueue(t, "")
		j := sampleJob("<a@x.example>")
		j.ID = "AAAAAAAA000001"
		j.Created, j.LastTry, j.Attempts = t0, t0.Add(10*time.Minute), 1
		j.SetFlag(FlagWarned, true)
		os.WriteFile(filepath.Join(dir, "qf"+j.ID), Marshal(j), 0o600)
		s := openTest(t, dir)
		for _, tc := range []struct {
			now  time.Duration // after t0
			mark string
		}{
			{11 * time.Minute, "-"},           // tried a minute ago: too young for MinQueueAge
			{10*time.Minute + time.Hour, " "}, // old enough again
			{time.Minute, " "},                // the clock is behind the last try
		} {
			got := listing(t, s, ListOptions{Verbose: true, MinQueueAge: time.Hour, Now: t0.Add(tc.now)}, nil)
			want := "AAAAAAAA000001" + tc.mark + "      -1      30155+" + t0.UTC().Format("Jan _2 15:04") + " <alice@refhost.example.org>\n"
			if !strings.Contains(got, want) {
				t.Errorf("at %v + %v: want %q in\n%s", t0, tc.now, want, got)
			}
		}
	}
}

// mailq -qQ lists only the jobs a filter quarantined; plain mailq lists
// them all.
func TestListQuarantined(t *testing.T) {
	dir := copyQueue(t, "")
	write := func(name, data string) { os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600) }
	write("qfAAAAAAAA000001", "V8\nT1795580949\nK1795580949\nN0\nP100\nqheld for review\nS<a@b>\nR:x@y\n.\n")
	write("qfAAAAAAAA000002", "V8\nT1795580949\nK1795580949\nN0\nP200\nS<c@d>\nR:z@y\n.\n")
	s := openTest(t, dir)
	all := listing(t, s, ListOptions{}, map[string]string{dir: "/q"})
	if !strings.Contains(all, "(2 requests)") || !strings.Contains(all, "AAAAAAAA000002") || !strings.Contains(all, "QUARANTINE: held for review") {
		t.Errorf("mailq:\n%s", all)
	}
	got := listing(t, s, ListOptions{Quarantined: true}, map[string]string{dir: "/q"})
	if !strings.Contains(got, "\t\t/q (1 request)\n") || !strings.Contains(got, "AAAAAAAA000001") || strings.Contains(got, "AAAAAAAA000002") ||
		!strings.Contains(got, "\n     QUARANTINE: held for review\n") || !strings.HasSuffix(got, "\t\tTotal requests: 1\n") {
		t.Errorf("mailq -qQ:\n%s", got)
	}
}
