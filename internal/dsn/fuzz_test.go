package dsn

import (
	"strings"
	"testing"
)

func FuzzParseNotify(f *testing.F) {
	for _, s := range []string{"SUCCESS,FAILURE,DELAY", "NEVER", "NEVER,SUCCESS", "BOGUS", "", ","} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNotify(s)
		if err != nil {
			return
		}
		m, err := ParseNotify(n.String())
		if err != nil || m != n {
			t.Fatalf("%q: %v does not round-trip (%v, %v)", s, n, m, err)
		}
	})
}

// FuzzBuild feeds untrusted parts (the original message, a remote reply,
// ENVID, ORCPT, transcript text) into a report: it must not panic and the
// MIME structure must stay intact.
func FuzzBuild(f *testing.F) {
	f.Add([]byte("Subject: hi\n"), []byte("body\n"), "550 5.1.1 <a@x>... User unknown", "ENV+2B1", "rfc822;a@x", "<a@x>... Deferred", true)
	f.Add([]byte(""), []byte(""), "550\r\n--x", "+", "", "\n", false)
	f.Fuzz(func(t *testing.T, header, body []byte, diag, envid, orcpt, xline string, full bool) {
		r := baseReport()
		r.Header, r.Body, r.EnvID = header, body, envid
		r.Transcript = []string{xline}
		r.Recipients[0].Diagnostic = diag
		r.Recipients[0].ORCPT = orcpt
		if full {
			r.Return = Full
		}
		m, err := Build(&r)
		if err != nil {
			t.Fatal(err)
		}
		b := "--NEWID.1795582800/mx.example"
		if strings.Contains(string(header)+string(body), b) {
			return
		}
		var open, closing int
		for _, l := range strings.Split(string(m.Body), "\n") {
			switch l {
			case b:
				open++
			case b + "--":
				closing++
			}
		}
		if open != 3 || closing != 1 {
			t.Fatalf("boundaries: %d parts, %d closing", open, closing)
		}
	})
}

func BenchmarkBuild(b *testing.B) {
	r := baseReport()
	r.Return = Full
	r.Body = []byte(strings.Repeat("a body line of some length, as mail has\n", 100))
	for b.Loop() {
		if _, err := Build(&r); err != nil {
			b.Fatal(err)
		}
	}
}
