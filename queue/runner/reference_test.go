package runner

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Reference runs on the reference queue files give the reference DSNs
// byte for byte (apart from the new queue ID and mail.local's
// Content-Length), the reference -v lines and the reference log line:
// the queue-return run of 03-sendmail-q-v-queuereturn.txt
// (Timeout.queuereturn=1s, 03-dsn-queuereturn-timeout.txt) and the first
// warning run of 03-sendmail-q-v-queuewarn-first.txt (Timeout.queuewarn=1s,
// 03-dsn-delay-warning.txt). Debian's MTA has PrivacyOptions=nobodyreturn.
func TestReferenceRuns(t *testing.T) {
	tests := []struct {
		name    string
		queue   string // directory under ../testdata holding qf/df6AP4T98X005913
		now     int64
		sched   func(c *Config)
		dsnFile string
		newID   string
		vFile   string // reference -v capture, compared up to its first local delivery
		logLine string
	}{
		{"queuereturn", "after-retries", 1795581059, func(c *Config) { c.Schedule.QueueReturn = time.Second },
			"03-dsn-queuereturn-timeout.txt", "6AP4Uxp1008257", "",
			"6AP4T98X005913: 6AP4Uxp1008257: sender notify: Cannot send message for 1 second"},
		{"queuewarn", "one", 1795581009, func(c *Config) { c.Schedule.QueueWarn = time.Second },
			"03-dsn-delay-warning.txt", "6AP4U93k007241", "03-sendmail-q-v-queuewarn-first.txt",
			"6AP4T98X005913: 6AP4U93k007241: sender notify: Warning: could not send message for past 1 second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { tt.sched(c); c.NoBodyReturn = true })
			e.failures()
			for _, f := range []string{"qf6AP4T98X005913", "df6AP4T98X005913"} {
				data, err := os.ReadFile(filepath.Join("..", "testdata", tt.queue, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(e.dir, f), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e.clk.t = time.Unix(tt.now, 0).UTC()
			var v bytes.Buffer
			if st := e.run(RunOptions{Verbose: &v}); st.DSNs != 1 {
				t.Fatalf("stats %+v", st)
			}
			d := e.mail.deliveries()
			last := d[len(d)-1]
			got := last.header + "\n" + last.body
			newID := regexp.MustCompile(`id (\w+);`).FindStringSubmatch(got)[1]
			fix := func(s string) string { return strings.ReplaceAll(s, newID, tt.newID) }
			got = strings.TrimRight(fix(got), "\n") + "\n"
			if want := capture(t, "../../internal/dsn/testdata/"+tt.dsnFile, 2, "Content-Length:"); got != want {
				t.Errorf("DSN differs from the reference:\n--- got\n%s\n--- want\n%s", got, want)
			}
			if last.rcpts[0] != "<alice@refhost.example.org>" || last.sender != "MAILER-DAEMON@refhost.example.org" {
				t.Errorf("envelope %q → %v", last.sender, last.rcpts)
			}
			if logs := fix(e.log.String()); !strings.Contains(logs, ": "+tt.logLine+"\n") {
				t.Errorf("log lacks %q:\n%s", tt.logLine, logs)
			}
			if tt.vFile != "" {
				want := capture(t, "testdata/"+tt.vFile, 1, "")
				want = want[:strings.Index(want, "Connecting to local")]
				want = want[:strings.LastIndex(want, "\n")+1]
				gotV := strings.ReplaceAll(v.String(), e.dir, "/var/spool/mqueue")
				if !strings.HasPrefix(gotV, want) {
					t.Errorf("-v differs:\n--- got\n%s--- want prefix\n%s", gotV, want)
				}
			}
		})
	}
}

// capture reads a reference capture without its first skip lines, lines
// starting with drop, and the "# exit status" trailer.
func capture(t *testing.T, p string, skip int, drop string) string {
	t.Helper()
	ref, err := os.ReadFile(p)
	if err != nil {
		t.Skip("reference capture not available:", err)
	}
	var want []string
	for _, l := range strings.Split(string(ref), "\n")[skip:] {
		if drop != "" && strings.HasPrefix(l, drop) {
			continue
		}
		if strings.HasPrefix(l, "# exit status") {
			break
		}
		want = append(want, l)
	}
	return strings.TrimRight(strings.Join(want, "\n"), "\n") + "\n"
}
