// Package route decides where an address goes: the mailer triple
// (mailer, host, user) that sendmail's parse ruleset (ruleset 0) returns
// and that -bv and -bt print. It is the one answer for every part of
// posthorn that asks: the RCPT-time relay check and the SMTP backend, the
// alias expander (-bv, EXPN/VRFY, acceptance), and the queue runner at
// delivery. Resolve asks no DNS (the relay client looks up the MX of the
// host it is given); with file maps it is pure, the same address and
// configuration always giving the same triple. Maps in a directory (LDAP,
// see Map) can fail: the address then resolves to a temporary error.
//
// # Order
//
//  1. Programs ("|cmd") and files ("/path") go to the prog and *file*
//     mailers; "error:" targets (aliases, mailertable, failed list members
//     in a qf) to the error mailer (see ParseErrorTarget).
//  2. The relay tricks are followed (addr.Address.Resolve): source routes
//     are dropped, "user%host@ours" and "host!user@ours" lead to host.
//     An address whose domain is one of ours ($=w: case-insensitive,
//     trailing dot ignored, "[our IP]" literals) or that has no domain is
//     local: mailer local, user the lower-cased local part. Aliases and
//     ~/.forward apply to local triples (package aliases), except for
//     "\user".
//  3. An address whose domain is in class {LDAPRoute} is looked up in
//     the directory first (LDAPRouting, sendmail's FEATURE(ldap_routing)).
//     3b. An address for one of our names or for a virtual domain (class
//     {VirtHost}) is looked up in the virtusertable (VirtUserTable, as
//     sendmail's FEATURE(virtusertable)): "user+detail@domain",
//     "user+*@domain", "user@domain", then "@domain"; the target (a local
//     user, an address routed again, or an error: target; %1 the user, %2
//     the detail, %3 "+detail") replaces the address. A virtual domain
//     without an entry is an unknown user; one of ours goes on as local.
//     Virtual addresses are local for the relay check, whatever the
//     target.
//  4. A remote domain is looked up in the mailertable (MailerTable): the
//     domain itself, then ".parent" entries from the most to the least
//     specific ("a.b.example" tries "a.b.example", ".b.example",
//     ".example"), then "." as a catch-all.
//  5. Without an entry, the smart host ($S, sendmail.cf's DS line, as
//     SMART_HOST): mailer relay, or the mailer it names ("esmtp:[host]").
//  6. Otherwise mailer esmtp, host the domain: the relay client walks its
//     MX records (implicit MX when there are none).
//
// # Hosts
//
// The host of an SMTP-class triple (esmtp, smtp, smtp8, dsmtp, relay) is
// what the relay client connects to: "example.com" means the MX records of
// example.com; "[mx.example.com]" that host's address records, no MX;
// "[192.0.2.1]" or "[IPv6:2001:db8::1]" that address. Any of them may end
// in ":port" (a posthorn extension; sendmail's mailers fix the port).
//
// # Mailertable
//
// The file (MailerTable, plain text like the source of sendmail's makemap)
// has one entry per line, "key value", '#' comments and blank lines
// ignored:
//
//	example.com        esmtp:[mail.example.com]     that host, no MX lookup
//	example.net        esmtp:[10.0.0.5]:2525        an address and port
//	.example.org       smtp:mx.example.org          subdomains: MX of mx.example.org, plain SMTP
//	lists.example      relay:[lists-gw.internal]
//	shop.example       local:shopmaster             all of shop.example to one local user
//	intra.example      local:                       local users, by their local part
//	bad.example        error:5.7.1:550 we do not take mail for bad.example
//	.                  esmtp:[fallback.example]     everything else
//
// The virtusertable has the same layout:
//
//	info@example.com      alice                 a local user (aliases apply)
//	sales@example.com     bob@partner.example   forwarded
//	bob+*@example.com     bob-%2@lists.example  plus-addresses
//	spam@example.com      error:5.7.1:550 no    refused
//	@example.com          %1@other.example      everything else of the domain
//
// A line that cannot be read is skipped and reported (Warnings); a missing
// file is an empty table. The files are read again when they change.
//
// A domain routed to the local mailer by the mailertable is not one of ours
// for the relay check (sendmail's check_rcpt does not consult the
// mailertable either): Triple.Local stays false, and outsiders may send to
// it only when relaying to it is allowed (class R, access To: RELAY).
package route

