package resolve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The resolver library's defaults (glibc resolv.h), which sendmail keeps
// unless Timeout.resolver.retrans / Timeout.resolver.retry say otherwise.
const (
	defaultTimeout = 5 * time.Second // RES_TIMEOUT
	defaultTries   = 2               // RES_DFLRETRY
	maxNameservers = 3               // MAXNS: further nameserver lines are ignored
	maxTimeout     = 30 * time.Second
	maxTries       = 5
	ednsSize       = 1232 // the DNS flag day 2020 buffer: no IP fragmentation
)

// resolvConf is what posthorn takes from resolv.conf(5).
type resolvConf struct {
	servers  []string      // host:port
	timeout  time.Duration // options timeout:n; 0 when not given
	attempts int           // options attempts:n; 0 when not given
	trustAD  bool          // options trust-ad: the servers validate DNSSEC
}

// parseResolvConf reads the nameserver lines and the timeout and attempts
// options; everything else (search, domain, ndots, rotate, ...) does not
// apply to the absolute names mail routing asks for. Values are capped as
// glibc caps them (30 s, 5 tries).
func parseResolvConf(r io.Reader) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0][0] == '#' || f[0][0] == ';' {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) > 1 && len(rc.servers) < maxNameservers {
				if _, err := netip.ParseAddr(f[1]); err == nil {
					rc.servers = append(rc.servers, net.JoinHostPort(f[1], "53"))
				}
			}
		case "options":
			for _, o := range f[1:] {
				if o == "trust-ad" {
					rc.trustAD = true
					continue
				}
				name, val, _ := strings.Cut(o, ":")
				n, err := strconv.Atoi(val)
				if err != nil || n < 0 {
					continue
				}
				switch name {
				case "timeout":
					rc.timeout = min(time.Duration(n)*time.Second, maxTimeout)
				case "attempts":
					rc.attempts = min(n, maxTries)
				}
			}
		}
	}
	return rc
}

// transport asks the servers one question, as the resolver library does:
// each server in turn, `tries` rounds, `timeout` per try; UDP first and TCP
// for the same server when the UDP answer is truncated.
type transport struct {
	servers []server
	timeout time.Duration
	tries   int
}

// server is one name server; the AD bit of its answers counts only when
// it is marked validating.
type server struct {
	addr       string // host:port
	validating bool
}

func newTransport(cfg Config) transport {
	var rc resolvConf
	if len(cfg.Servers) == 0 || cfg.Timeout == 0 || cfg.Retries == 0 {
		path := cfg.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		if f, err := os.Open(path); err == nil {
			rc = parseResolvConf(f)
			f.Close()
		}
	}
	t := transport{timeout: cfg.Timeout, tries: cfg.Retries}
	validating := map[string]bool{}
	for _, v := range cfg.Validating {
		validating[hostPort(v)] = true
	}
	for _, s := range cfg.Servers {
		s = hostPort(s)
		t.servers = append(t.servers, server{addr: s, validating: cfg.TrustAD || validating[s]})
	}
	if len(t.servers) == 0 {
		for _, s := range rc.servers {
			t.servers = append(t.servers, server{addr: s, validating: cfg.TrustAD || rc.trustAD || validating[s]})
		}
	}
	if len(t.servers) == 0 {
		// resolv.conf(5): without nameserver lines, the local machine.
		s := "127.0.0.1:53"
		t.servers = []server{{addr: s, validating: cfg.TrustAD || rc.trustAD || validating[s]}}
	}
	if t.timeout == 0 {
		t.timeout = rc.timeout
	}
	if t.timeout == 0 {
		t.timeout = defaultTimeout
	}
	if t.tries == 0 {
		t.tries = rc.attempts
	}
	if t.tries == 0 {
		t.tries = defaultTries
	}
	return t
}

// hostPort adds port 53 to a bare host.
func hostPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return net.JoinHostPort(s, "53")
	}
	return s
}

// errRcode is a server's refusal to answer (SERVFAIL, REFUSED, ...).
type errRcode int

func (e errRcode) Error() string { return "server answered " + dns.RcodeToString[int(e)] }

// exchange returns a NOERROR or NXDOMAIN answer to (name, qtype), or the
// last failure when no server gave one: a timeout, a network error or a
// SERVFAIL-like rcode, all of which are temporary for mail. secure says
// that the answer came from a server marked validating and had the AD
// bit set (RFC 4035 §3.2.3; the question asks for the bit, RFC 6840 §5.7).
// A validating resolver answers SERVFAIL to a bogus answer, which is a
// temporary failure like any other.
func (t transport) exchange(ctx context.Context, name string, qtype uint16) (msg *dns.Msg, secure bool, err error) {
	plainQ := new(dns.Msg)
	plainQ.SetQuestion(dns.Fqdn(name), qtype)
	plainQ.RecursionDesired = true
	plainQ.SetEdns0(ednsSize, false)
	adQ := plainQ.Copy()
	adQ.AuthenticatedData = true
	var last error
	for try := 0; try < t.tries; try++ {
		for _, sv := range t.servers {
			if err := ctx.Err(); err != nil {
				return nil, false, err
			}
			q, srv := plainQ, sv.addr
			if sv.validating {
				q = adQ
			}
			resp, err := t.ask(ctx, q, srv)
			if err == nil && resp.Rcode == dns.RcodeFormatError && q.IsEdns0() != nil {
				// An old server that does not know EDNS0: ask it plainly.
				plain := q.Copy()
				plain.Extra = nil
				resp, err = t.ask(ctx, plain, srv)
			}
			if err != nil {
				last = err
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, sv.validating && resp.AuthenticatedData, nil
			default:
				last = errRcode(resp.Rcode)
			}
		}
	}
	if last == nil {
		last = errors.New("no name server to ask")
	}
	return nil, false, last
}

// ask sends q to one server: UDP, then TCP when the answer is truncated
// (or came in a datagram larger than asked for, which does not unpack).
func (t transport) ask(ctx context.Context, q *dns.Msg, srv string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: t.timeout, UDPSize: ednsSize}
	resp, _, err := c.ExchangeContext(ctx, q, srv)
	if resp != nil && (resp.Truncated || err != nil) {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, q, srv)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || resp.Question[0].Qtype != q.Question[0].Qtype ||
		!strings.EqualFold(resp.Question[0].Name, q.Question[0].Name) {
		return nil, fmt.Errorf("answer from %s is for another question", srv)
	}
	return resp, nil
}
