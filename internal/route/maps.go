package route

import (
	"strings"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/status"
)

// Map is a table the router consults: a file (*Table) or a directory
// (an LDAP map, package ldapmap). An error from Find is a temporary
// failure: the address resolves to a 451 error triple, which the SMTP
// server answers at RCPT and the queue defers, never a bounce.
type Map interface {
	Find(key string) (value string, ok bool, err error)
}

// Find implements Map.
func (t *Table) Find(key string) (string, bool, error) {
	v, ok := t.Get(key)
	return v, ok, nil
}

// lookupDomain finds the entry for domain as the mailertable does: the
// domain, then ".parent" keys from the most specific, then ".".
func lookupDomain(m Map, domain string) (key, value string, ok bool, err error) {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	keys := []string{d}
	for i := 0; i < len(d); i++ {
		if d[i] == '.' {
			keys = append(keys, d[i:])
		}
	}
	keys = append(keys, ".")
	for _, k := range keys {
		v, ok, err := m.Find(k)
		if err != nil || ok {
			return k, v, ok, err
		}
	}
	return "", "", false, nil
}

// tempFailure is the triple of an address whose routing could not be
// decided because a map did not answer: sendmail's wording for a map's
// temporary failure. It counts as local for the relay check so that the
// 451 is what the client hears.
func tempFailure(t Triple, what string, err error) Triple {
	t.Mailer, t.Local = Error, true
	t.Err = status.New(451, "4.3.0", "Temporary system failure. Please try again later.")
	t.Steps = append(t.Steps, what+": temporary failure: "+err.Error())
	return t
}

// LDAPRouting is sendmail's FEATURE(ldap_routing): for addresses in
// Domains (class {LDAPRoute}), the directory's mailRoutingAddress and
// mailHost of "user@domain" (then "@domain") decide:
//
//	mailRoutingAddress  mailHost        result
//	set                 ours or none    the new address, routed again
//	set                 another host    the new address, relayed to mailHost
//	none                ours            the address as it is
//	none                another host    the address relayed to mailHost
//	none                none            as it is, or 550 User unknown (Bounce)
//
// "Ours" is $=w. A mailHost goes through the mailertable first (as
// sendmail's LDAPMailertable), else to the relay mailer (MX of mailHost).
// The lookups come before the virtusertable.
type LDAPRouting struct {
	Domains        addr.NameSet
	MailHost       Map // ldapmh
	RoutingAddress Map // ldapmra
	Bounce         bool
}

// ldapRoute applies LDAP routing to user@domain; done is false when the
// address goes on as it is.
func (r *Router) ldapRoute(t Triple, user, domain string, depth int) (Triple, bool) {
	lr := r.ldap
	for _, key := range []string{user + "@" + domain, "@" + domain} {
		mra, hasMRA, err := lr.RoutingAddress.Find(key)
		if err != nil {
			return tempFailure(t, "ldap_routing "+key, err), true
		}
		mh, hasMH, err := lr.MailHost.Find(key)
		if err != nil {
			return tempFailure(t, "ldap_routing "+key, err), true
		}
		mh = strings.TrimSuffix(strings.TrimSpace(mh), ".")
		local := !hasMH || mh == "" || r.names.Contains(mh)
		switch {
		case hasMRA && local:
			t.Steps = append(t.Steps, "ldap_routing: "+key+" mailRoutingAddress "+mra)
			return r.reroute(t, key, mra, depth), true
		case hasMRA:
			t.Steps = append(t.Steps, "ldap_routing: "+key+" mailRoutingAddress "+mra+" mailHost "+mh)
			return r.toMailHost(t, mh, mra), true
		case hasMH && local:
			t.Steps = append(t.Steps, "ldap_routing: "+key+" mailHost "+mh+" (ours)")
			return t, false
		case hasMH:
			t.Steps = append(t.Steps, "ldap_routing: "+key+" mailHost "+mh)
			return r.toMailHost(t, mh, user+"@"+domain), true
		}
	}
	if lr.Bounce {
		t.Mailer, t.User, t.Local = Error, user+"@"+domain, true
		t.Err = status.New(550, "5.1.1", "User unknown")
		t.Steps = append(t.Steps, "ldap_routing: no entry for "+user+"@"+domain+" nor @"+domain)
		return t, true
	}
	t.Steps = append(t.Steps, "ldap_routing: no entry, passed through")
	return t, false
}

// reroute routes a new address found for key, a bounded number of times.
func (r *Router) reroute(t Triple, key, target string, depth int) Triple {
	a, err := addr.Parse(target)
	if err != nil || a.Null || a.Has(addr.Program) || a.Has(addr.File) {
		t.Mailer, t.User, t.Local = Error, target, true
		t.Err = status.New(553, "5.3.5", "ldap_routing entry %s: invalid address", key)
		return t
	}
	if depth >= maxVirtual {
		t.Mailer, t.User, t.Local = Error, target, true
		t.Err = status.New(554, "5.4.6", "ldap_routing loop (%d deep)", depth+1)
		return t
	}
	next := r.resolve(a, depth+1)
	next.Steps = append(t.Steps, next.Steps...)
	next.Tricks |= t.Tricks
	next.Local = true
	return next
}

// toMailHost relays rcpt to a mail host: its mailertable entry, or the
// relay mailer.
func (r *Router) toMailHost(t Triple, host, rcpt string) Triple {
	t.Local, t.User = true, rcpt
	if r.mt != nil {
		key, val, ok, err := lookupDomain(r.mt, host)
		if err != nil {
			return tempFailure(t, "mailertable "+host, err)
		}
		if ok {
			m := parseValue(val, "")
			if m.Mailer != Local && m.Mailer != Error {
				t.Mailer, t.Host = m.Mailer, m.Host
				t.Steps = append(t.Steps, "mailertable: "+key+" "+val)
				return t
			}
		}
	}
	t.Mailer, t.Host = Relay, host
	return t
}

// isNil reports a nil Map, also a typed nil (*Table)(nil) in an interface.
func isNil(m Map) bool {
	if m == nil {
		return true
	}
	t, ok := m.(*Table)
	return ok && t == nil
}
