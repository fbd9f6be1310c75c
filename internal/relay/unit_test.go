package relay

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/queue"
)

func folded(limit int, lines ...string) string {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	lw := newLineWriter(w, limit)
	for _, l := range lines {
		lw.lineString(l)
	}
	w.Flush()
	return b.String()
}

// sendmail's putxline: a line over the limit is cut after limit-1
// characters with "!", continued after a space; a dot is doubled at the
// start of a line and does not count.
func TestLineWriter(t *testing.T) {
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, tc := range []struct {
		name string
		in   string
		want string
	}{
		{"short", "abc", "abc\r\n"},
		{"empty", "", "\r\n"},
		{"dot", ".", "..\r\n"},
		{"exactly the limit", a(990), a(990) + "\r\n"},
		{"one over", a(991), a(989) + "!\r\n " + a(2) + "\r\n"},
		{"two cuts", a(2000), a(989) + "!\r\n " + a(988) + "!\r\n " + a(23) + "\r\n"},
		{"dot and long", "." + a(1000), "." + "." + a(988) + "!\r\n " + a(12) + "\r\n"},
		{"continuation starting with a dot", a(989) + ".x", a(989) + "!\r\n .x\r\n"},
	} {
		if got := folded(smtpLineLimit, tc.in); got != tc.want {
			t.Errorf("%s: got %q..., want %q...", tc.name, trunc(got), trunc(tc.want))
		}
	}
	// A line arriving in pieces is cut the same.
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	lw := newLineWriter(w, smtpLineLimit)
	for i := 0; i < 20; i++ {
		lw.write([]byte(a(100)))
	}
	lw.endLine()
	w.Flush()
	if b.String() != folded(smtpLineLimit, a(2000)) {
		t.Error("pieces folded differently")
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:20] + "…" + s[len(s)-20:]
	}
	return s
}

func TestWriteHeaderCut(t *testing.T) {
	h := "Subject: " + strings.Repeat("x", 3000) + "\nX-Two: a\n\tb\n"
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeHeader(newLineWriter(w, 0), []byte(h), "")
	w.Flush()
	lines := strings.Split(b.String(), "\r\n")
	if len(lines[0]) != maxHeaderLine || lines[1] != "X-Two: a" || lines[2] != "\tb" {
		t.Errorf("%d %q %q", len(lines[0]), lines[1], lines[2])
	}
}

func TestParseDest(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		domain, host, addr string
		port               int
		bad                bool
	}{
		{in: "Remote.Example.", domain: "remote.example"},
		{in: "remote.example:2525", domain: "remote.example", port: 2525},
		{in: "[mx.example]", host: "mx.example"},
		{in: "[mx.example]:587", host: "mx.example", port: 587},
		{in: "[192.0.2.1]", addr: "192.0.2.1"},
		{in: "[192.0.2.1]:26", addr: "192.0.2.1", port: 26},
		{in: "[IPv6:2001:db8::1]", addr: "2001:db8::1"},
		{in: "[ipv6:2001:db8::1]:25", addr: "2001:db8::1", port: 25},
		{in: "[2001:db8::1]", addr: "2001:db8::1"},
		{in: "[mx.example", bad: true},
		{in: "[mx.example]x", bad: true},
		{in: "remote.example:0", bad: true},
		{in: "remote.example:99999", bad: true},
		{in: "", bad: true},
		{in: "bad host", bad: true},
		{in: "[fe80::1%eth0]", bad: true},
	} {
		d, err := parseDest(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if tc.bad {
			continue
		}
		addr := ""
		if d.addr.IsValid() {
			addr = d.addr.String()
		}
		if d.domain != tc.domain || d.host != tc.host || addr != tc.addr || d.port != tc.port {
			t.Errorf("%q: %+v", tc.in, d)
		}
	}
}

// The texts sendmail gives connection errors (sm_errstring) and host
// status entries.
func TestFailureTexts(t *testing.T) {
	for _, tc := range []struct {
		errno int
		want  string
	}{
		{111, "Connection refused by mx.example."},
		{110, "Connection timed out with mx.example."},
		{104, "Connection reset by mx.example."},
		{int(syscall.EHOSTUNREACH), "mx.example.: no route to host"},
		{int(syscall.ENETUNREACH), "mx.example.: network is unreachable"},
	} {
		if got := errnoText(tc.errno, "mx.example."); got != tc.want {
			t.Errorf("errno %d: %q", tc.errno, got)
		}
	}
	f := statusFailure(hoststat.Status{Host: "mx.remote.example", Errno: 111, Exit: 75, DSN: "4.4.1"}, "mx.remote.example.")
	if f.st.Error() != "451 4.4.1 Connection refused by mx.remote.example." || f.relay != "mx.remote.example." {
		t.Errorf("refused: %v %q", f.st, f.relay)
	}
	f = statusFailure(hoststat.Status{Exit: 75, DSN: "4.5.0", Reply: "421 4.3.2 busy"}, "mx.example.")
	if f.st.Text != "421 4.3.2 busy" || f.st.Enhanced != "4.5.0" {
		t.Errorf("reply: %v", f.st)
	}
	f = statusFailure(hoststat.Status{Exit: 69, DSN: "5.5.0", Reply: "554 no"}, "mx.example.")
	if f.st.Temporary() || f.st.Text != "Service unavailable" {
		t.Errorf("unavailable: %v", f.st)
	}
	if netErrno(errors.New("x")) != errnoConnReset || netErrno(syscall.ECONNREFUSED) != errnoConnRefused {
		t.Error("netErrno")
	}
}

