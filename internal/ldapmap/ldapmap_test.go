package ldapmap

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/posthorn/posthorn/internal/ldapmap/slapdtest"
)

func TestParseSpec(t *testing.T) {
	files := map[string]string{"/etc/mail/ldap.secret": "s3cret\nignored\n"}
	read := func(p string) ([]byte, error) { return []byte(files[p]), nil }
	defaults, err := ParseSpec(`-h "ldap1.example ldap2.example:3389" -p 1389 -b dc=example,dc=com -d cn=mta,dc=example,dc=com -M simple -P /etc/mail/ldap.secret -s one`, nil, read)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec string
		want func(s *Spec) bool
		err  string
	}{
		{spec: "-k (&(objectClass=sendmailMTAAliasObject)(sendmailMTAKey=%0)) -v sendmailMTAAliasValue", want: func(s *Spec) bool {
			return s.Filter == "(&(objectClass=sendmailMTAAliasObject)(sendmailMTAKey=%0))" && len(s.Attrs) == 1 &&
				strings.Join(s.URIs, " ") == "ldap://ldap1.example:1389 ldap://ldap2.example:3389" && s.Base == "dc=example,dc=com" &&
				s.Simple && s.Secret == "s3cret" && s.Scope == ldap.ScopeSingleLevel && s.Timeout == 5*time.Second
		}},
		{spec: "-H ldaps://dir.example:636 -b o=x -1 -v mailHost,mailRoutingAddress:normal -k(mailLocalAddress=%0) -l 2 -z,", want: func(s *Spec) bool {
			return s.URIs[0] == "ldaps://dir.example:636" && s.Base == "o=x" && s.Single && len(s.Attrs) == 2 &&
				s.Filter == "(mailLocalAddress=%0)" && s.Timeout == 2*time.Second && s.Delim == "," && s.Simple
		}},
		{spec: "-H ldap://a -x -k (a=%0) -v b -T<TMPF>", want: func(s *Spec) bool { return s.StartTLS }},
		{spec: "-k (a=%0) -v member:dn", err: "recursion"},
		// what sendmail's m4 writes for FEATURE(mailertable, LDAP)
		{spec: "-1 -v sendmailMTAMapValue,sendmailMTAMapSearch:FILTER:sendmailMTAMapObject,sendmailMTAMapURL:URL:sendmailMTAMapObject -k (&(objectClass=sendmailMTAMapObject)(sendmailMTAMapName=mailertable)(sendmailMTAKey=%0))",
			want: func(s *Spec) bool {
				return strings.Join(s.Attrs, ",") == "sendmailMTAMapValue" && strings.Join(s.Unfollowed, ",") == "sendmailMTAMapSearch:FILTER,sendmailMTAMapURL:URL"
			}},
		{spec: "-h a -H ldap://b -k x", err: "both"},
		{spec: "-s everything", err: "scope"},
		{spec: "-M sasl", err: "method"},
		{spec: "-Q", err: "illegal"},
		{spec: `-k "(a=b`, err: "quote"},
		{spec: "-H http://x", err: "ldap://"},
	} {
		s, err := ParseSpec(tc.spec, defaults, read)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.spec, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.spec, err)
		case !tc.want(s):
			t.Errorf("%s: %+v", tc.spec, s)
		}
	}
	if s, _ := ParseSpec("-k (a=%0)", nil, nil); strings.Join(s.URIs, " ") != "ldap://localhost:389" {
		t.Errorf("default URI %v", s.URIs)
	}
}

// The key is escaped in the filter (RFC 4515), so an address cannot
// change the search.
func TestFilterEscapes(t *testing.T) {
	s := &Spec{Filter: "(&(objectClass=x)(k=%0)(p=100%%))"}
	if got := s.filterFor("a*)(uid=*"); got != `(&(objectClass=x)(k=a\2a\29\28uid=\2a)(p=100%))` {
		t.Errorf("%s", got)
	}
}

const directory = `dn: ou=aliases,dc=example,dc=test
objectClass: organizationalUnit
ou: aliases

dn: sendmailMTAKey=staff,ou=aliases,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: staff
sendmailMTAAliasGrouping: aliases
sendmailMTACluster: site
sendmailMTAAliasValue: alice
sendmailMTAAliasValue: bob@partner.example

dn: sendmailMTAKey=example.net,ou=aliases,dc=example,dc=test
objectClass: sendmailMTAMapObject
sendmailMTAMapName: mailertable
sendmailMTAKey: example.net
sendmailMTAMapValue: esmtp:[mx.example.net]
`

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Against a real slapd: sendmail's default alias map (values joined with
// ','), a mailertable entry, a missing key; the server stopped is a
// temporary failure (after the cached answers expire), and it is used
// again when it returns.
func TestMapAgainstSlapd(t *testing.T) {
	srv := slapdtest.Start(t, "", directory)
	clk := &clock{now: time.Unix(1_800_000_000, 0)}
	aliasSpec, err := ParseSpec("-H "+srv.URI+" -b "+slapdtest.Suffix+" -z, -v "+AliasAttr+" -k "+
		strings.NewReplacer("${sendmailMTACluster}", "site", "$j", "mx1.example.test").Replace(AliasFilter), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	aliasesMap := New(aliasSpec, Options{Name: "AliasFile", Now: clk.Now})
	defer aliasesMap.Close()
	if v, ok, err := aliasesMap.Lookup("Staff"); err != nil || !ok || v != "alice,bob@partner.example" {
		t.Fatalf("staff: %q %v %v", v, ok, err)
	}
	if _, ok, err := aliasesMap.Lookup("nobody"); err != nil || ok {
		t.Fatalf("nobody: %v %v", ok, err)
	}
	mt, err := ParseSpec("-H "+srv.URI+" -b "+slapdtest.Suffix+" -1 -v sendmailMTAMapValue -k (&(objectClass=sendmailMTAMapObject)(sendmailMTAMapName=mailertable)(sendmailMTAKey=%0))", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mtMap := New(mt, Options{Name: "mailertable", Now: clk.Now})
	defer mtMap.Close()
	if v, ok, err := mtMap.Get("example.net"); err != nil || !ok || v != "esmtp:[mx.example.net]" {
		t.Fatalf("example.net: %q %v %v", v, ok, err)
	}

	srv.Stop()
	if v, ok, err := aliasesMap.Lookup("staff"); err != nil || !ok || v != "alice,bob@partner.example" {
		t.Errorf("cached staff: %q %v %v", v, ok, err)
	}
	clk.add(31 * time.Second)
	if _, _, err := aliasesMap.Lookup("staff"); err == nil {
		t.Error("server down: no error")
	}
	if _, _, err := mtMap.Get("other.example"); err == nil {
		t.Error("server down: no error for an uncached key")
	}
	srv.Start()
	if v, ok, err := aliasesMap.Lookup("staff"); err != nil || !ok || v != "alice,bob@partner.example" {
		t.Errorf("after restart: %q %v %v", v, ok, err)
	}
}
