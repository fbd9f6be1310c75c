package addr

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCaptures replays every MAIL FROM/RCPT TO argument found in the
// reference SMTP captures (testdata/smtp, copied from shared/reference):
// where sendmail refused the address itself (553 Unbalanced, prescan,
// User address required) ParsePath must give the same reply byte for byte;
// everywhere else it must accept the address; and the MAIL reply must echo
// the address as written.
func TestCaptures(t *testing.T) {
	files, err := filepath.Glob("testdata/smtp/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatal("no captures", err)
	}
	cmd := regexp.MustCompile(`(?i)^C: (MAIL FROM|RCPT TO):(.*)$`)
	addrErr := regexp.MustCompile(`^553 5\.[01]\.[01] .*\.\.\. (Unbalanced|prescan|User address required)`)
	senderOK := regexp.MustCompile(`^250 2\.1\.0 (.*)\.\.\. Sender ok$`)
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			m := cmd.FindStringSubmatch(strings.TrimSuffix(l, "<CRLF>"))
			if m == nil || strings.Contains(l, "...[") || i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "S: ") {
				continue
			}
			reply := strings.TrimPrefix(lines[i+1], "S: ")
			kind := Sender
			if strings.EqualFold(m[1], "RCPT TO") {
				kind = Recipient
			}
			a, _, err := ParsePath(m[2], kind)
			checked++
			switch {
			case strings.TrimSpace(m[2]) == "":
				if !errors.Is(err, ErrNoPath) {
					t.Errorf("%s:%d %q: %v, want ErrNoPath", f, i+2, l, err)
				}
			case addrErr.MatchString(reply):
				if got := errText(err); got != reply {
					t.Errorf("%s:%d %q:\n got %q\nwant %q", f, i+2, l, got, reply)
				}
			default:
				if err != nil {
					t.Errorf("%s:%d %q: %v, sendmail said %q", f, i+2, l, err, reply)
				}
				if e := senderOK.FindStringSubmatch(reply); e != nil && a.Raw != e[1] {
					t.Errorf("%s:%d echo %q, sendmail %q", f, i+2, a.Raw, e[1])
				}
			}
		}
	}
	t.Logf("%d commands checked", checked)
	if checked < 50 {
		t.Errorf("only %d commands checked", checked)
	}
}