// The replies to RCPT mapped as sendmail's smtprcptstat.
func TestRcptFailure(t *testing.T) {
	for _, tc := range []struct {
		line string
		enh  bool
		want string
	}{
		{"250 2.1.5 Ok", true, ""},
		{"550 5.1.1 <a@b>: no", true, "550 5.1.1 User unknown"},
		{"550 no such user", false, "550 5.1.1 User unknown"},
		{"551 not local", false, "550 5.1.6 User unknown"},
		{"553 5.1.3 bad address", true, "550 5.1.3 User unknown"},
		{"554 5.7.1 relay denied", true, "554 5.7.1 Service unavailable"},
		{"552 too many", false, "554 5.2.2 Service unavailable"},
		{"450 4.2.0 busy", true, "450 4.2.0 450 4.2.0 busy"},
		{"452 full", false, "452 4.3.1 452 full"},
		{"300 what", false, "554 5.5.1 Remote protocol error"},
	} {
		r := &reply{code: int(tc.line[0]-'0')*100 + int(tc.line[1]-'0')*10 + int(tc.line[2]-'0'), lines: []string{tc.line}}
		if tc.enh {
			r.enh = enhancedCode(tc.line[4:])
		}
		st := rcptFailure(r, "mx.", "mx. [1]")
		got := ""
		if st != nil {
			got = st.Error()
		}
		if got != tc.want {
			t.Errorf("%q: %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestParseEHLO(t *testing.T) {
	r := &reply{code: 250, lines: []string{"250-mx.example", "250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME",
		"250-ENHANCEDSTATUSCODES", "250-STARTTLS", "250-AUTH=PLAIN", "250 DSN"}}
	e := parseEHLO(r)
	if !e.pipelining || !e.sizeOK || e.size != 10240000 || !e.eightBit || !e.enhanced || !e.startTLS || !e.dsn || e.smtpUTF8 {
		t.Errorf("%+v", e)
	}
	if e := parseEHLO(&reply{lines: []string{"250-x", "250 SIZE"}}); !e.sizeOK || e.size != 0 {
		t.Errorf("bare SIZE: %+v", e)
	}
	for in, want := range map[string]string{"5.1.1 x": "5.1.1", "2.0.0": "2.0.0", "5.1 x": "", "6.1.1 x": "", "4.7.12 y": "4.7.12", "x": ""} {
		if got := enhancedCode(in); got != want {
			t.Errorf("enhancedCode(%q) = %q", in, got)
		}
	}
}

// SIZE= is sendmail's readqf estimate for a queued message.
func TestSizeEstimate(t *testing.T) {
	j := &queue.Job{Headers: []queue.Header{{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
		{HasCond: true, Name: "Subject", Value: " host status demo"}}}
	// "H?P?Return-Path: <\x81g>" is 21 octets, "H??Subject: host status demo" 28.
	if got := sizeEstimate(j, 0, 2); got != 2+18+25 {
		t.Errorf("%d", got)
	}
	if got := sizeEstimate(nil, 10, 5); got != 16 {
		t.Errorf("without job: %d", got)
	}
}

func TestHopCount(t *testing.T) {
	h := "Received: a\n\tb\nreceived: c\nVia: x\nMail-From: y\nX400-Received: z\nX-Received: no\nSubject: Received: no\n"
	if n := hopCount([]byte(h)); n != 5 {
		t.Errorf("%d hops", n)
	}
}

func TestParseEightBitMode(t *testing.T) {
	for in, want := range map[string]EightBitMode{"pass8": Pass8, "p": Pass8, "mimefy": Mimefy, "Strict": Strict} {
		if got, err := ParseEightBitMode(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	if _, err := ParseEightBitMode("x"); err == nil {
		t.Error("x accepted")
	}
	if _, err := ParseEightBitMode(""); err == nil {
		t.Error("empty accepted")
	}
}

func TestTimeoutsFrom(t *testing.T) {
	set := map[string]time.Duration{"initial": time.Second, "datablock": 2 * time.Second, "starttls": 3 * time.Second}
	to := TimeoutsFrom(func(n string) time.Duration { return set[n] }).withDefaults()
	if to.Initial != time.Second || to.DataBlock != 2*time.Second || to.StartTLS != 3*time.Second ||
		to.Mail != 10*time.Minute || to.IConnect != to.Connect || to.Quit != 2*time.Minute {
		t.Errorf("%+v", to)
	}
}
