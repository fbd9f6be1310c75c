package policy

import (
	"bytes"
	"strings"
	"testing"
)

// A bcrypt hash of "secret" at cost 4 (the cheapest), so that seeds parse.
const fuzzHash = "$2a$04$oVTYPlO.JtK3q98ejHfDk.eb9CqhwsVZp92IdNqw2V7MUc0U3UHd2"

// FuzzAuthFile: any AuthFile text either fails with an error naming the
// file, or yields users that are non-empty, have no ':' or line end in
// their name, and come back the same when written out as user:hash lines
// and parsed again. Passwords are never checked here: a hash with a high
// cost would make the fuzzer crawl.
func FuzzAuthFile(f *testing.F) {
	for _, s := range []string{
		"alice:" + fuzzHash + "\n",
		"# comment\n\n  alice:" + fuzzHash + "  \nbob:" + fuzzHash,
		"alice:" + fuzzHash + "\nalice:" + fuzzHash + "\n",
		"bob:plaintext\n", ":" + fuzzHash + "\n", "nocolon\n", "a:b:c\n",
		"alice:$2a$99$xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
		"\xff\xfe:" + fuzzHash + "\r\n", "\x00:" + fuzzHash,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseAuthFile(bytes.NewReader(data), "authfile")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "authfile: ") && !strings.Contains(err.Error(), "token too long") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		var again strings.Builder
		for u, h := range a.users {
			if u == "" || strings.ContainsAny(u, ":\n") {
				t.Fatalf("user %q from %q", u, data)
			}
			again.WriteString(u + ":" + string(h) + "\n")
		}
		if len(a.users) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d users from %d lines", len(a.users), bytes.Count(data, []byte("\n"))+1)
		}
		b, err := ParseAuthFile(strings.NewReader(again.String()), "again")
		if err != nil {
			// a user name with surrounding white space is trimmed differently
			// once it is the start of a line; only that may fail
			if !strings.Contains(again.String(), " :") && !strings.Contains(again.String(), "\t:") {
				t.Fatalf("re-parse of %q: %v", again.String(), err)
			}
			return
		}
		if len(b.users) != len(a.users) {
			t.Fatalf("re-parse: %d users, first %d", len(b.users), len(a.users))
		}
	})
}
