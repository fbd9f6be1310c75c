package dsn

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/status"
)

func TestWants(t *testing.T) {
	all := []Action{Failed, Delayed, Delivered, DeliveredToList, Relayed, Expanded}
	tests := []struct {
		n    Notify
		want []bool // per action in all
	}{
		{0, []bool{true, true, false, false, false, false}},
		{NotifyNever, []bool{false, false, false, false, false, false}},
		{NotifySuccess, []bool{false, false, true, true, true, true}},
		{NotifyFailure, []bool{true, false, false, false, false, false}},
		{NotifyDelay, []bool{false, true, false, false, false, false}},
		{NotifySuccess | NotifyFailure | NotifyDelay, []bool{true, true, true, true, true, true}},
	}
	for _, tt := range tests {
		for i, a := range all {
			if got := Wants(tt.n, a); got != tt.want[i] {
				t.Errorf("Wants(%q, %v) = %v", tt.n, a, got)
			}
		}
	}
}

// 01-smtp-mail-rcpt-errors.txt: NOTIFY=BOGUS, NOTIFY=NEVER,SUCCESS.
func TestParseNotify(t *testing.T) {
	tests := []struct {
		in   string
		want Notify
		err  string
	}{
		{in: "SUCCESS,FAILURE,DELAY", want: NotifySuccess | NotifyFailure | NotifyDelay},
		{in: "success", want: NotifySuccess},
		{in: "NEVER", want: NotifyNever},
		{in: "BOGUS", err: `501 5.5.4 Bad argument "BOGUS"  to NOTIFY`},
		{in: "NEVER,SUCCESS", err: `501 5.5.4 Bad argument "NEVER"  to NOTIFY`},
		{in: "SUCCESS,NEVER", err: `501 5.5.4 Bad argument "SUCCESS"  to NOTIFY`},
		{in: "", err: `501 5.5.4 Bad argument ""  to NOTIFY`},
	}
	for _, tt := range tests {
		n, err := ParseNotify(tt.in)
		got := ""
		if err != nil {
			got = status.From(err).Error()
		}
		if got != tt.err || n != tt.want {
			t.Errorf("ParseNotify(%q) = %v, %q; want %v, %q", tt.in, n, got, tt.want, tt.err)
		}
		if err == nil && n.String() != strings.ToUpper(tt.in) {
			t.Errorf("String() = %q", n.String())
		}
	}
}

