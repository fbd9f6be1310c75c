package smtpd

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/status"
)

// FuzzAuthDecode: any client response line of AUTH PLAIN or LOGIN is
// either refused with a 501 or decoded; PLAIN credentials never hold a
// NUL and re-encode to the same response (authzid empty or the user's
// own); a logged user name never holds a control character.
func FuzzAuthDecode(f *testing.F) {
	for _, s := range []string{
		"AGFsaWNlAHNlY3JldA==", // \0alice\0secret
		base64.StdEncoding.EncodeToString([]byte("alice\x00alice\x00pw")),
		base64.StdEncoding.EncodeToString([]byte("bob\x00alice\x00pw")),
		base64.StdEncoding.EncodeToString([]byte("\x00\x00")),
		base64.StdEncoding.EncodeToString([]byte("a\x00b\x00c\x00d")),
		base64.StdEncoding.EncodeToString([]byte("\x00al\r\nice\x00pw")),
		"YWxpY2U=", "*", "=", "", "not base64!", "YWxpY2U", "YW=xp", "====",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		b, err := decodeResponse(line)
		if err != nil {
			if e := status.From(err); e.Code != 501 {
				t.Fatalf("%q: %v", line, err)
			}
			return
		}
		if line == "=" && len(b) != 0 {
			t.Fatalf("= decoded to %q", b)
		}
		if safe := logSafe(string(b)); len(safe) > 64 || strings.ContainsAny(safe, "\r\n\x00") {
			t.Fatalf("logSafe(%q) = %q", b, safe)
		}
		user, pass, ok := plainCredentials(b)
		if !ok {
			return
		}
		if strings.Contains(user, "\x00") || strings.Contains(pass, "\x00") {
			t.Fatalf("%q: NUL in %q/%q", b, user, pass)
		}
		again := []byte("\x00" + user + "\x00" + pass)
		if !bytes.Equal(again, b) && !bytes.Equal([]byte(user+string(again)), b) {
			t.Fatalf("%q does not re-encode: %q %q", b, user, pass)
		}
	})
}
