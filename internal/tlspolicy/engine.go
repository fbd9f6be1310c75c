package tlspolicy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/tlspolicy/dane"
	"github.com/posthorn/posthorn/internal/tlspolicy/sts"
	"github.com/posthorn/posthorn/internal/tlspolicy/tlsrpt"
)

// Resolver is the DNS the engine asks for DANE; *resolve.Resolver
// satisfies it.
type Resolver interface {
	SecureExchangers(ctx context.Context, domain string) ([]resolve.MX, bool, error)
	SecureAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error)
	TLSA(ctx context.Context, port int, host string) (resolve.TLSAResult, error)
}

// Recorder keeps session results for TLS reports; *tlsrpt.Store
// satisfies it.
type Recorder interface {
	Record(s tlsrpt.Session)
}

// Engine decides the TLS requirement of each host (see the package
// comment).
type Engine struct {
	Table   *Table // the TLS policy map; nil: none
	Default Level  // TLSDefaultLevel
	DANE    bool   // the DANE option
	DNS     Resolver
	STS     *sts.Client      // nil: MTA-STS off
	Roots   *x509.CertPool   // CACertFile, CACertPath; nil: the system's
	Reports Recorder         // nil: no TLS reports
	Now     func() time.Time // nil: time.Now
}

// Sources: the policy= word of the log.
const (
	SourceDANE          = "dane"
	SourceSTS           = "sts"
	SourceSTSTesting    = "sts-testing"
	SourceMap           = "map"
	SourceDefault       = "default"
	SourceOpportunistic = "opportunistic"
)

// Decision is the policy for one host, and why.
type Decision struct {
	Level  Level  // what is required: None, May, Encrypt, Verify (DANE and MTA-STS decisions are Verify or Encrypt)
	Source string // dane, sts, sts-testing, map, default, opportunistic
	Why    string // in words (-bt /tls)
	// Refuse: the host is not to be tried (a *status.Error, temporary).
	Refuse error
	// DANE: the usable TLSA records that authenticate the host, and the
	// names a DANE-TA chain may carry.
	TLSA     []dane.Record
	TLSAName string // "_25._tcp.mx.example.com"
	// Names a certificate must match under Verify without DANE (the MX
	// host for MTA-STS; the match names for verify and secure; ".x" is
	// any subdomain of x).
	Names []string
	Entry *Entry // the map entry that applied, if any
	// STS is the MTA-STS lookup's result for the domain, when asked.
	STS *sts.Result
	// TLSRPT classification of a policy problem found before connecting
	// (tlsa-invalid, dnssec-invalid, sts-policy-fetch-error, ...).
	PolicyFailure, PolicyFailureDetail string
}

func (e *Engine) now() time.Time {
	if e.Now == nil {
		return time.Now()
	}
	return e.Now()
}

// Decide is the policy for host q.Host of q.NextHop.
func (e *Engine) Decide(ctx context.Context, q relay.TLSQuery) Decision {
	host := strings.ToLower(strings.TrimSuffix(q.Host, "."))
	q.Host = host
	if entry, ok := e.Table.Lookup(q.NextHop, q.Port); ok {
		d := e.byLevel(ctx, q, entry.Level, entry.Match, SourceMap)
		d.Entry = entry
		if entry.Err != nil {
			d = Decision{Source: SourceMap, Entry: entry, Why: "bad policy map entry " + entry.Key + ": " + entry.Err.Error(),
				Refuse: status.New(403, "4.7.0", "403 4.7.0 TLS policy map entry %s (line %d) cannot be obeyed: %v", entry.Key, entry.Line, entry.Err)}
		}
		return d
	}
	src := SourceDefault
	if e.Default == May {
		src = SourceOpportunistic
	}
	switch e.Default {
	case May, Encrypt, DANE:
	default:
		return e.byLevel(ctx, q, e.Default, nil, src)
	}
	// The default path: DANE where the host has validated TLSA records,
	// else MTA-STS where the domain has a policy, else the default level.
	var pending Decision
	if e.DANE {
		d, applies := e.dane(ctx, q)
		if applies {
			return d
		}
		pending = d
	}
	if e.STS != nil && q.Domain != "" {
		res := e.STS.Lookup(ctx, q.Domain)
		d, applies := e.sts(q, &res)
		if applies {
			if d.Source == SourceSTSTesting && e.Default == Encrypt {
				d.Level = Encrypt // testing never weakens the default
			}
			return d
		}
		if d.PolicyFailure != "" {
			pending.PolicyFailure, pending.PolicyFailureDetail = d.PolicyFailure, d.PolicyFailureDetail
		}
		pending.STS = &res
		if d.Why != "" {
			pending.Why = strings.TrimPrefix(pending.Why+"; "+d.Why, "; ")
		}
	}
	level := e.Default
	if level == DANE {
		level = May
	}
	d := e.byLevel(ctx, q, level, nil, src)
	d.STS, d.PolicyFailure, d.PolicyFailureDetail = pending.STS, pending.PolicyFailure, pending.PolicyFailureDetail
	if pending.Why != "" {
		d.Why = pending.Why + "; " + d.Why
	}
	return d
}

