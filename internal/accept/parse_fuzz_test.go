package accept

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseMessage: the header and body split of a whole message (what
// the milter and -t paths read) never panics, never makes a field out of
// body text, and loses nothing: every header byte is in a field, and the
// body is the tail of the input.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"Subject: a\r\n\tb\r\n\r\nbody\r\n",
		"From someone Wed Nov 25 04:34:12 2026\nTo: x\n\nbody",
		"no header at all\n",
		"A: 1\nnot a header\nB: 2\n",
		"X: a\x00b\n\nbody\x00\n",
		"Subject: x\r",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, raw []byte, local bool) {
		hs, body := ParseMessage(raw, local)
		if !bytes.HasSuffix(raw, body) {
			t.Fatalf("body %q is not the end of the message", body)
		}
		for _, h := range hs {
			if h.Name == "" && h.Value == "" {
				t.Fatalf("empty field from %q", raw)
			}
			if strings.ContainsAny(h.Name, "\n\x00") || strings.Contains(h.Value, "\n\n") || strings.ContainsRune(h.Value, 0) {
				t.Fatalf("field %q: %q from %q", h.Name, h.Value, raw)
			}
			for _, l := range strings.Split(h.Value, "\n")[1:] {
				if l == "" || (l[0] != ' ' && l[0] != '\t') {
					t.Fatalf("field %q has a line that is not a continuation: %q", h.Name, h.Value)
				}
			}
		}
	})
}
