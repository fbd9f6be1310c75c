// Package resolve is posthorn's DNS client for mail routing (miekg/dns):
// the mail exchangers of a domain in the order to try them, the addresses
// of a host, and the sender-domain check of MAIL FROM. It asks the servers
// itself instead of going through the C library or net.Resolver, because
// routing needs what those hide: NXDOMAIN apart from SERVFAIL, NODATA, the
// null MX, the TTLs.
//
// # Mail exchangers (Exchangers), as sendmail's getmxrr
//
//   - The MX records of the domain, a CNAME at the domain followed; sorted
//     by preference, hosts of equal preference in random order (sendmail
//     hashes the names with a per-process seed; the effect is the same: load
//     is spread and no host is always first). Duplicates are dropped.
//   - Our own names (Config.IsLocal: $=w, case-insensitive, trailing dot
//     ignored) are dropped, and with them every MX whose preference is at or
//     above our own best one, so we never relay to a host that would send
//     the mail back. When that leaves nothing, the mail loops.
//   - No MX records, but the domain exists (NOERROR/NODATA for MX): the
//     implicit MX of RFC 5321 §5.1, the domain itself with Implicit set, if
//     it has an A or AAAA record.
//   - A null MX ("MX 0 .", RFC 7505) as the only record: the domain takes no
//     mail. A "." among real MX records is ignored.
//   - A bracketed address literal ("[192.0.2.1]") is returned as its own
//     implicit MX without asking anyone; the relay connects to it.
//
// Names are absolute (no search list) and ASCII: without SMTPUTF8 an
// internationalized domain arrives as A-labels ("xn--..."); a name that is
// not ASCII or not a valid domain name is "host not found" without asking.
//
// # Addresses (Addrs)
//
// AAAA and A are asked together, CNAMEs followed (at most 10, sendmail's
// MAXCNAMEDEPTH). The IPv6 addresses come first, then the IPv4 ones, each
// in the server's order: sendmail on a host that can open an IPv6 socket
// (InetMode AF_INET6) tries IPv6 first and falls back to IPv4. An IP
// address given as the host (bare or bracketed) is returned as is.
//
// # Sender domain (SenderDomain, CheckSender)
//
// sendmail's check_mail ruleset asks the resolve map (getcanonname) for the
// domain of the MAIL FROM address: A, then MX; a domain with only an MX
// exists. posthorn asks A, AAAA, then MX (sendmail in IPv4 mode would refuse
// a domain with only AAAA records, which is no longer sensible) and stops at
// the first answer with records. NXDOMAIN, or no record of any of the
// three, is "does not exist"; a temporary failure of any lookup with no
// records found is "does not resolve". A domain literal, a domain of ours
// and an address without a domain are always fine. Sendmail answers the
// check at the first RCPT (FEATURE(delay_checks), as Debian builds it: a
// relay refusal for that recipient comes first) or at MAIL FROM without
// delay_checks; FEATURE(accept_unresolvable_domains) turns it off, which is
// posthorn's AcceptUnresolvableDomains option (the caller skips the call).
//
// # Texts
//
// Errors are *status.Error, with sendmail's wording (deliver.c giveresponse,
// err.c sm_errstring, domain.c, proto.m4). Text is what follows the codes,
// without the "<addr>... " prefix that the caller adds:
//
//	550 5.1.2  Host unknown (Name server: x: host not found)       NXDOMAIN
//	550 5.1.2  Host unknown (Name server: x: no data known)         the name exists, no MX/A/AAAA
//	451 4.4.3  Deferred: Name server: x: host name lookup failure   SERVFAIL, REFUSED, timeout
//	451 4.4.3  Deferred: DNS failure: CNAME loop for x              a CNAME chain longer than 10
//	556 5.1.10 Host does not accept mail: MX 0 .                    null MX (sendmail's ERRNULLMX)
//	554 5.3.5  x config error: mail loops back to me (MX problem?)  every MX is us or worse than us
//	553 5.1.8  Domain of sender address a does not exist            sender check, NXDOMAIN/no data
//	451 4.1.8  Domain of sender address a does not resolve          sender check, temporary failure
//
// The temporary lookup failure is sendmail's "Deferred: " sysexits text with
// the resolver's TRY_AGAIN message; its enhanced code is 4.4.3, the one
// sendmail's makeconnection gives a host lookup that failed temporarily.
// Sendmail reports an MX list that points back at itself as "MX list for x
// points back to y" with "554 5.3.5 Local configuration error"; the relay
// client turns this error into exactly that (it knows $j), and -bt's /mx
// shows the text here, the wording of sendmail's greeting check for the
// same loop.
//
// # Transport and servers
//
// Questions go over UDP with EDNS0 (1232-byte buffer), and again over TCP
// to the same server when the answer is truncated; a server that answers
// FORMERR to EDNS0 is asked again without it. Servers are Config.Servers
// (ResolverServers), else the first three nameserver lines of resolv.conf,
// else 127.0.0.1. Each question goes to each server in turn, for Retries
// rounds, waiting Timeout per try: resolv.conf's "options timeout:n
// attempts:n" when Config leaves them 0, else the resolver library's
// defaults that sendmail keeps (5 s, 2 rounds; Timeout.resolver.retrans and
// Timeout.resolver.retry set them). SERVFAIL, REFUSED and the like move on
// to the next server; a name is absolute (no search list).
//
// # DNSSEC (SecureExchangers, SecureAddrs, TLSA, TXT)
//
// posthorn does not validate DNSSEC itself; it trusts the AD bit of a
// validating resolver the admin names, and only that one: the servers of
// Config.Validating, every server with Config.TrustAD (sendmail's
// ResolverOptions=+TRUSTAD), or the resolv.conf servers when resolv.conf
// says "options trust-ad" (glibc's marking). Questions to such a server
// set AD (RFC 6840 §5.7); an answer is secure when the server set AD in
// it, for every step of a CNAME chain. AD from any other server is
// ignored, so an answer through an unmarked server is never secure. A
// bogus answer comes back from a validating resolver as SERVFAIL: a
// temporary failure. The Secure* lookups and TLSA report whether their
// answer was secure, for DANE (RFC 7672 §2.1.1); TXT is for MTA-STS and
// TLS reporting, which need no DNSSEC.
//
// # Cache
//
// Answers are kept per (name, type) for the smallest TTL of the records
// used, CNAMEs included; NXDOMAIN and NODATA for the SOA's minimum (RFC 2308,
// not kept without an SOA); never longer than an hour (sendmail's
// SM_DEFAULT_TTL cap on host signatures). Temporary failures are not kept.
// The cache holds Config.CacheSize answers (4096 by default) and uses
// Config.Now as its clock.
package resolve

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/status"
)