func TestInterval(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "zero seconds"},
		{time.Second, "1 second"},
		{90 * time.Second, "1 minute, 30 seconds"},
		{4 * time.Hour, "4 hours"},
		{5 * 24 * time.Hour, "5 days"},
		{9*24*time.Hour + 3*time.Hour, "1 week, 2 days, 3 hours"},
		{1500 * time.Millisecond, "1 second"},
	}
	for _, tt := range tests {
		if got := Interval(tt.d); got != tt.want {
			t.Errorf("Interval(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestAddressee(t *testing.T) {
	tests := []struct {
		sender string
		kind   Kind
		origPM bool
		to     string
		rcpt   string
		sent   Kind
		ok     bool
	}{
		{"<alice@x>", Failure, false, "<alice@x>", "alice@x", Failure, true},
		{"root", Failure, false, "root", "root", Failure, true},
		{"<alice@x>", Delay, false, "<alice@x>", "alice@x", Delay, true},
		{"<alice@x>", Receipt, false, "<alice@x>", "alice@x", Receipt, true},
		{"<>", Failure, false, "postmaster", "postmaster", PostmasterNotify, true},
		{"", Failure, false, "postmaster", "postmaster", PostmasterNotify, true},
		{"<>", Failure, true, "", "", Failure, false}, // the double bounce failed: dropped
		{"<>", Delay, false, "", "", Delay, false},
		{"<>", Receipt, false, "", "", Receipt, false},
		{"<owner-list@x>", Delay, false, "", "", Delay, false},
		{"list-request", Delay, false, "", "", Delay, false},
		{"<owner-list@x>", Failure, false, "<owner-list@x>", "owner-list@x", Failure, true},
		{"<alice@x>", PostmasterNotify, false, "postmaster", "postmaster", PostmasterNotify, true},
	}
	for _, tt := range tests {
		to, rcpt, k, ok := Addressee(tt.sender, tt.kind, tt.origPM, "")
		if to != tt.to || rcpt != tt.rcpt || k != tt.sent || ok != tt.ok {
			t.Errorf("Addressee(%q, %d, %v) = %q %q %d %v", tt.sender, tt.kind, tt.origPM, to, rcpt, k, ok)
		}
	}
	if to, rcpt, _, _ := Addressee("<>", Failure, false, "<hostmaster@x>"); to != "<hostmaster@x>" || rcpt != "hostmaster@x" {
		t.Errorf("DoubleBounce: %q %q", to, rcpt)
	}
}

func TestIsPostmasterNotify(t *testing.T) {
	if !IsPostmasterNotify([]byte("Subject: x\nauto-submitted:  auto-generated (postmaster-notification)\n")) {
		t.Error("not recognised")
	}
	if IsPostmasterNotify([]byte("Subject: postmaster-notification\nAuto-Submitted: auto-generated (failure)\n")) {
		t.Error("false positive")
	}
}

func baseReport() Report {
	return Report{
		Kind: Failure, Hostname: "mx.example", Version: "posthorn", QueueID: "NEWID",
		Sender: "<alice@example>", Arrival: at("04:00:00"), ReceivedFrom: "localhost [127.0.0.1]",
		Header: []byte("Subject: hi\n"), Body: []byte("body\n"), Now: at("05:00:00"), Transcript: []string{},
		Recipients: []Recipient{{Address: "<a@x>", User: "a@x", FinalRecipient: "RFC822; a@x", Action: Failed, Status: "5.1.1"}},
	}
}

func TestBuildRules(t *testing.T) {
	r := baseReport()
	r.Recipients[0].Notify = NotifyNever
	if _, err := Build(&r); !errors.Is(err, ErrNoReport) {
		t.Errorf("NOTIFY=NEVER only: %v", err)
	}

	r = baseReport()
	r.Recipients = append(r.Recipients,
		Recipient{Address: "<b@x>", User: "b@x", Action: Failed, Notify: NotifyNever},
		Recipient{Address: "<c@x>", User: "c@x", Action: Failed, Notify: NotifySuccess},
		Recipient{Address: "<d@x>", User: "d@x", Action: Delivered}, // no NOTIFY=SUCCESS: not in a report
	)
	m, err := Build(&r)
	if err != nil {
		t.Fatal(err)
	}
	body := string(m.Body)
	if !strings.Contains(body, "<a@x>") || strings.Contains(body, "b@x") || strings.Contains(body, "c@x") || strings.Contains(body, "d@x") {
		t.Errorf("recipients not filtered by NOTIFY:\n%s", body)
	}
	if m.Sender != "" || m.Recipient != "alice@example" {
		t.Errorf("envelope %q -> %q", m.Sender, m.Recipient)
	}

	r = baseReport()
	r.Header = []byte("Subject: x\nAuto-Submitted: auto-generated (postmaster-notification)\n")
	r.Sender = "<>"
	if _, err := Build(&r); !errors.Is(err, ErrNoReport) {
		t.Errorf("failed postmaster notify: %v", err)
	}
}

func TestBuildDetails(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip(err)
	}
	r := baseReport()
	r.Now = r.Now.In(ny)
	r.EightBit = true
	r.Return = Full
	r.EnvID = "a+2Bb+"
	r.Transcript = nil
	r.Body = []byte("no final newline")
	long := "<" + strings.Repeat("x", 300) + "@example>"
	r.Recipients[0].Address = long
	r.Recipients[0].User = "localuser"
	r.Recipients[0].FinalRecipient = ""
	r.Recipients[0].Diagnostic = "550 5.1.1 bad\r\ninjected"
	m, err := Build(&r)
	if err != nil {
		t.Fatal(err)
	}
	h, b := string(m.Header), string(m.Body)
	for _, want := range []string{
		"Date: Wed, 25 Nov 2026 00:00:00 -0500\n",
		"Message-Id: <202611250500.NEWID@mx.example>\n",
		"boundary=\"NEWID.1795582800/mx.example\"\n",
		"Content-Transfer-Encoding: 8bit\nSubject: Returned mail: see transcript for details\n",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("header lacks %q:\n%s", want, h)
		}
	}
	for _, want := range []string{
		"The original message was received at Tue, 24 Nov 2026 23:00:00 -0500\n",
		"\n" + long[:100] + "..." + long[len(long)-100:] + "\n",
		"   ----- Transcript of session is unavailable -----\n",
		"Original-Envelope-Id: a+b+\n",
		"Final-Recipient: rfc822; localuser@mx.example\nAction: failed\n",
		"Diagnostic-Code: SMTP; 550 5.1.1 bad  injected\n",
		"Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\nSubject: hi\n\nno final newline\n\n--NEWID",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("body lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "X-Actual-Recipient") {
		t.Error("X-Actual-Recipient equal to Final-Recipient was written")
	}
	if got := string(m.Bytes()); got != h+"\n"+b {
		t.Error("Bytes() is not header + blank line + body")
	}
}

func TestDelayedWillRetry(t *testing.T) {
	r := baseReport()
	r.Kind = Delay
	r.WarnAfter = 4 * time.Hour
	r.ReturnAfter = 5 * 24 * time.Hour
	r.Recipients[0].Action = Delayed
	r.Recipients[0].Status = ""
	m, err := Build(&r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Subject: Warning: could not send message for past 4 hours\n", "Auto-Submitted: auto-generated (warning-timeout)\n"} {
		if !strings.Contains(string(m.Header), want) {
			t.Errorf("header lacks %q", want)
		}
	}
	for _, want := range []string{"THIS IS A WARNING MESSAGE ONLY", "Status: 4.0.0\n", "Will-Retry-Until: Mon, 30 Nov 2026 04:00:00 GMT\n"} {
		if !strings.Contains(string(m.Body), want) {
			t.Errorf("body lacks %q", want)
		}
	}
}

func TestXuntext(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "a+2Bb": "a+b", "+3d+3D": "==", "x+": "x+", "+zz": "+zz", "+4": "+4"} {
		if got := xuntext(in); got != want {
			t.Errorf("xuntext(%q) = %q, want %q", in, got, want)
		}
	}
}

// The report lines of 05-syslog-mail-log-full.txt.
func TestLogLabel(t *testing.T) {
	tests := []struct {
		k              Kind
		report, warned bool
		reason, want   string
	}{
		{Failure, false, false, "User unknown", "DSN: User unknown"},
		{PostmasterNotify, false, false, "Host unknown (Name server: example.net: host not found)", "postmaster notify: Host unknown (Name server: example.net: host not found)"},
		{Delay, false, false, WarningReason(time.Second), "sender notify: Warning: could not send message for past 1 second"},
		{Failure, false, true, TimeoutReason(time.Second), "sender notify: Cannot send message for 1 second"},
		{Failure, false, false, TimeoutReason(time.Second), "DSN: Cannot send message for 1 second"},
		{Receipt, false, false, "Return receipt", "DSN: Return receipt"},
		{PostmasterNotify, true, false, "User unknown", "return to sender: User unknown"},
	}
	for _, tt := range tests {
		if got := LogLabel(tt.k, tt.report, tt.warned) + ": " + tt.reason; got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}
