package addr

import (
	"net/netip"
	"strings"
)

// Names is the set of names this host accepts mail for: sendmail's class
// $=w (Cw lines, Fw files, the host's own names and interface literals such
// as "[127.0.0.1]"). Lookups are case-insensitive and ignore a trailing
// dot; a domain literal matches when its address equals that of a literal
// in the set, so "[IPv6:::1]" and "[::1]" are the same. The zero value is an
// empty set. A Names is not safe for concurrent Add; build it, then share it.
type Names struct {
	names map[string]struct{}
	ips   map[netip.Addr]struct{}
}

// NewNames returns the set holding names.
func NewNames(names ...string) *Names {
	n := &Names{}
	for _, s := range names {
		n.Add(s)
	}
	return n
}

// Add puts a name (host name or "[ip]" literal) into the set.
func (n *Names) Add(name string) {
	if n.names == nil {
		n.names = map[string]struct{}{}
		n.ips = map[netip.Addr]struct{}{}
	}
	key := normDomain(name)
	if key == "" {
		return
	}
	n.names[key] = struct{}{}
	if ip, ok := literalIP(key); ok {
		n.ips[ip] = struct{}{}
	}
}

// Contains reports whether domain is one of the local names.
func (n *Names) Contains(domain string) bool {
	if n == nil || n.names == nil {
		return false
	}
	key := normDomain(domain)
	if _, ok := n.names[key]; ok {
		return true
	}
	if ip, ok := literalIP(key); ok {
		_, ok = n.ips[ip]
		return ok
	}
	return false
}

// normDomain lower-cases a domain and drops one trailing dot.
func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// literalIP parses "[192.0.2.1]", "[IPv6:2001:db8::1]" or "[2001:db8::1]".
func literalIP(d string) (netip.Addr, bool) {
	if len(d) < 3 || d[0] != '[' || d[len(d)-1] != ']' {
		return netip.Addr{}, false
	}
	s := d[1 : len(d)-1]
	if len(s) > 5 && strings.EqualFold(s[:5], "ipv6:") {
		s = s[5:]
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// LiteralIP returns the address of a domain literal such as "[192.0.2.1]"
// or "[IPv6:::1]"; ok is false when domain is not a well-formed literal.
func LiteralIP(domain string) (ip netip.Addr, ok bool) { return literalIP(normDomain(domain)) }

// NameSet is a set of local names: *Names, or any other test of $=w.
type NameSet interface {
	Contains(domain string) bool
}

// Dest is where an address really leads once its relay tricks are followed.
type Dest struct {
	Local  bool   // delivered on this host
	User   string // local: the user name, unquoted and lower-cased (the local mailer lacks F=u); remote: the local part as written
	Domain string // remote: the next-hop domain, lower-cased, without trailing dot
	Via    string // local: the local name the address was for ("" when it had none), lower-cased
	Tricks Flags  // the relay tricks followed to get here: SourceRoute, PercentHack, BangPath
}

// String is the canonical form used to recognise duplicates: "alice" for a
// local user, "user@domain" for a remote one. Two RCPTs with equal String
// are the same recipient (sendmail echoes the first spelling for the
// second).
func (d Dest) String() string {
	if d.Local {
		return d.User
	}
	return d.User + "@" + d.Domain
}

// maxHops bounds how many tricks Resolve unwraps ("a%b%c%...@here").
const maxHops = 32

// Resolve follows an address's relay tricks against the local names, as
// sendmail.cf's canonify and parse rulesets do:
//
//   - A source route is dropped whatever its hops name: "@a,@b:user@c" is
//     user@c (canonify's "strip route address <@a,@b,@c:user@d> ->
//     <user@d>"; RFC 5321 §C lets a server ignore routes). So no route can
//     carry mail past the relay check: what is judged is where the mail
//     really goes.
//   - For a local (or unqualified) domain, "user%host" becomes user@host
//     (the rightmost '%' first) and "host!user" becomes user@host (the
//     leftmost '!' first); this repeats until the address is local or
//     leads elsewhere.
//   - Quoted local parts are never split ("\"a@b\"@here" is a local user).
//
// The null address, programs and files resolve to local with their text
// as User (callers check Null, Program and File first).
func (a Address) Resolve(n NameSet) Dest {
	var d Dest
	if a.Null || a.Flags&(Program|File) != 0 {
		return Dest{Local: true, User: a.Local}
	}
	if n == nil {
		n = (*Names)(nil) // no local names
	}
	if len(a.Route) > 0 {
		d.Tricks |= SourceRoute
	}
	local, domain := a.Local, a.Domain
	for range maxHops {
		if domain != "" && !n.Contains(domain) {
			d.User, d.Domain = local, normDomain(domain)
			return d
		}
		if i := indexUnquoted(local, '%', true); i >= 0 {
			local, domain = local[:i], local[i+1:]
			d.Tricks |= PercentHack
			continue
		}
		if i := indexUnquoted(local, '!', false); i >= 0 {
			local, domain = local[i+1:], local[:i]
			d.Tricks |= BangPath
			continue
		}
		break
	}
	if domain != "" && !n.Contains(domain) {
		d.User, d.Domain = local, normDomain(domain)
		return d
	}
	d.Local = true
	d.User = strings.ToLower(unquote(local))
	d.Via = normDomain(domain)
	return d
}

// indexUnquoted finds c outside double quotes in s: the last one when last
// is set, else the first.
func indexUnquoted(s string, c byte, last bool) int {
	found, quoted := -1, false
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\':
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == c && !quoted:
			if !last {
				return i
			}
			found = i
		}
	}
	return found
}
