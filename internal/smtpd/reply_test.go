package smtpd

import "testing"

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
