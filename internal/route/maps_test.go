package route

import (
	"errors"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/addr"
)

// fakeMap is a Map with fixed entries; down makes every lookup fail.
type fakeMap struct {
	m    map[string]string
	down bool
}

func (f *fakeMap) Find(k string) (string, bool, error) {
	if f.down {
		return "", false, errors.New("connection refused")
	}
	v, ok := f.m[strings.ToLower(k)]
	return v, ok, nil
}

// sendmail's ldap_routing table (cf/README, FEATURE(ldap_routing)),
// row by row, with the mailertable consulted for a mailHost.
func TestLDAPRouting(t *testing.T) {
	mra := &fakeMap{m: map[string]string{
		"moved@site.example":  "moved@elsewhere.example",
		"remote@site.example": "remote@mailhome.site.example",
		"local@site.example":  "alice@refhost.example.org",
		"@catchall.example":   "postmaster@refhost.example.org",
	}}
	mh := &fakeMap{m: map[string]string{
		"remote@site.example": "store.site.example",
		"here@site.example":   "refhost.example.org",
		"away@site.example":   "store.site.example.",
		"local@site.example":  "refhost.example.org",
	}}
	mt, _ := ParseMailerTable(strings.NewReader("store.site.example esmtp:[10.0.0.7]:2525\n"))
	for _, bounce := range []bool{false, true} {
		r := New(Config{Names: refNames(), MailerTable: mt, LDAPRouting: &LDAPRouting{
			Domains: addr.NewNames("site.example", "catchall.example"), MailHost: mh, RoutingAddress: mra, Bounce: bounce}})
		for _, tt := range []struct {
			in, mailer, host, user string
			code                   int
		}{
			{"moved@site.example", ESMTP, "elsewhere.example", "moved@elsewhere.example", 0},     // mra, no mailHost
			{"local@site.example", Local, "", "alice", 0},                                        // mra, our mailHost
			{"remote@site.example", ESMTP, "[10.0.0.7]:2525", "remote@mailhome.site.example", 0}, // mra, another host (mailertable)
			{"here@site.example", ESMTP, "site.example", "here@site.example", 0},                 // our mailHost: as it is
			{"away@site.example", ESMTP, "[10.0.0.7]:2525", "away@site.example", 0},              // another host, original address
			{"anyone@catchall.example", Local, "", "postmaster", 0},                              // @domain entry
			{"bob@refhost.example.org", Local, "", "bob", 0},                                     // no entry, passthru
		} {
			if bounce && tt.in == "nobody@site.example" {
				tt.mailer, tt.code = Error, 550
			}
			got, err := r.ResolveString(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			code := 0
			if got.Err != nil {
				code = got.Err.Code
			}
			if got.Mailer != tt.mailer || code != tt.code || code == 0 && (got.Host != tt.host || got.User != tt.user) {
				t.Errorf("bounce=%v %s: %s %s %s %v, want %s %s %s %d\n%s", bounce, tt.in, got.Mailer, got.Host, got.User, got.Err,
					tt.mailer, tt.host, tt.user, tt.code, strings.Join(got.Steps, "\n"))
			}
			if tt.mailer != ESMTP || tt.host != "site.example" || bounce {
				continue
			}
			if got.Local {
				t.Errorf("%s: passed through, yet local for the relay check", tt.in)
			}
		}
	}
}

// A directory that does not answer: 451 for the routing of the
// addresses that need it, whatever the map (never a bounce); the others
// are routed as usual.
func TestMapTemporaryFailure(t *testing.T) {
	down := &fakeMap{down: true}
	for name, cfg := range map[string]Config{
		"mailertable":   {Names: refNames(), MailerTable: down},
		"virtusertable": {Names: refNames(), VirtUserTable: down, VirtHosts: addr.NewNames("site.example")},
		"ldap_routing":  {Names: refNames(), LDAPRouting: &LDAPRouting{Domains: addr.NewNames("site.example"), MailHost: down, RoutingAddress: down}},
	} {
		r := New(cfg)
		addrs := map[string]string{"mailertable": "x@remote.example", "virtusertable": "x@site.example", "ldap_routing": "x@site.example"}
		got, _ := r.ResolveString(addrs[name])
		if got.Mailer != Error || got.Err == nil || got.Err.Code != 451 || got.Err.Enhanced != "4.3.0" || !got.Local {
			t.Errorf("%s: %+v", name, got)
		}
		if got, _ := r.ResolveString("bob"); got.Mailer != Local {
			t.Errorf("%s: local address: %+v", name, got)
		}
	}
}
