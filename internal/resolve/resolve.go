// Package resolve is posthorn's DNS client for mail routing (miekg/dns):
// the mail exchangers of a domain in the order to try them, the addresses
// of a host, and the sender-domain check of MAIL FROM.
//
// This file fixes the API the relay client and the SMTP server use; the
// lookups themselves are being written (see the relay-client issue).
package resolve

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// MX is one mail exchanger to try.
type MX struct {
	Host     string // lower case, without the trailing dot
	Pref     uint16 // MX preference; 0 for an implicit MX
	Implicit bool   // the domain had no MX records: its own A/AAAA (RFC 5321 §5.1)
}

// Config configures a Resolver.
type Config struct {
	// Servers are "host:port" addresses to ask (ResolverServers); empty:
	// the nameservers of /etc/resolv.conf.
	Servers []string
	// IsLocal reports whether a host name is one of ours ($=w), to drop
	// MX records that point back at us.
	IsLocal func(host string) bool
	Timeout time.Duration    // per query try; 0: sendmail's default
	Retries int              // tries per server; 0: sendmail's default
	Now     func() time.Time // the cache's clock; nil: time.Now
}

// Resolver answers routing questions. It is safe for concurrent use.
type Resolver struct {
	cfg Config
}

// New returns a Resolver.
func New(cfg Config) *Resolver { return &Resolver{cfg: cfg} }

var errNotYet = errors.New("resolve: not implemented yet")

// Exchangers returns the hosts to try for mail to domain, best first.
// Errors are *status.Error: permanent for a domain that does not exist or
// has a null MX, temporary for SERVFAIL and timeouts.
func (r *Resolver) Exchangers(ctx context.Context, domain string) ([]MX, error) {
	return nil, errNotYet
}

// Addrs returns the IPv4 and IPv6 addresses of host (A and AAAA, CNAMEs
// followed). Errors as for Exchangers.
func (r *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	return nil, errNotYet
}

// SenderDomain checks the domain of a MAIL FROM address as sendmail does:
// nil when it resolves (MX or A/AAAA), a permanent *status.Error when it
// does not exist, a temporary one when the lookup failed.
func (r *Resolver) SenderDomain(ctx context.Context, domain string) error {
	return errNotYet
}
