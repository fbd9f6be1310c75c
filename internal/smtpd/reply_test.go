package smtpd

import (
	"testing"

	"github.com/posthorn/posthorn/internal/status"
)

// TestReplyLineBreaksNeutralised: text echoed into a reply (a VRFY
// argument, a filter's message) cannot end the reply line early.
func TestReplyLineBreaksNeutralised(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"ro\rot... User unknown", "550 5.1.1 ro?ot... User unknown\r\n"},
		{"a\nfake 250 ok", "550 5.1.1 a?fake 250 ok\r\n"},
		{"n\x00ul\ttab", "550 5.1.1 n?ul\ttab\r\n"},
	} {
		if got := string(formatLine(550, "5.1.1", tc.text, false)); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.text, got, tc.want)
		}
	}
}

// A multi-line reply (a mail filter's smfi_setmlreply) is sent as its
// lines, each with the code and a continuation mark but the last.
func TestReplyErrMultiLine(t *testing.T) {
	s := &session{}
	e := status.New(550, "5.7.1", "first line")
	e.More = []string{"second line", "third"}
	s.replyErr(e)
	want := "550-5.7.1 first line\r\n550-5.7.1 second line\r\n550 5.7.1 third\r\n"
	if got := string(s.out); got != want {
		t.Errorf("%q, want %q", got, want)
	}
	s.out = nil
	s.replyErr(status.New(451, "4.3.2", "Please try again later"))
	if got := string(s.out); got != "451 4.3.2 Please try again later\r\n" {
		t.Errorf("one line: %q", got)
	}
}
