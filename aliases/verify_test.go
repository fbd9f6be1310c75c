package aliases

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestVerifyEach replays 04-sendmail-bv-each.txt: one -bv call per address,
// output and exit status.
func TestVerifyEach(t *testing.T) {
	f := newRefFixture(t)
	x := f.expander(Options{})
	lines := refBody(t, "04-sendmail-bv-each.txt")
	cmd := regexp.MustCompile(`^\$ sendmail -bv '(.*)'$`)
	exit := regexp.MustCompile(`^\[exit status (\d+)\]$`)
	var arg string
	var want []string
	n := 0
	for _, l := range lines {
		if m := cmd.FindStringSubmatch(l); m != nil {
			arg, want = m[1], nil
			continue
		}
		if m := exit.FindStringSubmatch(l); m != nil {
			n++
			wantCode, _ := strconv.Atoi(m[1])
			var out bytes.Buffer
			code := x.Verify(&out, []string{arg}, false)
			got := f.unroot(out.String())
			w := strings.Join(want, "\n")
			if w != "" {
				w += "\n"
			}
			if got != w || code != wantCode {
				t.Errorf("sendmail -bv %q: exit %d, output\n%s\nwant exit %d, output\n%s", arg, code, got, wantCode, w)
			}
			continue
		}
		want = append(want, l)
	}
	if n != 26 {
		t.Errorf("replayed %d cases, want 26", n)
	}
}

// refArgs extracts the address arguments from a capture's command line.
func refArgs(t *testing.T, name string, skip int) []string {
	t.Helper()
	data := string(mustRead(t, "testdata/ref/"+name))
	first := strings.SplitN(data, "\n", 2)[0]
	i := strings.Index(first, "sendmail -bv")
	fields := splitShell(first[i:])
	return fields[skip:]
}

// splitShell splits a command line with double-quoted words.
func splitShell(s string) []string {
	var out []string
	var cur strings.Builder
	in, quote := false, false
	for _, c := range s {
		switch {
		case c == '"':
			quote = !quote
			in = true
		case c == ' ' && !quote:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// TestVerifyAll replays 04-sendmail-bv.txt (all addresses in one call:
// duplicates suppressed, errors first, send-list order) and
// 04-sendmail-bv-verbose.txt (-v notices).
func TestVerifyAll(t *testing.T) {
	f := newRefFixture(t)
	x := f.expander(Options{})
	for _, tc := range []struct {
		file    string
		skip    int
		verbose bool
		code    int
	}{
		{"04-sendmail-bv.txt", 2, false, 67},
		{"04-sendmail-bv-verbose.txt", 3, true, 0},
	} {
		args := refArgs(t, tc.file, tc.skip)
		var out bytes.Buffer
		code := x.Verify(&out, args, tc.verbose)
		want := strings.Join(refBody(t, tc.file), "\n") + "\n"
		if got := f.unroot(out.String()); got != want || code != tc.code {
			t.Errorf("%s %q: exit %d\n%s\nwant exit %d\n%s", tc.file, args, code, got, tc.code, want)
		}
	}
}

// TestExpnVrfy replays the EXPN and VRFY commands of the SMTP captures
// 01-smtp-expn-*.txt and 01-smtp-vrfy-*.txt against Expn and Vrfy, with
// the replies formatted as the SMTP server will.
func TestExpnVrfy(t *testing.T) {
	f := newRefFixture(t)
	x := f.expander(Options{})
	const myHost = "refhost.example.org"
	files := []string{"01-smtp-expn-a.txt", "01-smtp-expn-b.txt", "01-smtp-expn-c.txt",
		"01-smtp-vrfy-a.txt", "01-smtp-vrfy-b.txt", "01-smtp-vrfy-c.txt"}
	cases := 0
	for _, file := range files {
		lines := refBody(t, file)
		for i := 0; i < len(lines); i++ {
			l := lines[i]
			if !strings.HasPrefix(l, "C: VRFY") && !strings.HasPrefix(l, "C: EXPN") {
				continue
			}
			var want []string
			for j := i + 1; j < len(lines) && strings.HasPrefix(lines[j], "S: "); j++ {
				want = append(want, strings.TrimPrefix(lines[j], "S: "))
			}
			if len(want) == 1 && strings.HasPrefix(want[0], "503 ") {
				continue // before HELO: the SMTP server's business
			}
			verb, arg := l[3:7], strings.TrimSpace(l[7:])
			var ents []VrfyEntry
			var err error
			if verb == "VRFY" {
				e, serr := x.Vrfy(arg, myHost)
				ents = e
				if serr != nil {
					err = serr
				}
			} else {
				e, serr := x.Expn(arg, myHost)
				ents = e
				if serr != nil {
					err = serr
				}
			}
			var got []string
			if err != nil {
				got = append(got, err.Error())
			}
			for k, e := range ents {
				sep := "-"
				if k == len(ents)-1 {
					sep = " "
				}
				got = append(got, fmt.Sprintf("%d%s2.1.5 %s", e.Code, sep, e.Text()))
			}
			cases++
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("%s: %s %s:\n%s\nwant\n%s", file, verb, arg, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	}
	if cases < 25 {
		t.Errorf("only %d VRFY/EXPN cases replayed", cases)
	}
}

func TestCheckRecipient(t *testing.T) {
	f := newRefFixture(t)
	x := f.expander(Options{})
	for _, tc := range []struct{ in, want string }{
		{"<alice@localhost>", ""},
		{"<staff@localhost>", ""},
		{"<to-prog@refhost.example.org>", ""},
		{"<someone@remote.example>", ""},
		{"<nosuchuser@localhost>", "550 5.1.1 <nosuchuser@localhost>... User unknown"},
		{"<bad", "553 5.0.0 <bad... Unbalanced '<'"},
		{"/etc/passwd", "550 5.7.1 /etc/passwd... Cannot mail directly to files"},
		{"", "553 5.0.0 <>... User address required"},
	} {
		got := ""
		if err := x.CheckRecipient(tc.in); err != nil {
			got = err.Error()
		}
		if got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}
