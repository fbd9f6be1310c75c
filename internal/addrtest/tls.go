package addrtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/tlspolicy"
)

// TLSDecider is what /tls asks; *tlspolicy.Engine implements it.
type TLSDecider interface {
	Decide(ctx context.Context, q relay.TLSQuery) tlspolicy.Decision
}

// tlsPolicy answers "/tls dest": the policy the relay client would apply
// to each host of the destination, and why. dest is a domain (routed as
// its postmaster would be: the mailertable and the smart host apply), a
// domain:port, [host], [host]:port or [address].
func (s *session) tlsPolicy(dest string) {
	if dest == "" {
		s.printf("Usage: /tls domain|[host][:port]\n")
		return
	}
	if s.env.TLS == nil {
		s.printf("posthorn: no TLS policy configured\n")
		return
	}
	for _, l := range s.env.TLSSettings {
		s.printf("%s\n", l)
	}
	nexthop := dest
	if !strings.HasPrefix(dest, "[") && !strings.Contains(dest, ":") && s.env.Router != nil {
		t, err := s.env.Router.ResolveString("postmaster@" + dest)
		switch {
		case err != nil:
			s.printf("%s\n", status.From(err).Text)
			return
		case !route.IsSMTP(t.Mailer):
			s.printf("%s is delivered by the %s mailer: no outbound TLS\n", dest, t.Mailer)
			return
		case t.Host != dest:
			s.printf("%s is routed to %s (mailer %s)\n", dest, t.Host, t.Mailer)
		}
		nexthop = t.Host
	}
	name, port, err := splitPort(nexthop)
	if err != nil {
		s.printf("%s\n", err)
		return
	}
	// Several DNS questions and maybe an HTTPS fetch.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	q := relay.TLSQuery{NextHop: name, Port: port}
	var hosts []string
	if inner, ok := strings.CutPrefix(name, "["); ok {
		hosts = []string{strings.TrimSuffix(inner, "]")}
	} else {
		q.Domain = strings.ToLower(strings.TrimSuffix(name, "."))
		if s.env.Resolver == nil {
			s.printf("posthorn: no resolver configured\n")
			return
		}
		mxs, err := s.env.Resolver.Exchangers(ctx, q.Domain)
		if err != nil {
			s.printf("%s\n", status.From(err).Text)
			return
		}
		for _, mx := range mxs {
			hosts = append(hosts, mx.Host)
		}
	}
	s.printf("TLS policy for %s, port %d:\n", name, port)
	var sts bool
	for _, h := range hosts {
		q.Host = strings.TrimPrefix(strings.ToLower(h), "ipv6:")
		d := s.env.TLS.Decide(ctx, q)
		if d.STS != nil && !sts {
			sts = true
			s.stsLine(d)
		}
		level := d.Level.String()
		if d.Refuse != nil {
			level = "not tried"
		}
		s.printf("%s: policy=%s, %s: %s\n", q.Host, d.Source, level, d.Why)
		for _, r := range d.TLSA {
			s.printf("\tTLSA %s\n", r)
		}
		if d.Refuse != nil {
			s.printf("\tdeferred: %s\n", status.From(d.Refuse).Text)
		}
		if d.PolicyFailure != "" {
			s.printf("\treported as %s: %s\n", d.PolicyFailure, d.PolicyFailureDetail)
		}
	}
}

func (s *session) stsLine(d tlspolicy.Decision) {
	r := d.STS
	switch {
	case r.Policy == nil && r.Err != nil:
		s.printf("MTA-STS: no policy in force (%v)\n", r.Err)
	case r.Policy == nil:
		s.printf("MTA-STS: no policy\n")
	default:
		s.printf("MTA-STS: id %s, mode %s, mx %s, max_age %d (%s, until %s)\n", r.ID, r.Policy.Mode,
			strings.Join(r.Policy.MX, " "), int64(r.Policy.MaxAge/time.Second), r.Source, r.Expires.UTC().Format(time.RFC3339))
		if r.Err != nil {
			s.printf("MTA-STS: %v\n", r.Err)
		}
	}
}

// splitPort reads "name", "name:port", "[host]:port".
func splitPort(s string) (string, int, error) {
	name, port := s, 25
	end := 0
	if strings.HasPrefix(s, "[") {
		end = strings.IndexByte(s, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("unbalanced [ in %s", s)
		}
	}
	if i := strings.LastIndexByte(s, ':'); i > end {
		p, err := strconv.Atoi(s[i+1:])
		if err != nil || p <= 0 || p > 65535 {
			return "", 0, fmt.Errorf("bad port in %s", s)
		}
		name, port = s[:i], p
	}
	return name, port, nil
}

// tlsReports answers "/tlsrpt [domain]": the sessions kept for TLS
// reports.
func (s *session) tlsReports(domain string) {
	if s.env.TLSReports == nil {
		s.printf("posthorn: TLS reports are off (TLSReports=False)\n")
		return
	}
	if err := s.env.TLSReports(s.w, strings.ToLower(domain)); err != nil {
		s.printf("%v\n", err)
	}
}
