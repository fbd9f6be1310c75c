package main

import (
	"strings"
	"testing"
)

const osvStd = `{"osv":{"id":"GO-2026-0001","summary":"a stdlib bug"}}
{"osv":{"id":"GO-2026-0002","summary":"a module bug"}}
`

func TestGate(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		code     int
		out      string
	}{
		{"stdlib reached: a warning", osvStd + `{"finding":{"osv":"GO-2026-0001","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"crypto/tls","function":"Read"}]}}`,
			0, "warning: GO-2026-0001 in stdlib@v1.26.8, reached through crypto/tls.Read: a stdlib bug (build with Go 1.26.9 or later)"},
		{"module reached: fails", osvStd + `{"finding":{"osv":"GO-2026-0002","fixed_version":"v1.2.3","trace":[{"module":"example.com/m","version":"v1.2.0","package":"example.com/m/p","function":"F"},{"module":"github.com/posthorn/posthorn"}]}}`,
			1, "FAIL: GO-2026-0002 in example.com/m@v1.2.0, reached through example.com/m/p.F: a module bug (require example.com/m@v1.2.3)"},
		{"module imported only", osvStd + `{"finding":{"osv":"GO-2026-0002","fixed_version":"v1.2.3","trace":[{"module":"example.com/m","version":"v1.2.0","package":"example.com/m/p"}]}}`,
			0, "0 vulnerabilities reached by posthorn's code (0 in required modules), 1 more in code it imports but does not call"},
	} {
		var out strings.Builder
		code, err := gate(strings.NewReader(tc.in), &out)
		if err != nil || code != tc.code || !strings.Contains(out.String(), tc.out) {
			t.Errorf("%s: exit %d, err %v:\n%s\nwant %d and %q", tc.name, code, err, out.String(), tc.code, tc.out)
		}
	}
	if _, err := gate(strings.NewReader(""), &strings.Builder{}); err == nil {
		t.Error("no input passed")
	}
	if _, err := gate(strings.NewReader("Get https://vuln.go.dev: no such host"), &strings.Builder{}); err == nil {
		t.Error("an error message passed for JSON")
	}
}