// MX is one mail exchanger to try.
type MX struct {
	Host     string // lower case, without the trailing dot
	Pref     uint16 // MX preference; 0 for an implicit MX
	Implicit bool   // the domain had no MX records: its own A/AAAA (RFC 5321 §5.1)
}

// Config configures a Resolver.
type Config struct {
	// Servers are "host:port" addresses to ask (ResolverServers); a bare
	// host means port 53. Empty: the nameservers of resolv.conf.
	Servers []string
	// IsLocal reports whether a host name is one of ours ($=w), to drop
	// MX records that point back at us. nil: no name is ours.
	IsLocal func(host string) bool
	Timeout time.Duration    // per query try; 0: resolv.conf's timeout, else 5 s
	Retries int              // rounds over the servers; 0: resolv.conf's attempts, else 2
	Now     func() time.Time // the cache's clock; nil: time.Now

	// ResolvConf is the resolv.conf to read; "": /etc/resolv.conf.
	ResolvConf string
	// Shuffle puts MX hosts of equal preference in random order; nil:
	// math/rand/v2's Shuffle. Tests give a deterministic one.
	Shuffle func(n int, swap func(i, j int))
	// CacheSize bounds the number of answers kept; 0: 4096.
	CacheSize int
	// Validating lists servers ("host:port"; a bare host means port 53)
	// that validate DNSSEC: their AD bit makes an answer secure. TrustAD
	// marks every server so. AD from other servers is never trusted.
	Validating []string
	TrustAD    bool
}

// Resolver answers routing questions. It is safe for concurrent use.
type Resolver struct {
	cfg     Config
	tr      transport
	cache   *cache
	now     func() time.Time
	shuffle func(n int, swap func(i, j int))
}

