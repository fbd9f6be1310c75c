package test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Issue 14, bad input through the daemon: SMTP smuggling sequences, NUL
// and 8-bit bytes, line breaks in envelope addresses and HELO, over-long
// lines, headers and messages. Each gets a precise refusal or is stored
// safely: no qf line or header field comes from anywhere but the header
// the client sent, and a message ends only at <CRLF>.<CRLF>.

// rawSession sends pre (one line at a time, each answered), then data in
// one write after the 354 (with QUIT behind it), and returns every reply
// line up to the server's close.
func rawSession(t *testing.T, addr string, pre []string, data string) []string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	var replies []string
	readReply := func() string {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return ""
			}
			l = strings.TrimRight(l, "\r\n")
			replies = append(replies, l)
			if len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	readReply()
	for _, p := range pre {
		c.Write([]byte(p + "\r\n"))
		readReply()
	}
	c.Write([]byte(data + "QUIT\r\n"))
	for readReply() != "" {
	}
	return replies
}

// strictData reads a DATA stream as RFC 5321 defines it: lines end in
// CRLF only, the message ends at a line holding one ".", leading dots
// are unstuffed. bare is true when a CR or LF not part of a CRLF comes
// before the end (posthorn then answers 421 and stores nothing); body is
// the text after the header's empty line with LF line ends, as the df
// holds it; rest is what follows the end.
func strictData(data string) (body string, rest string, bare bool) {
	var lines []string
	pos := 0
	for {
		i := strings.IndexAny(data[pos:], "\r\n")
		if i < 0 {
			return "", "", false // never ended: not generated
		}
		i += pos
		if data[i] == '\n' || i+1 >= len(data) || data[i+1] != '\n' {
			return "", "", true
		}
		line := data[pos:i]
		pos = i + 2
		if line == "." {
			break
		}
		lines = append(lines, strings.TrimPrefix(line, "."))
	}
	for i, l := range lines {
		if l == "" {
			return strings.Join(append(lines[i+1:], ""), "\n"), data[pos:], false
		}
	}
	return "", data[pos:], false
}

// acceptedIDs are the queue IDs of the 250 replies to ends of DATA.
func acceptedIDs(replies []string) []string {
	re := regexp.MustCompile(`^250 2\.0\.0 (\S+) Message accepted for delivery$`)
	var ids []string
	for _, l := range replies {
		if m := re.FindStringSubmatch(l); m != nil {
			ids = append(ids, m[1])
		}
	}
	return ids
}

// headerNames are the field names of a qf's H lines.
func headerNames(qf string) []string {
	var names []string
	for _, l := range strings.Split(qf, "\n") {
		if !strings.HasPrefix(l, "H") {
			continue
		}
		l = l[1:]
		if strings.HasPrefix(l, "?") {
			if k := strings.Index(l[1:], "?"); k >= 0 {
				l = l[k+2:]
			}
		}
		name, _, _ := strings.Cut(l, ":")
		names = append(names, name)
	}
	return names
}