import (
	"strings"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/status"
)

// Mailer names, as sendmail prints them.
const (
	Local = "local"
	Prog  = "prog"
	File  = "*file*"
	ESMTP = "esmtp"
	SMTP  = "smtp"
	SMTP8 = "smtp8"
	DSMTP = "dsmtp"
	Relay = "relay"
	Error = "error"
)

// IsSMTP reports whether mailer is one the relay client delivers.
func IsSMTP(mailer string) bool {
	switch mailer {
	case ESMTP, SMTP, SMTP8, DSMTP, Relay:
		return true
	}
	return false
}

// Triple is where one address goes.
type Triple struct {
	Mailer string // Local, Prog, File, an SMTP mailer, or Error
	Host   string // SMTP mailers: see "Hosts"; "" otherwise
	User   string // local: the user; prog: "|cmd"; file: the path; SMTP: the address for RCPT TO
	Err    *status.Error
	// Local is the relay check's view: the address is for this host by
	// name ($=w, or no domain), programs and files included.
	Local bool
	// Domain is the recipient's domain after the relay tricks, lower
	// case, for an address that is not Local: what relaying is judged on.
	Domain string
	// NoAlias marks "\user": the local mailbox, no alias or .forward.
	NoAlias bool
	// Tricks are the relay forms the address used (addr.SourceRoute,
	// addr.PercentHack, addr.BangPath).
	Tricks addr.Flags
	// Steps say why, one line each, for -bt.
	Steps []string
}

// Key identifies the destination for duplicate detection: two addresses
// with the same Key are one delivery (sendmail's sameaddr: the local
// mailer compares users without case, SMTP mailers compare the host
// without case and the user as written but for the domain).
func (t Triple) Key() string {
	switch t.Mailer {
	case Local:
		return "local\x00" + strings.ToLower(t.User)
	case Error:
		return "error\x00" + t.User
	}
	user := t.User
	if at := strings.LastIndexByte(user, '@'); at >= 0 {
		user = user[:at] + "@" + strings.ToLower(user[at+1:])
	}
	return t.Mailer + "\x00" + strings.ToLower(t.Host) + "\x00" + user
}

// Config is what routing depends on.
type Config struct {
	Names       addr.NameSet // $=w: an *addr.Names, or LocalFunc
	MailerTable Map          // nil: none
	// VirtUserTable maps addresses of virtual domains (sendmail's
	// FEATURE(virtusertable)); nil: none.
	VirtUserTable Map
	// LDAPRouting is FEATURE(ldap_routing); nil: none.
	LDAPRouting *LDAPRouting
	// VirtHosts are domains handled by the virtusertable without being in
	// $=w (class {VirtHost}); they are local for the relay check.
	VirtHosts addr.NameSet
	// SmartHost is $S (sendmail.cf "DS…"): "[host]", "host", "[host]:port"
	// or "mailer:host"; "" for none.
	SmartHost string
}

// LocalFunc adapts a function to addr.NameSet. It is given domains lower
// case and without a trailing dot.
type LocalFunc func(domain string) bool

// Contains calls f with the normalised domain.
func (f LocalFunc) Contains(domain string) bool {
	return f(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(domain)), "."))
}

// Router resolves addresses. It is safe for concurrent use.
type Router struct {
	names addr.NameSet
	mt    Map
	vt    Map
	ldap  *LDAPRouting
	virt  addr.NameSet
	smart Triple // Mailer "" when there is no smart host
}

