package mta

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/ldapmap"
	"github.com/posthorn/posthorn/internal/route"
)

// IsLDAPSpec reports whether an AliasFile, MailerTable or VirtUserTable
// value names an LDAP map ("ldap:" and sendmail's map arguments).
func IsLDAPSpec(v string) bool {
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(v)), "ldap:")
}

// ldapMap builds an LDAP map from its spec (macros expanded, as sendmail
// expands them when it reads the map: $j, ${sendmailMTACluster}), over
// LDAPDefaultSpec. An alias map without -k/-v gets sendmail's default
// alias search; values of alias maps are joined with ','.
func (s *Site) ldapMap(name, spec string, alias bool) (*ldapmap.Map, error) {
	cfg := s.Config
	var defaults *ldapmap.Spec
	if d := strings.TrimSpace(cfg.Values["LDAPDefaultSpec"]); d != "" {
		var err error
		if defaults, err = ldapmap.ParseSpec(cfg.Expand(d, nil), nil, nil); err != nil {
			return nil, fmt.Errorf("LDAPDefaultSpec: %v", err)
		}
	}
	sp, err := ldapmap.ParseSpec(cfg.Expand(spec, nil), defaults, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if alias {
		if sp.Filter == "" {
			sp.Filter = cfg.Expand(ldapmap.AliasFilter, nil)
		}
		if len(sp.Attrs) == 0 {
			sp.Attrs = []string{ldapmap.AliasAttr}
		}
		if sp.Delim == "" {
			sp.Delim = ","
		}
	}
	if sp.Filter == "" {
		return nil, fmt.Errorf("%s: No filter given", name)
	}
	if len(sp.Unfollowed) > 0 {
		NoteNotInterpreted(cfg, "map "+name+" recursive attributes "+strings.Join(sp.Unfollowed, ","))
	}
	var tc *tls.Config
	if ca := cfg.Values["CACertFile"]; ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("%s: CACertFile: %v", name, err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tc = &tls.Config{RootCAs: pool}
	}
	m := ldapmap.New(sp, ldapmap.Options{Name: name, TLS: tc, Now: s.now})
	s.ldapMaps = append(s.ldapMaps, m)
	return m, nil
}

// ldapFinder is an LDAP map as a route.Map.
type ldapFinder struct{ m *ldapmap.Map }

func (f ldapFinder) Find(key string) (string, bool, error) { return f.m.Lookup(key) }

// routeMap is the map for one of the router's tables: a K line of class
// ldap ("Kmailertable ldap -1 -v sendmailMTAMapValue -k ..."), the
// option as "ldap: spec", or the option's file.
func (s *Site) routeMap(kname, option string, read func(string, func() time.Time) (*route.Table, error)) (route.Map, *route.Table) {
	if k := s.Config.Maps[kname]; k != nil && strings.EqualFold(k.Class, "ldap") {
		return s.ldapRouteMap(kname, k.Args)
	}
	if IsLDAPSpec(option) {
		return s.ldapRouteMap(kname, strings.TrimSpace(option)[len("ldap:"):])
	}
	if option == "" {
		return nil, nil
	}
	t, err := read(option, s.now)
	if err != nil {
		s.Log.Errf("", "%s: %v", option, err)
		return nil, nil
	}
	for _, w := range t.Warnings() {
		s.Log.Warnf("", "%s", w)
	}
	return t, t
}

func (s *Site) ldapRouteMap(name, spec string) (route.Map, *route.Table) {
	m, err := s.ldapMap(name, spec, false)
	if err != nil {
		s.Log.Errf("", "%v", err)
		return nil, nil
	}
	return ldapFinder{m}, nil
}

// ldapRouting is FEATURE(ldap_routing) when sendmail.cf has its maps
// (Kldapmh and Kldapmra of class ldap) and class {LDAPRoute}.
func (s *Site) ldapRouting() *route.LDAPRouting {
	cfg := s.Config
	mh, mra := cfg.Maps["ldapmh"], cfg.Maps["ldapmra"]
	domains := cfg.Class("LDAPRoute")
	if mh == nil || mra == nil || !strings.EqualFold(mh.Class, "ldap") || !strings.EqualFold(mra.Class, "ldap") || len(domains) == 0 {
		return nil
	}
	h, err1 := s.ldapMap("ldapmh", mh.Args, false)
	a, err2 := s.ldapMap("ldapmra", mra.Args, false)
	if err1 != nil || err2 != nil {
		s.Log.Errf("", "ldap_routing: %v", cmpErr(err1, err2))
		return nil
	}
	return &route.LDAPRouting{Domains: addr.NewNames(domains...), MailHost: ldapFinder{h}, RoutingAddress: ldapFinder{a},
		Bounce: cfg.LDAPRoutingBounce}
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// aliasChain looks an alias up in each AliasFile in turn, as sendmail
// does: the first that has it answers; a map that cannot answer is a
// temporary failure.
type aliasChain []aliases.Map

func (c aliasChain) Lookup(name string) (string, bool, error) {
	for _, m := range c {
		v, ok, err := m.Lookup(name)
		if err != nil || ok {
			return v, ok, err
		}
	}
	return "", false, nil
}