// byLevel is the decision for an explicit level.
func (e *Engine) byLevel(ctx context.Context, q relay.TLSQuery, l Level, match []string, src string) Decision {
	switch l {
	case None:
		return Decision{Level: None, Source: src, Why: "level none: no STARTTLS"}
	case May:
		return Decision{Level: May, Source: src, Why: "level may: STARTTLS when offered, any certificate"}
	case Encrypt:
		return Decision{Level: Encrypt, Source: src, Why: "level encrypt: STARTTLS required, any certificate"}
	case DANE, DANEOnly:
		d, applies := e.dane(ctx, q)
		if applies {
			return d
		}
		if l == DANEOnly {
			d.Source = src
			if d.Refuse == nil {
				d.Refuse = status.New(403, "4.7.0", "403 4.7.0 TLS required (DANE): no usable TLSA records for %s (%s)", q.Host, d.Why)
				d.PolicyFailure, d.PolicyFailureDetail = "dane-required", d.Why
			}
			d.Why = "level dane-only: " + d.Why + ": not tried"
			return d
		}
		if d.Refuse != nil {
			return d
		}
		return Decision{Level: May, Source: src, Why: "level dane: " + d.Why + ", so may"}
	case Verify, Secure:
		names := e.matchNames(q, l, match)
		return Decision{Level: Verify, Source: src, Names: names,
			Why: fmt.Sprintf("level %s: STARTTLS required, a certificate valid for %s", l, strings.Join(names, " or "))}
	}
	return Decision{Level: May, Source: src}
}

// matchNames resolves Postfix's match= words for host q.Host.
func (e *Engine) matchNames(q relay.TLSQuery, l Level, match []string) []string {
	if len(match) == 0 {
		match = []string{"hostname"}
		if l == Secure {
			match = []string{"nexthop", "dot-nexthop"}
		}
	}
	nexthop := strings.TrimSuffix(strings.Trim(q.NextHop, "[]"), ".")
	var out []string
	for _, m := range match {
		switch m {
		case "hostname":
			out = append(out, q.Host)
		case "nexthop":
			out = append(out, nexthop)
		case "dot-nexthop":
			out = append(out, "."+nexthop)
		default:
			out = append(out, strings.TrimSuffix(m, "."))
		}
	}
	return out
}