// TestSmugglingSequences: every sequence of up to five <CR>, <LF> and
// "." put in the middle of a message, followed either by a whole second
// transaction (MAIL, RCPT, DATA, a message "SMUGGLED") or by the proper
// end. Against what an RFC 5321 reader makes of the same bytes: a bare CR
// or LF before the end is refused with 421 and nothing of the session is
// stored; otherwise the message is stored with exactly the body the
// strict reader sees, and never a second one: when the strict reader ends
// the first early, the second transaction's text arrives before its 354
// and is refused as a pipelining violation.
func TestSmugglingSequences(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	q := r.path("spool/mqueue")
	var seqs []string
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		if prefix != "" {
			seqs = append(seqs, prefix)
		}
		if n == 0 {
			return
		}
		for _, b := range []string{"\r", "\n", "."} {
			gen(prefix+b, n-1)
		}
	}
	gen("", 5)
	tails := map[string]string{
		"smuggle": "MAIL FROM:<evil@client.example>\r\nRCPT TO:<root@localhost>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nsmuggled\r\n.\r\n",
		"end":     "\r\n.\r\n",
	}
	pre := []string{"EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>", "DATA"}
	var refused, stored, split int
	for _, seq := range seqs {
		for tailName, tail := range tails {
			data := "Subject: s\r\n\r\nbody" + seq + tail
			what := fmt.Sprintf("%q+%s", seq, tailName)
			wantBody, rest, bare := strictData(data)
			replies := rawSession(t, r.addr(), pre, data)
			ids := acceptedIDs(replies)
			if bare {
				refused++
				last := ""
				for _, l := range replies {
					if strings.HasPrefix(l, "421 ") {
						last = l
					}
				}
				if last != "421 4.5.0 Bare linefeed (LF) not allowed" && last != "421 4.5.0 Bare carriage return (CR) not allowed" {
					t.Errorf("%s: a bare CR/LF before the end: replies %q", what, replies)
				}
				if len(ids) != 0 {
					t.Errorf("%s: stored %v", what, ids)
				}
			} else {
				stored++
				if len(ids) == 0 {
					t.Errorf("%s: not stored: %q", what, replies)
				} else {
					df, _ := os.ReadFile(filepath.Join(q, "df"+ids[0]))
					if string(df) != wantBody {
						t.Errorf("%s: df %q, want %q", what, df, wantBody)
					}
				}
				// Ended before the client's second transaction: that one is
				// the client's own, but its message text came before the
				// 354, which sendmail and posthorn refuse as a pipelining
				// violation.
				if strings.Contains(rest, "SMUGGLED") {
					split++
					if !slices.Contains(replies, "554 5.5.0 SMTP protocol error") {
						t.Errorf("%s: the text pipelined before the 354 was not refused: %q", what, replies)
					}
				}
				if len(ids) > 1 {
					t.Errorf("%s: %d messages stored from one: %q", what, len(ids), replies)
				}
			}
			// Whatever was stored: only the client's own header field and
			// the ones posthorn adds; every qf parses as one job.
			for _, id := range ids {
				qf, err := os.ReadFile(filepath.Join(q, "qf"+id))
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				for _, n := range headerNames(string(qf)) {
					switch n {
					case "Return-Path", "Received", "Date", "From", "Message-Id", "Subject":
					default:
						t.Errorf("%s: header field %q in qf%s", what, n, id)
					}
				}
				os.Remove(filepath.Join(q, "qf"+id))
				os.Remove(filepath.Join(q, "df"+id))
			}
			if left := countFiles(t, q, "qf") + countFiles(t, q, "df") + countFiles(t, q, "tf"); left != 0 {
				t.Fatalf("%s: %d queue files not accounted for", what, left)
			}
		}
	}
	t.Logf("%d sequences x %d continuations: %d refused as bare CR/LF (nothing stored), %d stored exactly as an RFC 5321 reader reads them (%d of them ended early, and the message text that followed before a 354 was refused with 554 5.5.0)",
		len(seqs), len(tails), refused, stored, split)
}

