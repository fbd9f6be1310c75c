package relay

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/queue"
)

// The golden tests replay what sendmail 8.17 sent to the capture's test
// sinks (testdata/03-relay-outbound-smtp-*.txt, copied from the
// reference) and compare the client's session with it line for line:
// commands, parameters, recipient order, data lines with their folding
// and dot-stuffing, RSET and QUIT.

// captureSessions returns the C:/D:/S: lines of each session of a capture.
func captureSessions(t *testing.T, file string) [][]string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return splitSessions(string(b))
}

func splitSessions(s string) [][]string {
	var out [][]string
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.HasPrefix(line, "=== connection"):
			out = append(out, nil)
		case len(out) > 0 && (strings.HasPrefix(line, "C: ") || strings.HasPrefix(line, "D: ") || strings.HasPrefix(line, "S: ")):
			out[len(out)-1] = append(out[len(out)-1], line)
		}
	}
	return out
}

var sinkID = regexp.MustCompile(`SINK\d+`)

func normalize(lines []string, sizes bool) string {
	s := sinkID.ReplaceAllString(strings.Join(lines, "\n"), "SINK")
	if sizes {
		s = regexp.MustCompile(`SIZE=\d+`).ReplaceAllString(s, "SIZE=N")
	}
	return s
}

// dataOf rebuilds the header and body sendmail had from the D: lines:
// continuation lines made by its folding are joined again, the dot
// stuffing is undone.
func dataOf(lines []string) (header, body string) {
	var out []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "D: ") {
			continue
		}
		l = strings.TrimSuffix(strings.TrimPrefix(l, "D: "), "<CRLF>")
		if n := len(out); n > 0 && strings.HasSuffix(out[n-1], "!") && strings.HasPrefix(l, " ") && len(out[n-1]) >= 989 {
			out[n-1] = strings.TrimSuffix(out[n-1], "!") + l[1:]
			continue
		}
		out = append(out, l)
	}
	out = out[:len(out)-1] // the final dot
	for i, l := range out {
		if strings.HasPrefix(l, "..") {
			out[i] = l[1:]
		}
	}
	for i, l := range out {
		if l == "" {
			return strings.Join(out[:i], "\n") + "\n", strings.Join(out[i+1:], "\n") + "\n"
		}
	}
	return strings.Join(out, "\n") + "\n", ""
}

func acceptWorld(t *testing.T) (*world, *sink) {
	w := newWorld(t, nil)
	s := w.host("mx.accept.example", "127.0.0.12", &sink{mode: "accept"})
	w.mx("accept.example", "mx.accept.example")
	return w, s
}

// Session (2): a queued message (the qf is the capture's, so SIZE= is
// sendmail's own value, 338), one recipient, pipelined RCPT and DATA.
func TestCaptureQueuedMessage(t *testing.T) {
	want := captureSessions(t, "03-relay-outbound-smtp-accepted.txt")[1]
	w, s := acceptWorld(t)
	qf, err := os.ReadFile("testdata/qf6AP4WWik011158")
	if err != nil {
		t.Fatal(err)
	}
	j, err := queue.Parse("6AP4WWik011158", qf)
	if err != nil {
		t.Fatal(err)
	}
	header, body := dataOf(want)
	m := newMsg("accept.example", header, body, "user@accept.example")
	m.d.Job = j
	res := w.deliver(m)
	if res[0].Err != nil {
		t.Fatalf("not sent: %v", res[0].Err)
	}
	got := splitSessions(s.transcript())[0]
	if g, w := normalize(got, false), normalize(want, false); g != w {
		t.Errorf("session differs from sendmail's:\n--- got\n%s\n--- sendmail\n%s", g, w)
	}
	if res[0].Relay != "mx.accept.example. [127.0.0.12]" || res[0].DSN != "2.0.0" || !strings.HasPrefix(res[0].Stat, "Ok: queued as SINK") {
		t.Errorf("result %+v", res[0])
	}
}

// Session (1): 8BITMIME, ENVID, RET=HDRS, NOTIFY and ORCPT passed on, a
// dot-stuffed line and a 1500-character line split as sendmail splits it
// (989 characters and "!", then a line starting with a space). SIZE= is
// left out of the comparison: sendmail announced the size it had
// collected over SMTP, posthorn always sends from the queue files.
func TestCaptureDSNParametersAndLongLine(t *testing.T) {
	want := captureSessions(t, "03-relay-outbound-smtp-accepted.txt")[0]
	w, s := acceptWorld(t)
	header, body := dataOf(want)
	if !strings.Contains(body, strings.Repeat("0123456789", 150)) || !strings.Contains(body, "\n.a dot-stuffed line\n") {
		t.Fatalf("body not rebuilt: %q", body)
	}
	m := newMsg("accept.example", header, body, "<other@accept.example>", "<user@accept.example>")
	m.d.Sender = "sender@client.example"
	m.d.Job.BodyType = "8BITMIME"
	m.d.Job.EnvID = "ENV-0001"
	m.d.Job.SetFlag(queue.FlagRetParam, true)
	m.d.Job.SetFlag(queue.FlagRetHdrs, true)
	m.d.Rcpts[1].Recipient.Flags = "PNSF"
	m.d.Rcpts[1].Recipient.ORcpt = "rfc822;user@accept.example"
	res := w.deliver(m)
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("rcpt %d: %v", i, r.Err)
		}
	}
	got := splitSessions(s.transcript())[0]
	if g, w := normalize(got, true), normalize(want, true); g != w {
		t.Errorf("session differs from sendmail's:\n--- got\n%s\n--- sendmail\n%s", g, w)
	}
	// The peer offers DSN: the receipt is its business, not a relayed one.
	if res[1].Relayed {
		t.Error("relayed to a DSN-aware peer")
	}
}