// dane is the DANE decision for a host (RFC 7672 §2.2): applies when the
// MX records (for a domain), the host's addresses and its TLSA records
// are all DNSSEC-validated and there are TLSA records. A failed TLSA
// lookup refuses the host; an insecure chain does not apply.
func (e *Engine) dane(ctx context.Context, q relay.TLSQuery) (Decision, bool) {
	no := func(why string) (Decision, bool) { return Decision{Why: why}, false }
	switch {
	case !e.DANE:
		return no("DANE is off")
	case e.DNS == nil:
		return no("no resolver")
	case isAddr(q.Host):
		return no("an address literal has no TLSA records")
	}
	if q.Domain != "" {
		mxs, secure, err := e.DNS.SecureExchangers(ctx, q.Domain)
		if err != nil {
			return no("MX lookup failed: " + status.From(err).Text)
		}
		if !secure {
			return no("the MX records of " + q.Domain + " are not DNSSEC-validated")
		}
		found := false
		for _, mx := range mxs {
			found = found || strings.EqualFold(mx.Host, q.Host)
		}
		if !found {
			return no(q.Host + " is not an MX host of " + q.Domain)
		}
	}
	if _, secure, err := e.DNS.SecureAddrs(ctx, q.Host); err != nil || !secure {
		return no("the addresses of " + q.Host + " are not DNSSEC-validated")
	}
	port := q.Port
	if port == 0 {
		port = 25
	}
	res, err := e.DNS.TLSA(ctx, port, q.Host)
	if err != nil {
		return Decision{Level: Encrypt, Source: SourceDANE, TLSAName: res.Name,
			Why:           "TLSA lookup failed: not tried",
			Refuse:        status.New(403, "4.7.0", "403 4.7.0 TLSA lookup failed (DANE: %s)", status.From(err).Text),
			PolicyFailure: "dnssec-invalid", PolicyFailureDetail: status.From(err).Text}, true
	}
	if !res.Secure {
		return no("the TLSA records " + res.Name + " are not DNSSEC-validated")
	}
	all := dane.FromDNS(res.Records)
	if len(res.Records) == 0 {
		return no("no TLSA records at " + res.Name)
	}
	usable := dane.Usable(all)
	if len(usable) == 0 {
		// RFC 7672 §2.2: unusable records still say the server has TLS.
		return Decision{Level: Encrypt, Source: SourceDANE, TLSAName: res.Name,
			Why:           "TLSA records at " + res.Name + " are all unusable: STARTTLS required, any certificate",
			PolicyFailure: "tlsa-invalid", PolicyFailureDetail: "no usable TLSA records at " + res.Name}, true
	}
	names := []string{q.Host}
	if q.Domain != "" && q.Domain != q.Host {
		names = append(names, q.Domain)
	}
	return Decision{Level: Verify, Source: SourceDANE, TLSA: usable, TLSAName: res.Name, Names: names,
		Why: fmt.Sprintf("%d usable TLSA record(s) at %s: STARTTLS required, the certificate must match one", len(usable), res.Name)}, true
}

// sts is the MTA-STS decision for a host of a domain with res.
func (e *Engine) sts(q relay.TLSQuery, res *sts.Result) (Decision, bool) {
	var d Decision
	if res.Err != nil {
		d.PolicyFailure, d.PolicyFailureDetail = res.TLSRPTResult(), res.Err.Error()
	}
	p := res.Policy
	switch {
	case p == nil && res.Err != nil:
		d.Why = "no MTA-STS policy (" + res.Err.Error() + ")"
		return d, false
	case p == nil:
		d.Why = "no MTA-STS policy"
		return d, false
	case p.Mode == sts.None:
		d.Why = "MTA-STS policy mode none"
		return d, false
	}
	d.STS = res
	if p.Mode == sts.Testing {
		d.Level, d.Source, d.Names = May, SourceSTSTesting, []string{q.Host}
		d.Why = "MTA-STS policy mode testing: delivered as may, failures reported"
		if !p.Matches(q.Host) {
			d.Why += " (" + q.Host + " does not match its mx patterns)"
			d.PolicyFailure, d.PolicyFailureDetail = "validation-failure", q.Host+" does not match the MTA-STS policy's mx patterns"
		}
		return d, true
	}
	if !p.Matches(q.Host) {
		d.Level, d.Source = Verify, SourceSTS
		d.Why = "MTA-STS policy mode enforce: " + q.Host + " does not match its mx patterns (" + strings.Join(p.MX, ", ") + "): not tried"
		d.Refuse = status.New(403, "4.7.0", "403 4.7.0 TLS policy (MTA-STS): MX host %s is not in the policy of %s", q.Host, q.Domain)
		d.PolicyFailure, d.PolicyFailureDetail = "validation-failure", q.Host+" does not match the MTA-STS policy's mx patterns"
		return d, true
	}
	d.Level, d.Source, d.Names = Verify, SourceSTS, []string{q.Host}
	d.Why = "MTA-STS policy mode enforce: STARTTLS required, a certificate valid for " + q.Host
	return d, true
}