// New returns a Router for cfg.
func New(cfg Config) *Router {
	r := &Router{names: cfg.Names, mt: cfg.MailerTable, vt: cfg.VirtUserTable, virt: cfg.VirtHosts, ldap: cfg.LDAPRouting}
	if r.ldap != nil && (r.ldap.Domains == nil || r.ldap.MailHost == nil || r.ldap.RoutingAddress == nil) {
		r.ldap = nil
	}
	if isNil(r.mt) {
		r.mt = nil
	}
	if isNil(r.vt) {
		r.vt = nil
	}
	if r.names == nil {
		r.names = addr.NewNames()
	}
	if s := strings.TrimSpace(cfg.SmartHost); s != "" {
		r.smart = parseValue(s, Relay)
		if r.smart.Mailer == Local || r.smart.Mailer == Error {
			// sendmail's SMART_HOST names a host; anything else is a
			// configuration error that must not swallow remote mail.
			r.smart = Triple{Mailer: Relay, Host: s}
		}
	}
	return r
}

// IsLocal reports whether domain is one of ours ($=w).
func (r *Router) IsLocal(domain string) bool { return r.names.Contains(domain) }

// ResolveString parses s as sendmail's parseaddr does (display names and
// comments allowed, "|prog", "/file" and "error:" targets taken as they
// are) and resolves it. A syntax error is returned as such.
func (r *Router) ResolveString(s string) (Triple, error) {
	s = strings.TrimSpace(s)
	if spec, ok := cutPrefixFold(s, "error:"); ok {
		return errorTriple(s, spec), nil
	}
	a, err := addr.Parse(s)
	if err != nil {
		return Triple{}, err
	}
	return r.Resolve(a), nil
}

// Resolve returns the triple of a parsed address. The null address
// resolves to the local mailer with an empty user; callers that need a
// recipient refuse it first. "error:" targets are not addresses: only
// ResolveString, for aliases and queue files, knows them.
func (r *Router) Resolve(a addr.Address) Triple {
	switch {
	case a.Has(addr.Program):
		return Triple{Mailer: Prog, User: a.Local, Local: true, Steps: []string{"program"}}
	case a.Has(addr.File):
		return Triple{Mailer: File, User: a.Local, Local: true, Steps: []string{"file"}}
	}
	return r.resolve(a, 0)
}

// maxVirtual bounds how often a virtusertable target may lead into the
// virtusertable again.
const maxVirtual = 5