// TestBadBytesInDialogue: NUL, CR and 8-bit bytes where they do not
// belong, and over-long lines; each answered precisely, and what is
// stored is on the lines it belongs to.
func TestBadBytesInDialogue(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly", "O MaxMessageSize=2000000")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	q := r.path("spool/mqueue")
	ehlo, mail, rcpt := "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>"
	for _, tc := range []struct {
		name string
		cmds []string
		want string // the last reply
	}{
		{"NUL in EHLO", []string{"EHLO a\x00b"}, "501 5.0.0 Invalid domain name"},
		{"CR in HELO", []string{"HELO a\rb"}, "501 5.0.0 Invalid domain name"},
		{"8-bit HELO", []string{"HELO caf\xc3\xa9.example"}, "501 5.0.0 Invalid domain name"},
		{"NUL in MAIL", []string{ehlo, "MAIL FROM:<a\x00b@client.example>"}, `501 5.1.7 Syntax error in mailbox address "a?b@client.example" (non-printable character)`},
		{"CR in MAIL", []string{ehlo, "MAIL FROM:<a\rb@client.example>"}, `501 5.1.7 Syntax error in mailbox address "a?b@client.example" (non-printable character)`},
		{"CR after MAIL's path", []string{ehlo, "MAIL FROM:<a@client.example>\rRCPT TO:<root@localhost>"}, `501 5.1.7 Syntax error in mailbox address "a@client.example>?RCPT" (non-printable character)`},
		{"quoted CR in MAIL", []string{ehlo, "MAIL FROM:<\"a\rb\"@client.example>"}, `501 5.1.7 Syntax error in mailbox address ""a?b"@client.example" (non-printable character)`},
		{"NUL in RCPT", []string{ehlo, mail, "RCPT TO:<ro\x00ot@localhost>"}, `501 5.1.3 Syntax error in mailbox address "ro?ot@localhost" (non-printable character)`},
		{"CR in RCPT", []string{ehlo, mail, "RCPT TO:<ro\rot@localhost>"}, `501 5.1.3 Syntax error in mailbox address "ro?ot@localhost" (non-printable character)`},
		{"CR in VRFY", []string{ehlo, "VRFY ro\rot"}, `501 5.1.7 Syntax error in mailbox address "ro?ot" (non-printable character)`},
		{"command line over 2048 bytes", []string{ehlo, "NOOP " + strings.Repeat("x", 2100)}, "421 4.7.0 posthorn.test Command too long, possible attack localhost [127.0.0.1]"},
	} {
		got := rawSession(t, r.addr(), tc.cmds, "")
		last := ""
		for _, l := range got {
			if !strings.HasPrefix(l, "221 ") {
				last = l
			}
		}
		if last != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, last, tc.want)
		}
	}
	if n := countFiles(t, q, "qf"); n != 0 {
		t.Fatalf("%d jobs queued by refused commands", n)
	}

	pre := []string{ehlo, mail, rcpt, "DATA"}
	longLine := strings.Repeat("L", 1<<20)
	for _, tc := range []struct {
		name           string
		data           string
		want           string // the reply to the end of DATA (prefix)
		qfHas, dfEqual string
	}{
		{"NUL in a header and the body", "Subject: a\x00b\r\nX-Y: 1\r\n\r\nbody\x00nul\r\n.\r\n", "250 2.0.0 ", "\nH??Subject: ab\nH??X-Y: 1\n", "body\x00nul\n"},
		{"8-bit header bytes", "Subject: caf\xc3\xa9 \xff\xfe\r\n\r\nb\r\n.\r\n", "250 2.0.0 ", "\nH??Subject: caf\xc3\xa9 \xff\xfe\n", "b\n"},
		{"CR in a header", "Subject: a\rBcc: x@y\r\n\r\nb\r\n.\r\n", "421 4.5.0 Bare carriage return (CR) not allowed", "", ""},
		{"a 1 MiB body line", "Subject: long\r\n\r\n" + longLine + "\r\n.\r\n", "250 2.0.0 ", "\nH??Subject: long\n", longLine + "\n"},
		{"over MaxMessageSize", "Subject: big\r\n\r\n" + strings.Repeat(longLine[:1000]+"\r\n", 2100) + ".\r\n", "552 5.2.3 Message exceeds maximum fixed size (2000000)", "", ""},
		{"headers over MaxHeadersLength", "Subject: big\r\nX-Big: " + strings.Repeat("h", 40000) + "\r\n\r\nb\r\n.\r\n", "552 5.6.0 Headers too large (32768 max)", "", ""},
	} {
		got := rawSession(t, r.addr(), pre, tc.data)
		var reply string
		for _, l := range got {
			if l != "" && l[0] != '2' && l[0] != '3' || strings.HasPrefix(l, "250 2.0.0 ") {
				reply = l
				break
			}
		}
		if !strings.HasPrefix(reply, tc.want) {
			t.Errorf("%s: reply %q, want %q…", tc.name, reply, tc.want)
			continue
		}
		ids := acceptedIDs(got)
		if tc.qfHas == "" {
			if len(ids) != 0 || countFiles(t, q, "qf") != 0 {
				t.Errorf("%s: stored", tc.name)
			}
			continue
		}
		if len(ids) != 1 {
			t.Errorf("%s: %d messages stored", tc.name, len(ids))
			continue
		}
		qf, _ := os.ReadFile(filepath.Join(q, "qf"+ids[0]))
		df, _ := os.ReadFile(filepath.Join(q, "df"+ids[0]))
		if !bytes.Contains(qf, []byte(tc.qfHas)) || bytes.IndexByte(qf, 0) >= 0 || bytes.IndexByte(qf, '\r') >= 0 {
			t.Errorf("%s: qf\n%q", tc.name, qf)
		}
		if string(df) != tc.dfEqual {
			t.Errorf("%s: df of %d bytes, want %d", tc.name, len(df), len(tc.dfEqual))
		}
		os.Remove(filepath.Join(q, "qf"+ids[0]))
		os.Remove(filepath.Join(q, "df"+ids[0]))
	}
}