// New returns a Resolver. It reads resolv.conf once, now.
func New(cfg Config) *Resolver {
	r := &Resolver{cfg: cfg, tr: newTransport(cfg), cache: newCache(cfg.CacheSize), now: cfg.Now, shuffle: cfg.Shuffle}
	if r.now == nil {
		r.now = time.Now
	}
	if r.shuffle == nil {
		r.shuffle = rand.Shuffle
	}
	return r
}

// Exchangers returns the hosts to try for mail to domain, best first.
// Errors are *status.Error: permanent for a domain that does not exist or
// has a null MX, or whose MX list leads back to us; temporary for SERVFAIL
// and timeouts.
func (r *Resolver) Exchangers(ctx context.Context, domain string) ([]MX, error) {
	mxs, _, err := r.SecureExchangers(ctx, domain)
	return mxs, err
}

// SecureExchangers is Exchangers, and whether the MX answer was
// authenticated (see DNSSEC in the package comment). For an implicit MX
// it is whether the absence of MX records was.
func (r *Resolver) SecureExchangers(ctx context.Context, domain string) ([]MX, bool, error) {
	name, lit, err := canonName(domain, true)
	if err != nil {
		return nil, false, err
	}
	if lit.IsValid() {
		return []MX{{Host: lit.String(), Implicit: true}}, false, nil
	}
	a, err := r.lookup(ctx, name, dns.TypeMX)
	if err != nil {
		return nil, false, lookupFailure(name, err)
	}
	if a.nxdomain {
		return nil, false, hostNotFound(name)
	}
	if len(a.rrs) == 0 {
		if _, err := r.Addrs(ctx, name); err != nil {
			return nil, false, err
		}
		if r.isLocal(name) {
			return nil, false, mailLoops(name)
		}
		return []MX{{Host: name, Implicit: true}}, a.secure, nil
	}
	mxs, err := r.order(name, a.rrs)
	return mxs, a.secure, err
}

// order turns MX records into the list to try (see the package comment).
func (r *Resolver) order(domain string, rrs []dns.RR) ([]MX, error) {
	var list []MX
	null, seenLocal := false, false
	var localPref uint16
	for _, rr := range rrs {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		host := normName(mx.Mx)
		switch {
		case host == "":
			null = true
		case r.isLocal(host):
			if !seenLocal || mx.Preference < localPref {
				localPref = mx.Preference
			}
			seenLocal = true
		default:
			list = append(list, MX{Host: host, Pref: mx.Preference})
		}
	}
	if null && !seenLocal && len(list) == 0 {
		return nil, status.New(556, "5.1.10", "Host does not accept mail: MX 0 .")
	}
	r.shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
	sort.SliceStable(list, func(i, j int) bool { return list[i].Pref < list[j].Pref })
	out := list[:0]
	seen := map[string]bool{}
	for _, mx := range list {
		if seenLocal && mx.Pref >= localPref {
			break
		}
		if !seen[mx.Host] {
			seen[mx.Host] = true
			out = append(out, mx)
		}
	}
	if len(out) == 0 {
		return nil, mailLoops(domain)
	}
	return out, nil
}

// Addrs returns the IPv6 and IPv4 addresses of host (AAAA and A, CNAMEs
// followed). Errors as for Exchangers.
func (r *Resolver) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, _, err := r.SecureAddrs(ctx, host)
	return addrs, err
}

// SecureAddrs is Addrs, and whether the addresses were authenticated:
// every address RRset that has records was (RFC 7672 §2.2.2). An address
// literal is not.
func (r *Resolver) SecureAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error) {
	name, lit, err := canonName(host, false)
	if err != nil {
		return nil, false, err
	}
	if lit.IsValid() {
		return []netip.Addr{lit}, false, nil
	}
	var v6, v4 answer
	var err6, err4 error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		v6, err6 = r.lookup(ctx, name, dns.TypeAAAA)
	}()
	v4, err4 = r.lookup(ctx, name, dns.TypeA)
	wg.Wait()
	var out []netip.Addr
	for _, rr := range v6.rrs {
		if a, ok := netip.AddrFromSlice(rr.(*dns.AAAA).AAAA); ok {
			out = append(out, a)
		}
	}
	for _, rr := range v4.rrs {
		if a, ok := netip.AddrFromSlice(rr.(*dns.A).A.To4()); ok {
			out = append(out, a)
		}
	}
	secure := (len(v6.rrs) == 0 || v6.secure) && (len(v4.rrs) == 0 || v4.secure)
	switch {
	case len(out) > 0:
		return out, secure, nil
	case err4 != nil:
		return nil, false, lookupFailure(name, err4)
	case err6 != nil:
		return nil, false, lookupFailure(name, err6)
	case v4.nxdomain || v6.nxdomain:
		return nil, false, hostNotFound(name)
	default:
		return nil, false, status.New(550, "5.1.2", "Host unknown (Name server: %s: no data known)", name)
	}
}

