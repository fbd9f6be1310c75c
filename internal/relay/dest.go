package relay

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// destination is a parsed Delivery.Host.
type destination struct {
	domain string     // "remote.example": its MX list (implicit MX when none)
	host   string     // "[mx.example]": that host's addresses, no MX lookup
	addr   netip.Addr // "[192.0.2.1]", "[IPv6:2001:db8::1]"
	port   int        // from ":port", 0 when not given
}

// parseDest reads the next-hop syntax the router produces:
//
//	remote.example          the MX hosts of remote.example
//	[mx.example]            mx.example's A/AAAA records, no MX lookup
//	[192.0.2.1]             that address
//	[IPv6:2001:db8::1]      that address (also [2001:db8::1])
//
// each optionally followed by ":port".
func parseDest(s string) (destination, error) {
	var d destination
	rest := strings.TrimSpace(s)
	if strings.HasPrefix(rest, "[") {
		end := strings.IndexByte(rest, ']')
		if end < 0 {
			return d, fmt.Errorf("unbalanced [ in %q", s)
		}
		inner := rest[1:end]
		rest = rest[end+1:]
		lit := inner
		if len(lit) > 5 && strings.EqualFold(lit[:5], "IPv6:") {
			lit = lit[5:]
		}
		if a, err := netip.ParseAddr(lit); err == nil {
			if a.Zone() != "" {
				return d, fmt.Errorf("zone in address %q", s)
			}
			d.addr = a.Unmap()
		} else {
			if !validHostName(inner) {
				return d, fmt.Errorf("bad host name %q", s)
			}
			d.host = strings.ToLower(strings.TrimSuffix(inner, "."))
		}
	} else {
		name := rest
		if i := strings.LastIndexByte(rest, ':'); i >= 0 {
			name, rest = rest[:i], rest[i:]
		} else {
			rest = ""
		}
		if !validHostName(name) {
			return d, fmt.Errorf("bad host name %q", s)
		}
		d.domain = strings.ToLower(strings.TrimSuffix(name, "."))
	}
	if rest != "" {
		if rest[0] != ':' {
			return d, fmt.Errorf("junk after host in %q", s)
		}
		p, err := strconv.Atoi(rest[1:])
		if err != nil || p <= 0 || p > 65535 {
			return d, fmt.Errorf("bad port in %q", s)
		}
		d.port = p
	}
	return d, nil
}

// validHostName accepts a DNS name: labels of letters, digits, hyphens and
// underscores, dot-separated, an optional final dot.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// target is one host to try.
type target struct {
	name   string       // as shown and logged: "mx.example.", "[mx.example]", "[192.0.2.1]"
	lookup string       // name to ask the resolver for addresses; "" for a literal
	addrs  []netip.Addr // the literal address
	pref   int
}

// key is the host status key.
func (t target) key() string { return hostKey(strings.Trim(t.name, "[]")) }

// targets lists the hosts of a destination in the order to try them. A
// failure is the result of every recipient when there is nothing to try.
func (c *Client) targets(ctx context.Context, d destination) ([]target, *failure) {
	switch {
	case d.addr.IsValid():
		name := "[" + addrText(d.addr, d.addr.Is6()) + "]"
		return []target{{name: name, addrs: []netip.Addr{d.addr}}}, nil
	case d.host != "":
		return []target{{name: "[" + d.host + "]", lookup: d.host}}, nil
	}
	if c.cfg.Resolver == nil {
		return nil, lookupFailure(errNoResolver, d.domain, d.domain)
	}
	mxs, err := c.cfg.Resolver.Exchangers(ctx, d.domain)
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(ctx, d.domain, d.domain)
		}
		if se := (*status.Error)(nil); errors.As(err, &se) && se.Enhanced == "5.3.5" {
			// The resolver dropped our own names and what follows
			// them (Config.IsLocal) and nothing was left.
			return nil, c.mxPointsBack(d.domain)
		}
		return nil, resolveFailure(err, d.domain, d.domain, d.domain)
	}
	ts := make([]target, 0, len(mxs))
	for _, mx := range mxs {
		h := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		if h == "" {
			continue
		}
		ts = append(ts, target{name: h + ".", lookup: h, pref: int(mx.Pref)})
	}
	if len(ts) == 0 {
		return nil, hostUnknown(errNoMX, d.domain, d.domain, d.domain)
	}
	return c.dropLocal(d.domain, ts)
}

// dropLocal removes the MX hosts that are this host and every host that
// is not preferred to it (sendmail's DROPLOCALHOST): mail must not go to a
// host that would pass it back. Nothing left is a configuration error.
func (c *Client) dropLocal(domain string, ts []target) ([]target, *failure) {
	if c.cfg.IsLocal == nil {
		return ts, nil
	}
	cut := -1
	for _, t := range ts {
		if c.cfg.IsLocal(t.lookup) && (cut < 0 || t.pref < cut) {
			cut = t.pref
		}
	}
	if cut < 0 {
		return ts, nil
	}
	kept := ts[:0]
	for _, t := range ts {
		if t.pref < cut {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		return nil, c.mxPointsBack(domain)
	}
	return kept, nil
}

// mxPointsBack is the failure of a domain whose MX list leads only back
// to us: sendmail's getmxrr "MX list for x. points back to y", EX_CONFIG.
func (c *Client) mxPointsBack(domain string) *failure {
	msg := fmt.Sprintf("MX list for %s. points back to %s", domain, c.cfg.Hostname)
	f := configFailure("554 5.3.5 "+msg, domain, domain)
	f.syserr = msg
	return f
}
