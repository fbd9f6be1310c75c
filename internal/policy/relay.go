package policy

import (
	"net/netip"
	"strings"

	"github.com/posthorn/posthorn/internal/route"
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
	// Router says where addresses go ($=w, the relay tricks, the
	// mailertable): the relay check judges the triple it returns, the one
	// delivery will use.
	Router *route.Router
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

// IsLocal reports whether domain is one of ours ($=w); "" is.
func (p *Policy) IsLocal(domain string) bool {
	return strings.TrimSpace(domain) == "" || (p.Router != nil && p.Router.IsLocal(domain))
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

// CheckRecipient decides whether rcpt (without angle brackets, as
// written) may be accepted from c as far as relaying and the To: access
// entries go; t is where the router sends it (route.Router.Resolve of the
// same parsed address), so the check judges the destination delivery
// will use: a recipient that is not for this host by name (t.Local) is
// relaying. It answers sendmail's texts: "550 5.7.1 <rcpt>... Relaying
// denied", with ". IP name lookup failed [ip]" when the client has no
// PTR and ". IP name possibly forged [ip]" when its PTR does not resolve
// back.
func (p *Policy) CheckRecipient(c Client, rcpt string, t route.Triple) (Decision, *status.Error) {
	d := p.Access.To(rcpt)
	switch d.Action {
	case Reject:
		return d, status.New(550, "5.7.1", "<%s>... Access denied", rcpt)
	case Error:
		return d, d.Err
	}
	if t.Local || d.Action == Relay || p.RelayClient(c) || p.relayDomain(t.Domain) {
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
