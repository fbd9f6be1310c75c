package maillog

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "00:00:00"},
		{-time.Second, "00:00:00"},
		{41 * time.Second, "00:00:41"},
		{time.Hour + 2*time.Minute + 3*time.Second, "01:02:03"},
		{49*time.Hour + 5*time.Second, "2+01:00:05"},
	} {
		if got := Delay(c.d); got != c.want {
			t.Errorf("Delay(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestFields(t *testing.T) {
	got := Fields("to", "<a@b>", "ctladdr", "", "delay", "00:00:00", "stat", "Sent")
	if want := "to=<a@b>, delay=00:00:00, stat=Sent"; got != want {
		t.Errorf("Fields = %q, want %q", got, want)
	}
}

func TestWriterLine(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "sm-mta")
	l.Infof("6AP4Po3F000969", "from=%s, size=%d", "<a@b>", 235)
	line := buf.String()
	if !strings.Contains(line, " sm-mta[") || !strings.HasSuffix(line, "]: 6AP4Po3F000969: from=<a@b>, size=235\n") {
		t.Errorf("line = %q", line)
	}
	var nilLogger *Logger
	nilLogger.Infof("", "discarded") // must not panic
}

func TestLogLevel(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, "sendmail")
	l.SetLevel(4) // failures and notices, no from=/to= lines
	l.Errf("", "error")
	l.Noticef("", "notice")
	l.Infof("Q", "to=<a@b>, stat=Sent")
	if got := buf.String(); !strings.Contains(got, "error") || !strings.Contains(got, "notice") || strings.Contains(got, "stat=Sent") {
		t.Errorf("LogLevel 4 wrote:\n%s", got)
	}
	buf.Reset()
	l.SetLevel(0)
	l.Errf("", "error")
	if buf.Len() != 0 {
		t.Errorf("LogLevel 0 wrote %q", buf.String())
	}
	buf.Reset()
	New(&buf, "sendmail").Infof("Q", "from=<a@b>")
	if buf.Len() == 0 {
		t.Error("the default level drops info lines")
	}
}