// Session (3): a 3000-character header line is cut at 2303 characters and
// split like a long body line.
func TestCaptureLongHeader(t *testing.T) {
	want := captureSessions(t, "03-relay-outbound-smtp-accepted.txt")[2]
	w, s := acceptWorld(t)
	header, body := dataOf(want)
	header = strings.Replace(header, strings.Repeat("h", 2288), strings.Repeat("h", 3000), 1)
	m := newMsg("accept.example", header, body, "user@accept.example")
	m.d.Sender = "root@refhost.example.org"
	if res := w.deliver(m); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got := splitSessions(s.transcript())[0]
	if g, w := normalize(got, true), normalize(want, true); g != w {
		t.Errorf("session differs from sendmail's:\n--- got\n%s\n--- sendmail\n%s", g, w)
	}
}

// The rejected sessions: every RCPT refused; the sink still says 354 to
// the pipelined DATA and gets an empty message, or (strict) refuses DATA
// and gets RSET.
func TestCaptureAllRecipientsRejected(t *testing.T) {
	sessions := captureSessions(t, "03-relay-outbound-smtp-rejected.txt")
	for _, tc := range []struct {
		name    string
		session int
		strict  bool
	}{{"354", 1, false}, {"strict", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil)
			s := w.host("mx.bounce.example", "127.0.0.11", &sink{mode: "reject-rcpt", strict: tc.strict})
			w.mx("bounce.example", "mx.bounce.example")
			m := newMsg("bounce.example", simpleHeader, "x\n", "user@bounce.example")
			res := w.deliver(m)
			st := res[0].Err
			if st == nil {
				t.Fatal("sent")
			}
			if g, want := normalize(splitSessions(s.transcript())[0], true), normalize(sessions[tc.session], true); g != want {
				t.Errorf("session differs from sendmail's:\n--- got\n%s\n--- sendmail\n%s", g, want)
			}
			r := res[0]
			if r.Relay != "mx.bounce.example. [127.0.0.11]" || r.RemoteMTA != "mx.bounce.example." ||
				r.Reply != "550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink" {
				t.Errorf("result %+v", r)
			}
			// The DSN transcript, as 03-dsn-permanent-failure-5xx-and-host-unknown.txt.
			wantXf := "... while talking to mx.bounce.example.:\n>>> DATA\n<<< 550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink\n"
			if tc.strict {
				wantXf += "<<< 554 5.5.1 Error: no valid recipients\n"
			}
			if m.transcript.String() != wantXf {
				t.Errorf("transcript:\n%s\nwant:\n%s", m.transcript.String(), wantXf)
			}
		})
	}
}

// The -v output of a queue run (04-hoststat-enabled-queue-run.txt): the
// connection, the dialogue with every reply line, ">>> ." for the data.
func TestCaptureVerbose(t *testing.T) {
	capture, err := os.ReadFile("testdata/04-hoststat-enabled-queue-run.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(capture), "\n")
	// The accept.example delivery: from "Connecting" to the 250 after ">>> .".
	var want []string
	for i, l := range lines {
		if strings.HasPrefix(l, "user@accept.example... Connecting") {
			for _, x := range lines[i:] {
				if strings.HasPrefix(x, "user@accept.example... Sent") {
					break
				}
				want = append(want, x)
			}
			break
		}
	}
	w, _ := acceptWorld(t)
	m := newMsg("accept.example", simpleHeader, "x\n", "user@accept.example")
	qf, _ := os.ReadFile("testdata/qf6AP4WWik011158")
	m.d.Job, _ = queue.Parse("6AP4WWik011158", qf)
	if res := w.deliver(m); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got := strings.TrimSuffix(m.verbose.String(), ">>> QUIT\n221 2.0.0 Bye\n")
	if g, want := sinkID.ReplaceAllString(got, "SINK"), sinkID.ReplaceAllString(strings.Join(want, "\n")+"\n", "SINK"); g != want {
		t.Errorf("-v:\n%s\nwant:\n%s", g, want)
	}
	if m.transcript.Len() != 0 {
		t.Errorf("transcript of a success: %q", m.transcript.String())
	}
}

// A message whose body is read through a plain io.Reader (not the df's
// ReaderAt) goes out the same.
func TestPlainReaderBody(t *testing.T) {
	w, s := acceptWorld(t)
	m := newMsg("accept.example", simpleHeader, "", "user@accept.example")
	m.d.Body = strings.NewReader("line one\n.\nline three\n")
	if res := w.deliver(m); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got := s.transcript()
	for _, want := range []string{"D: line one<CRLF>", "D: ..<CRLF>", "D: line three<CRLF>\nD: .<CRLF>"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
}
