package policy

import (
	"net/netip"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// Client is what relay decisions need to know about the SMTP client.
type Client struct {
	Addr          netip.Addr // zero for local (-bs) sessions
	Name          string     // verified or not PTR name, "" when none
	Forged        bool       // PTR name does not resolve back
	NoPTR         bool       // reverse lookup failed
	Authenticated bool       // AUTH succeeded
	Local         bool       // -bs by a local user: trusted like loopback
}

// Policy is the relay and access configuration of one server.
type Policy struct {
	// RelayHosts are the client networks that may relay (posthorn's
	// RelayHosts option; default 127.0.0.0/8 and ::1).
	RelayHosts []netip.Prefix
	// LocalDomains is $=w: names (and "[ip]" literals) this host accepts
	// mail for, lower case.
	LocalDomains map[string]bool
	// RelayDomains is class R: domains (and their subdomains) we relay
	// for whatever the client.
	RelayDomains map[string]bool
	// Access is the access file; nil means none.
	Access *Access
}

// DefaultRelayHosts is the RelayHosts default.
func DefaultRelayHosts() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// IsLocal reports whether domain is one of ours ($=w).
func (p *Policy) IsLocal(domain string) bool {
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	return d == "" || p.LocalDomains[d]
}

// ConnectDecision is the access file's verdict on a client (Connect:).
func (p *Policy) ConnectDecision(c Client) Decision {
	if c.Local {
		return Decision{}
	}
	name := c.Name
	if c.Forged {
		name = ""
	}
	return p.Access.Connect(c.Addr, name)
}

// RelayClient reports whether the client may relay: a RelayHosts network,
// an access Connect: RELAY entry, an authenticated or local client.
func (p *Policy) RelayClient(c Client) bool {
	if c.Local || c.Authenticated {
		return true
	}
	if c.Addr.IsValid() {
		a := c.Addr.Unmap()
		for _, n := range p.RelayHosts {
			if n.Contains(a) {
				return true
			}
		}
	}
	return p.ConnectDecision(c).Action == Relay
}

// CheckSender applies the From: entries of the access file. A DISCARD
// verdict is returned as Decision.Action for the caller to honour.
func (p *Policy) CheckSender(addr string) (Decision, *status.Error) {
	if addr == "" {
		addr = "<>"
	}
	d := p.Access.From(addr)
	switch d.Action {
	case Reject:
		return d, status.New(550, "5.7.1", "<%s>... Access denied", addr)
	case Error:
		return d, d.Err
	}
	return d, nil
}

// Destination works out where an address finally goes once the relay
// tricks are unwrapped: a source route "@a,@b:user@c" goes to c; on a
// local domain, "user%host" and "host!user" local parts go to host and a
// quoted local part containing '@' goes to what follows its last '@'.
// remote is false when the address stays on this host.
func (p *Policy) Destination(addr string) (domain string, remote bool) {
	a := addr
	if strings.HasPrefix(a, "@") {
		// source route: the route ends at the first ':'
		if i := strings.IndexByte(a, ':'); i >= 0 {
			a = a[i+1:]
		}
	}
	for range 8 { // a bounded number of unwrappings
		local, dom := splitAddr(a)
		if dom != "" && !p.IsLocal(dom) {
			return strings.ToLower(dom), true
		}
		unq := local
		if len(unq) >= 2 && unq[0] == '"' && unq[len(unq)-1] == '"' {
			unq = unq[1 : len(unq)-1]
		}
		switch {
		case strings.ContainsRune(unq, '@'):
			a = unq
		case strings.ContainsRune(unq, '%'):
			i := strings.LastIndexByte(unq, '%')
			a = unq[:i] + "@" + unq[i+1:]
		case strings.ContainsRune(unq, '!'):
			i := strings.IndexByte(unq, '!')
			a = unq[i+1:] + "@" + unq[:i]
		default:
			return strings.ToLower(dom), false
		}
	}
	return "", true // too deeply nested: treat as relaying
}

// CheckRecipient decides whether rcpt (without angle brackets) may be
// accepted from c as far as relaying and the To: access entries go. It
// answers sendmail's texts: "550 5.7.1 <rcpt>... Relaying denied", with
// ". IP name lookup failed [ip]" when the client has no PTR and ". IP
// name possibly forged [ip]" when its PTR does not resolve back.
func (p *Policy) CheckRecipient(c Client, rcpt string) (Decision, *status.Error) {
	d := p.Access.To(rcpt)
	switch d.Action {
	case Reject:
		return d, status.New(550, "5.7.1", "<%s>... Access denied", rcpt)
	case Error:
		return d, d.Err
	}
	domain, remote := p.Destination(rcpt)
	if !remote || d.Action == Relay || p.RelayClient(c) || p.relayDomain(domain) {
		return d, nil
	}
	switch {
	case c.NoPTR:
		return d, status.New(550, "5.7.1", "<%s>... Relaying denied. IP name lookup failed [%s]", rcpt, c.Addr)
	case c.Forged:
		return d, status.New(550, "5.7.1", "<%s>... Relaying denied. IP name possibly forged [%s]", rcpt, c.Addr)
	}
	return d, status.New(550, "5.7.1", "<%s>... Relaying denied", rcpt)
}

// relayDomain reports whether domain or a parent is in class R or has a
// To: RELAY access entry.
func (p *Policy) relayDomain(domain string) bool {
	if domain == "" {
		return false
	}
	for _, k := range domainKeys(domain) {
		if p.RelayDomains[k] {
			return true
		}
	}
	return p.Access.walk("to:", domainKeys(domain)).Action == Relay
}

// SenderBelongs reports whether an authenticated user may use sender as
// MAIL FROM on the submission port: the null sender, the bare user name,
// or user@ one of our domains (compared without case).
func (p *Policy) SenderBelongs(user, sender string) bool {
	if sender == "" {
		return true
	}
	local, domain := splitAddr(sender)
	if !strings.EqualFold(local, user) {
		return false
	}
	return domain == "" || p.IsLocal(domain)
}