// SenderDomain checks the domain of a MAIL FROM address as sendmail does:
// nil when it resolves (A, AAAA or MX), a permanent *status.Error when it
// does not exist, a temporary one when the lookup failed. The texts name
// the domain; CheckSender names the whole address, as sendmail's reply.
func (r *Resolver) SenderDomain(ctx context.Context, domain string) error {
	return r.senderCheck(ctx, domain, domain)
}

// CheckSender is SenderDomain for a whole MAIL FROM address (without the
// angle brackets): nil for the null sender and an address without a
// domain, else the verdict on the part after the last '@', with sendmail's
// text ("Domain of sender address someone@client.example does not exist").
// The SMTP server puts "<rcpt>... " in front when it answers a RCPT.
func (r *Resolver) CheckSender(ctx context.Context, sender string) error {
	at := strings.LastIndexByte(sender, '@')
	if at < 0 || at == len(sender)-1 {
		return nil
	}
	return r.senderCheck(ctx, sender[at+1:], sender)
}

func (r *Resolver) senderCheck(ctx context.Context, domain, shown string) error {
	d := strings.TrimSuffix(domain, ".")
	if d == "" || strings.HasPrefix(d, "[") || r.isLocal(d) {
		return nil
	}
	name, _, err := canonName(d, true)
	if err != nil {
		return status.New(553, "5.1.8", "Domain of sender address %s does not exist", shown)
	}
	var temp error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX} {
		a, err := r.lookup(ctx, name, qt)
		switch {
		case err != nil:
			temp = err
		case len(a.rrs) > 0:
			return nil
		case a.nxdomain:
			return status.New(553, "5.1.8", "Domain of sender address %s does not exist", shown)
		}
	}
	if temp != nil {
		return status.Wrap(temp, 451, "4.1.8", "Domain of sender address %s does not resolve", shown)
	}
	return status.New(553, "5.1.8", "Domain of sender address %s does not exist", shown)
}

func (r *Resolver) isLocal(host string) bool {
	return r.cfg.IsLocal != nil && r.cfg.IsLocal(normName(host))
}

// canonName turns a domain or host as written in an address into the name
// to ask for: lower case, no trailing dot. An address literal comes back in lit: bracketed always, bare
// unless bracketedOnly (a bare IP is no mail domain, but may be a host).
func canonName(s string, bracketedOnly bool) (name string, lit netip.Addr, err error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	if inner, ok := strings.CutPrefix(s, "["); ok {
		inner, ok = strings.CutSuffix(inner, "]")
		if len(inner) > 5 && strings.EqualFold(inner[:5], "IPv6:") {
			inner = inner[5:]
		}
		if a, perr := netip.ParseAddr(inner); ok && perr == nil && a.Zone() == "" {
			return "", a, nil
		}
		return "", netip.Addr{}, hostNotFound(s)
	}
	if !bracketedOnly {
		if a, perr := netip.ParseAddr(s); perr == nil && a.Zone() == "" {
			return "", a, nil
		}
	}
	name = strings.ToLower(s)
	if !isASCII(name) {
		// Without SMTPUTF8 a domain is ASCII; an IDN comes as A-labels.
		return "", netip.Addr{}, hostNotFound(name)
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", netip.Addr{}, hostNotFound(name)
	}
	return name, netip.Addr{}, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hostNotFound(name string) *status.Error {
	return status.New(550, "5.1.2", "Host unknown (Name server: %s: host not found)", name)
}

func mailLoops(name string) *status.Error {
	return status.New(554, "5.3.5", "%s config error: mail loops back to me (MX problem?)", name)
}

func lookupFailure(name string, err error) *status.Error {
	if errors.Is(err, errCNAMELoop) {
		return status.Wrap(err, 451, "4.4.3", "Deferred: DNS failure: CNAME loop for %s", name)
	}
	return status.Wrap(err, 451, "4.4.3", "Deferred: Name server: %s: host name lookup failure", name)
}