// Require is relay.Config.TLSPolicy: the decision as the relay client
// applies it.
func (e *Engine) Require(ctx context.Context, q relay.TLSQuery) relay.TLSRequirement {
	d := e.Decide(ctx, q)
	req := relay.TLSRequirement{Policy: d.Source, Label: d.label(), Refuse: d.Refuse}
	switch d.Level {
	case None:
		req.Mode = relay.TLSNone
	case May:
		req.Mode = relay.TLSOpportunistic
		if d.Source == SourceSTSTesting {
			req.Verify = e.pkixFor(d.Names)
		}
	case Encrypt:
		req.Mode = relay.TLSEncrypt
		req.Verify = func(tls.ConnectionState) (string, error) { return "NONE", nil }
		if d.Source == SourceSTSTesting {
			req.Verify = e.pkixFor(d.Names) // checked for the report, not required
		}
	default:
		req.Mode = relay.TLSVerify
		if len(d.TLSA) > 0 {
			recs, names := d.TLSA, d.Names
			req.Verify = func(cs tls.ConnectionState) (string, error) {
				_, err := dane.Verify(cs.PeerCertificates, recs, names, e.now())
				return "TRUSTED", err
			}
			req.Key = "dane:" + keyOf(d.TLSA, d.Names)
		} else {
			req.Verify = e.pkixFor(d.Names)
			req.Key = "pkix:" + strings.Join(d.Names, ":")
		}
	}
	if e.Reports != nil && q.Domain != "" {
		req.Report = e.reporter(q, d)
		if d.Refuse != nil {
			detail := d.PolicyFailureDetail
			if detail == "" {
				detail = status.From(d.Refuse).Text
			}
			req.Report(relay.TLSReport{Host: q.Host, Result: d.PolicyFailure, Detail: detail})
			req.Report = nil
		}
	}
	return req
}

// pkixFor verifies a chain against the roots and the names.
func (e *Engine) pkixFor(names []string) func(tls.ConnectionState) (string, error) {
	return func(cs tls.ConnectionState) (string, error) {
		leaf, err := pkixChain(cs, e.Roots, e.now())
		if err != nil {
			return "OK", err
		}
		return "OK", matchNames(leaf, names)
	}
}

func keyOf(rs []dane.Record, names []string) string {
	h := sha256.New()
	for _, r := range rs {
		fmt.Fprintln(h, r.String())
	}
	fmt.Fprintln(h, strings.Join(names, ":"))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// label names the policy in deferral texts.
func (d Decision) label() string {
	switch d.Source {
	case SourceDANE:
		return "DANE"
	case SourceSTS, SourceSTSTesting:
		return "MTA-STS"
	case SourceMap:
		return "TLS policy map: " + d.levelWord()
	case SourceDefault:
		return "TLSDefaultLevel=" + d.levelWord()
	}
	return ""
}

func (d Decision) levelWord() string {
	if d.Entry != nil {
		return d.Entry.Level.String()
	}
	return d.Level.String()
}

// reporter records each session with a host of a domain for its TLS
// report: under the policy type that applied (tlsa, sts, or
// no-policy-found), successful when the policy was met.
func (e *Engine) reporter(q relay.TLSQuery, d Decision) func(relay.TLSReport) {
	s := tlsrpt.Session{Domain: q.Domain, PolicyType: "no-policy-found", MX: q.Host}
	switch {
	case d.Source == SourceDANE:
		s.PolicyType = "tlsa"
		for _, r := range d.TLSA {
			s.PolicyString = append(s.PolicyString, d.TLSAName+". IN TLSA "+r.String())
		}
	case d.STS != nil && d.STS.Policy != nil && d.STS.Policy.Mode != sts.None:
		s.PolicyType = "sts"
		s.PolicyString = d.STS.Policy.Lines
		s.MXHosts = d.STS.Policy.MX
	}
	strict := s.PolicyType != "no-policy-found"
	return func(r relay.TLSReport) {
		rec := s
		rec.Time = e.now()
		rec.IP, rec.SendingIP = r.Addr, r.Local
		switch {
		case r.Result == "starttls-not-supported" || (!r.TLS && r.Result != ""):
			rec.Result, rec.Detail = r.Result, r.Detail
		case strict && !r.Authenticated:
			rec.Result, rec.Detail = r.Result, r.Detail
		case d.PolicyFailure != "":
			rec.Result, rec.Detail = d.PolicyFailure, d.PolicyFailureDetail
		}
		if rec.Result == "" && !r.TLS {
			rec.Result = "validation-failure"
		}
		e.Reports.Record(rec)
	}
}
