package smtpd

import (
	"strings"
	"testing"
)

func TestHelpFromFile(t *testing.T) {
	const v2 = "#vers\t2\nsmtp\tThis is $v\nsmtp\tTopics\nmail\tMAIL From:<x>\nrcpt\tRCPT To:<y>\nrset\tRSET\nnoop\n"
	const v1 = "smtp\tHello\nmail\tMAIL $v\n"
	expand := func(s string) string { return strings.ReplaceAll(s, "$v", "8.x") }
	tests := []struct {
		file, topic string
		want        []string
	}{
		{v2, "", []string{"This is 8.x", "Topics"}},
		{v2, "mail", []string{"MAIL From:<x>"}},
		{v2, "r", []string{"RCPT To:<y>", "RSET"}}, // sendmail compares the topic's length
		{v2, "noop", []string{""}},
		{v2, "quit", nil},
		{"#vers\t2\n", "", []string{}}, // no smtp lines: still 214 End of HELP info
		// Before version 2: no macro expansion, and the version line first.
		{v1, "", []string{"This is posthorn 1", "Hello"}},
		{v1, "mail", []string{"MAIL $v"}},
	}
	for _, tt := range tests {
		got := helpFromFile(strings.NewReader(tt.file), tt.topic, "posthorn 1", expand)
		if strings.Join(got, "|") != strings.Join(tt.want, "|") || (got == nil) != (tt.want == nil) {
			t.Errorf("%q, topic %q: %q, want %q", tt.file, tt.topic, got, tt.want)
		}
	}
}
