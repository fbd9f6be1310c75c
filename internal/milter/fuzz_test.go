package milter

import (
	"strings"
	"testing"
)

// FuzzReply: a filter's reply code text and header values are untrusted;
// parsing them never panics, keeps the code class, and a queued value
// never has a line that would end the header.
func FuzzReply(f *testing.F) {
	f.Add("550 5.7.1 Command rejected", "v=1;\r\n\tb=x")
	f.Add("451-4.7.1 a\r\n451 4.7.1 b", "\n\n")
	f.Add("5", "")
	f.Fuzz(func(t *testing.T, reply, value string) {
		e := parseReply(reply, 550)
		if e.Code < 100 || e.Code > 999 {
			t.Fatalf("code %d from %q", e.Code, reply)
		}
		q := queueValue(value, false)
		for i, l := range strings.Split(q, "\n") {
			if i > 0 && (l == "" || (l[0] != ' ' && l[0] != '\t')) {
				t.Fatalf("value %q queued as %q: line %d is not a continuation", value, q, i)
			}
		}
	})
}