func (r *Router) resolve(a addr.Address, depth int) Triple {
	d := a.Resolve(r.names)
	t := Triple{Tricks: d.Tricks}
	if d.Tricks&addr.SourceRoute != 0 {
		t.Steps = append(t.Steps, "source route dropped")
	}
	if d.Tricks&(addr.PercentHack|addr.BangPath) != 0 {
		t.Steps = append(t.Steps, "relay form followed to "+d.String())
	}
	if r.ldap != nil {
		domain := d.Domain
		if d.Local {
			domain = d.Via
		}
		if domain != "" && r.ldap.Domains.Contains(domain) {
			user := strings.ToLower(addr.Address{Local: d.User}.LocalUnquoted())
			lt, done := r.ldapRoute(t, user, strings.ToLower(domain), depth)
			if done {
				return lt
			}
			t = lt
		}
	}
	virtual := !d.Local && r.virt != nil && r.virt.Contains(d.Domain)
	if r.vt != nil && (virtual || d.Local && d.Via != "") {
		domain := d.Via
		user := strings.ToLower(addr.Address{Local: d.User}.LocalUnquoted())
		if virtual {
			domain = d.Domain
		}
		key, target, ok, err := r.virtualTarget(user, domain)
		if err != nil {
			return tempFailure(t, "virtusertable", err)
		}
		if ok {
			return r.virtualTriple(t, key, target, depth)
		}
		if virtual {
			t.Mailer, t.User, t.Local = Error, d.User+"@"+d.Domain, true
			t.Err = status.New(550, "5.1.1", "User unknown")
			t.Steps = append(t.Steps, "virtusertable: no entry for "+user+"@"+domain+" nor @"+domain)
			return t
		}
	}
	if d.Local {
		t.Mailer, t.User, t.Local = Local, d.User, true
		t.NoAlias = d.Tricks == 0 && strings.HasPrefix(a.Local, `\`)
		t.Steps = append(t.Steps, "local: "+localWhy(a, d))
		return t
	}
	t.Domain = d.Domain
	if !validHost(d.Domain) {
		// Quotes, "@" or empty labels in a host name can only come from
		// a relay trick gone wrong ("\"a@b\"!user"): no mailer gets it.
		t.Mailer, t.User, t.Local = Error, a.String(), true
		t.Err = status.New(553, "5.1.2", "Invalid host name")
		t.Steps = append(t.Steps, "invalid host name "+d.Domain)
		return t
	}
	rcpt := d.User + "@" + d.Domain
	if r.mt != nil {
		key, val, ok, err := lookupDomain(r.mt, d.Domain)
		if err != nil {
			return tempFailure(t, "mailertable", err)
		}
		if ok {
			m := parseValue(val, "")
			t.Mailer, t.Host, t.Err = m.Mailer, m.Host, m.Err
			t.User = rcpt
			switch m.Mailer {
			case Local:
				t.User = m.User
				if t.User == "" {
					t.User = strings.ToLower(addr.Address{Local: d.User}.LocalUnquoted())
				}
			}
			t.Steps = append(t.Steps, "mailertable: "+key+" "+val)
			return t
		}
	}
	if r.smart.Mailer != "" {
		t.Mailer, t.Host, t.User = r.smart.Mailer, r.smart.Host, rcpt
		t.Steps = append(t.Steps, "smart host: "+r.smart.Host)
		return t
	}
	t.Mailer, t.Host, t.User = ESMTP, d.Domain, rcpt
	t.Steps = append(t.Steps, "MX of "+d.Domain)
	return t
}

func localWhy(a addr.Address, d addr.Dest) string {
	if a.Domain == "" && d.Tricks == 0 {
		return "no domain, user " + d.User
	}
	return "our name ($=w), user " + d.User
}

// validHost reports whether h (lower case, one trailing dot removed) can
// name a host: a domain literal "[...]", or labels of letters, digits,
// '-' and '_' joined by single dots.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	if h[0] == '[' {
		if len(h) < 3 || h[len(h)-1] != ']' {
			return false
		}
		return !strings.ContainsAny(h[1:len(h)-1], "[]@\"\\ ")
	}
	label := 0
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case c == '.':
			if label == 0 {
				return false
			}
			label = 0
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			label++
			if label > 63 {
				return false
			}
		default:
			return false
		}
	}
	return label > 0
}

// errorTriple is an "error:" target as written (raw) with its spec.
func errorTriple(raw, spec string) Triple {
	return Triple{Mailer: Error, User: raw, Err: ParseErrorTarget(spec), Local: true, Steps: []string{"error target"}}
}

// parseValue reads a mailertable value or a smart host: "mailer:host",
// "local:user", "error:…", or a bare host, which gets mailer def.
func parseValue(v, def string) Triple {
	v = strings.TrimSpace(v)
	if m, rest, ok := strings.Cut(v, ":"); ok && !strings.HasPrefix(v, "[") {
		switch strings.ToLower(m) {
		case Local:
			return Triple{Mailer: Local, User: strings.ToLower(strings.TrimSpace(rest))}
		case Error:
			return Triple{Mailer: Error, Err: ParseErrorTarget(rest)}
		case ESMTP, SMTP, SMTP8, DSMTP, Relay:
			return Triple{Mailer: strings.ToLower(m), Host: strings.TrimSpace(rest)}
		}
	}
	if def == "" {
		def = ESMTP
	}
	return Triple{Mailer: def, Host: v}
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}
