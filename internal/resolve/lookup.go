package resolve

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEDepth bounds a CNAME chain (sendmail's MAXCNAMEDEPTH).
const maxCNAMEDepth = 10

// errCNAMELoop is a chain longer than maxCNAMEDepth.
var errCNAMELoop = errors.New("CNAME chain too long")

// lookup answers (name, qtype) from the cache or the servers. A name whose
// answer is a CNAME is followed, inside the answer when the server already
// gave the chain (a recursive server does), else by asking again for the
// target. The error is a temporary failure (timeout, SERVFAIL, a loop).
func (r *Resolver) lookup(ctx context.Context, name string, qtype uint16) (answer, error) {
	key := cacheKey{name: name, qtype: qtype}
	if a, ok := r.cache.get(key, r.now()); ok {
		return a, nil
	}
	a, err := r.resolveChain(ctx, name, qtype)
	if err != nil {
		return answer{}, err
	}
	r.cache.put(key, a, r.now())
	return a, nil
}

func (r *Resolver) resolveChain(ctx context.Context, name string, qtype uint16) (answer, error) {
	cur := name
	ttl := maxTTL
	seen := map[string]bool{}
	// An answer is authenticated only when every step of its CNAME chain
	// was.
	secure := true
	for depth := 0; depth <= maxCNAMEDepth; depth++ {
		msg, ad, err := r.tr.exchange(ctx, cur, qtype)
		if err != nil {
			return answer{}, err
		}
		secure = secure && ad
		final, rrs, minTTL, hops := walkAnswer(msg, cur, qtype)
		ttl = min(ttl, minTTL)
		if hops > maxCNAMEDepth || (final != cur && seen[final]) {
			return answer{}, errCNAMELoop
		}
		seen[cur] = true
		if len(rrs) > 0 {
			return answer{rrs: rrs, ttl: ttl, secure: secure}, nil
		}
		if msg.Rcode == dns.RcodeNameError || final == cur {
			// NXDOMAIN, or NODATA for the end of the chain: negative,
			// kept as long as the zone's SOA says (RFC 2308 §5).
			return answer{nxdomain: msg.Rcode == dns.RcodeNameError, ttl: min(ttl, negativeTTL(msg)), secure: secure}, nil
		}
		// The server gave a CNAME but not what it points at (an
		// authoritative server for another zone): ask for the target.
		cur = final
	}
	return answer{}, errCNAMELoop
}

// walkAnswer follows the CNAMEs from name inside msg's answer section and
// returns the name the chain ends at, its records of type qtype, the
// smallest TTL of the records used and the number of CNAMEs followed.
func walkAnswer(msg *dns.Msg, name string, qtype uint16) (string, []dns.RR, time.Duration, int) {
	ttl := maxTTL
	hops := 0
	for hops <= maxCNAMEDepth {
		next := ""
		for _, rr := range msg.Answer {
			if c, ok := rr.(*dns.CNAME); ok && qtype != dns.TypeCNAME && normName(c.Hdr.Name) == name {
				next = normName(c.Target)
				ttl = min(ttl, rrTTL(rr))
				break
			}
		}
		if next == "" {
			break
		}
		if next == name { // a CNAME to itself
			hops = maxCNAMEDepth + 1
			break
		}
		name = next
		hops++
	}
	var rrs []dns.RR
	for _, rr := range msg.Answer {
		h := rr.Header()
		if h.Rrtype == qtype && h.Class == dns.ClassINET && normName(h.Name) == name {
			rrs = append(rrs, rr)
			ttl = min(ttl, rrTTL(rr))
		}
	}
	return name, rrs, ttl, hops
}

// negativeTTL is the SOA's MINIMUM or its own TTL, whichever is smaller
// (RFC 2308 §5); without an SOA a negative answer is not kept.
func negativeTTL(msg *dns.Msg) time.Duration {
	for _, rr := range msg.Ns {
		if soa, ok := rr.(*dns.SOA); ok {
			return min(rrTTL(rr), time.Duration(soa.Minttl)*time.Second)
		}
	}
	return 0
}

func rrTTL(rr dns.RR) time.Duration { return time.Duration(rr.Header().Ttl) * time.Second }

// normName is the form names are compared and cached in: lower case,
// without the root's trailing dot.
func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }
