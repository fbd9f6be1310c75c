package tlspolicy

import (
	"reflect"
	"strings"
	"testing"
)

const sampleMap = `# TLS policy map
example.com          secure match=.example.com:example.net
.example.com         encrypt
[mx.partner.example] verify
  match=hostname:Other.Example
[relay.example]:587  encrypt
[relay.example]      dane-only
[192.0.2.1]          none
[IPv6:2001:DB8::1]   may
Broken.Example.      may protocols=>=TLSv1.2
bad.example          fingerprint match=00:11
typo.example         secure matsh=x
nolevel.example
example.com          none
odd.example          verify x
 orphan continuation
`

func TestParseTable(t *testing.T) {
	tab := ParseTable(strings.NewReader(sampleMap), "tls_policy")
	for _, tt := range []struct {
		nexthop string
		port    int
		key     string
		level   Level
		match   []string
		err     string
	}{
		{"example.com", 25, "example.com", Secure, []string{".example.com", "example.net"}, ""},
		{"EXAMPLE.COM.", 25, "example.com", Secure, []string{".example.com", "example.net"}, ""},
		{"mail.example.com", 25, ".example.com", Encrypt, nil, ""},
		{"a.b.example.com", 25, ".example.com", Encrypt, nil, ""},
		{"[mx.partner.example]", 25, "[mx.partner.example]", Verify, []string{"hostname", "other.example"}, ""},
		{"[relay.example]", 587, "[relay.example]:587", Encrypt, nil, ""},
		{"[relay.example]", 25, "[relay.example]", DANEOnly, nil, ""},
		{"[relay.example]", 2525, "[relay.example]", DANEOnly, nil, ""},
		{"[192.0.2.1]", 25, "[192.0.2.1]", None, nil, ""},
		{"[2001:db8::1]", 25, "[2001:db8::1]", May, nil, ""},
		{"broken.example", 25, "broken.example", May, nil, ""},
		{"bad.example", 25, "bad.example", 0, nil, "not supported"},
		{"typo.example", 25, "typo.example", Secure, nil, "unknown attribute"},
		{"nolevel.example", 25, "nolevel.example", 0, nil, "no security level"},
		{"odd.example", 25, "odd.example", Verify, nil, "not name=value"},
	} {
		e, ok := tab.Lookup(tt.nexthop, tt.port)
		if !ok {
			t.Errorf("%s:%d: no entry", tt.nexthop, tt.port)
			continue
		}
		if e.Key != tt.key || (tt.err == "" && (e.Level != tt.level || !reflect.DeepEqual(e.Match, tt.match) || e.Err != nil)) {
			t.Errorf("%s:%d: %+v, want key %s level %s match %v", tt.nexthop, tt.port, e, tt.key, tt.level, tt.match)
		}
		if tt.err != "" && (e.Err == nil || !strings.Contains(e.Err.Error(), tt.err)) {
			t.Errorf("%s: error %v, want %q", tt.nexthop, e.Err, tt.err)
		}
	}
	for _, miss := range []string{"example.net", "other.example", "[mx.example.com]", "com", "[192.0.2.2]", "xexample.com"} {
		if e, ok := tab.Lookup(miss, 25); ok {
			t.Errorf("%s: matched %+v", miss, e)
		}
	}
	warn := strings.Join(tab.Warnings(), "\n")
	for _, w := range []string{"line 10: protocols= is not interpreted", "line 11: bad.example", "duplicate entry example.com ignored", "(mail to it is deferred)"} {
		if !strings.Contains(warn, w) {
			t.Errorf("no warning %q in\n%s", w, warn)
		}
	}
}

func TestParseTableContinuation(t *testing.T) {
	tab := ParseTable(strings.NewReader(" orphan\nx.example secure\n\t match=.x.example\n"), "m")
	if w := tab.Warnings(); len(w) != 1 || !strings.Contains(w[0], "m, line 1: continuation line without an entry") {
		t.Errorf("warnings %q", w)
	}
	if e, ok := tab.Lookup("x.example", 25); !ok || e.Level != Secure || len(e.Match) != 1 || e.Match[0] != ".x.example" {
		t.Errorf("%+v", e)
	}
}

func TestParseLevel(t *testing.T) {
	for i, n := range []string{"none", "may", "encrypt", "dane", "dane-only", "verify", "secure"} {
		l, err := ParseLevel(n)
		if err != nil || int(l) != i || l.String() != n {
			t.Errorf("%s: %v %v", n, l, err)
		}
	}
	for _, bad := range []string{"", "MAY", "fingerprint", "require"} {
		if _, err := ParseLevel(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzTable(f *testing.F) {
	f.Add(sampleMap, "mail.example.com", 25)
	f.Add("[a]:1 may\n", "[a]", 1)
	f.Add(".x secure match=:\n\tmatch=a\n", "y.x", 25)
	f.Fuzz(func(t *testing.T, text, nexthop string, port int) {
		tab := ParseTable(strings.NewReader(text), "fuzz")
		e, ok := tab.Lookup(nexthop, port)
		if !ok {
			return
		}
		if e.Err == nil && (e.Level < None || e.Level > Secure) {
			t.Fatalf("entry %+v", e)
		}
		if _, err := normKey(e.Key); err != nil {
			t.Fatalf("key %q does not normalise: %v", e.Key, err)
		}
		// The entry found is one of the keys the next hop may use.
		k, _ := normKey(nexthop)
		if e.Key != k && !strings.HasPrefix(e.Key, k+":") && !(strings.HasPrefix(e.Key, ".") && strings.HasSuffix(k, e.Key)) {
			t.Fatalf("%q found %q", nexthop, e.Key)
		}
	})
}
