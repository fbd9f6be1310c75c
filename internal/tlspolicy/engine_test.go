package tlspolicy

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/tlspolicy/sts"
	"github.com/posthorn/posthorn/internal/tlspolicy/tlsrpt"
)

// fakeDNS answers the engine's questions from tables; secure lists the
// names whose answers are DNSSEC-validated.
type fakeDNS struct {
	mx      map[string][]string
	secure  map[string]bool
	tlsa    map[string][]string // host: records "3 1 1 hex"
	tlsaErr map[string]bool
	txt     map[string][]string
}

func (f *fakeDNS) SecureExchangers(ctx context.Context, domain string) ([]resolve.MX, bool, error) {
	var out []resolve.MX
	for _, h := range f.mx[domain] {
		out = append(out, resolve.MX{Host: h, Pref: 10})
	}
	return out, f.secure[domain], nil
}

func (f *fakeDNS) SecureAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error) {
	return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, f.secure[host], nil
}

func (f *fakeDNS) TLSA(ctx context.Context, port int, host string) (resolve.TLSAResult, error) {
	name := "_25._tcp." + host
	if f.tlsaErr[host] {
		return resolve.TLSAResult{Name: name}, status.New(451, "4.4.3", "Deferred: Name server: %s: host name lookup failure", name)
	}
	res := resolve.TLSAResult{Name: name, Secure: f.secure[name]}
	for _, r := range f.tlsa[host] {
		rr, err := dns.NewRR(name + ". 300 IN TLSA " + r)
		if err != nil {
			panic(err)
		}
		res.Records = append(res.Records, rr.(*dns.TLSA))
	}
	return res, nil
}

func (f *fakeDNS) TXT(ctx context.Context, name string) (resolve.TXTResult, error) {
	return resolve.TXTResult{Texts: f.txt[name]}, nil
}

const tlsaEE = "3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testEngine(t *testing.T, mapText string, def Level, daneOn bool) (*Engine, *fakeDNS) {
	t.Helper()
	f := &fakeDNS{
		mx: map[string][]string{"dane.example": {"mx.dane.example"}, "sts.example": {"mx.sts.example", "evil.example"},
			"both.example": {"mx.both.example"}, "testing.example": {"mx.testing.example"}, "plain.example": {"mx.plain.example"},
			"insecure-mx.example": {"mx.dane.example"}, "unusable.example": {"mx.unusable.example"}, "broken.example": {"mx.broken.example"}},
		secure: map[string]bool{"dane.example": true, "mx.dane.example": true, "_25._tcp.mx.dane.example": true,
			"both.example": true, "mx.both.example": true, "_25._tcp.mx.both.example": true,
			"unusable.example": true, "mx.unusable.example": true, "_25._tcp.mx.unusable.example": true,
			"broken.example": true, "mx.broken.example": true,
			"plain.example": true, "mx.plain.example": true, "_25._tcp.mx.plain.example": true},
		tlsa: map[string][]string{"mx.dane.example": {tlsaEE}, "mx.both.example": {tlsaEE},
			"mx.unusable.example": {"1 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "3 1 1 00"},
			"mx.insecure.example": {tlsaEE}},
		tlsaErr: map[string]bool{"mx.broken.example": true},
		txt: map[string][]string{"_mta-sts.sts.example": {"v=STSv1; id=1;"}, "_mta-sts.both.example": {"v=STSv1; id=1;"},
			"_mta-sts.testing.example": {"v=STSv1; id=1;"}},
	}
	cache := &sts.Cache{}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for d, mode := range map[string]string{"sts.example": "enforce", "both.example": "enforce", "testing.example": "testing"} {
		cache.Store(sts.Entry{Domain: d, ID: "1", Fetched: now, Policy: "version: STSv1\nmode: " + mode + "\nmx: mx." + d + "\nmax_age: 86400\n"})
	}
	e := &Engine{Table: ParseTable(strings.NewReader(mapText), "map"), Default: def, DANE: daneOn, DNS: f,
		STS: &sts.Client{DNS: f, Cache: cache, Now: func() time.Time { return now }}, Now: func() time.Time { return now }}
	return e, f
}

func q(domain, host string) relay.TLSQuery {
	return relay.TLSQuery{Domain: domain, NextHop: domain, Host: host, Port: 25}
}

func TestDecide(t *testing.T) {
	const m = "map-none.example none\nmap-may.example may\n.map-enc.example encrypt\n[smart.example] verify match=hostname:.smart.example\n" +
		"secure.example secure\nonly.example dane-only\ndane.example may\nbad.example fingerprint\n"
	for _, tt := range []struct {
		name     string
		def      Level
		daneOff  bool
		q        relay.TLSQuery
		level    Level
		source   string
		refuse   string // a prefix of the deferral text
		names    string
		why      string
		failType string
	}{
		{name: "nothing special", q: q("other.example", "mx.other.example"), level: May, source: "opportunistic"},
		{name: "map none", q: q("map-none.example", "mx.map-none.example"), level: None, source: "map"},
		{name: "map may overrides DANE", q: q("dane.example", "mx.dane.example"), level: May, source: "map"},
		{name: "map subdomain", q: q("a.map-enc.example", "mx.x"), level: Encrypt, source: "map"},
		{name: "map verify, bracketed", q: relay.TLSQuery{NextHop: "[smart.example]", Host: "smart.example", Port: 25}, level: Verify, source: "map", names: "smart.example .smart.example"},
		{name: "map secure", q: q("secure.example", "mx.secure.example"), level: Verify, source: "map", names: "secure.example .secure.example"},
		{name: "map dane-only without TLSA", q: q("only.example", "mx.only.example"), source: "map", refuse: "403 4.7.0 TLS required (DANE): no usable TLSA records for mx.only.example", failType: "dane-required"},
		{name: "map entry that cannot be obeyed", q: q("bad.example", "mx.bad.example"), source: "map", refuse: "403 4.7.0 TLS policy map entry bad.example (line 8) cannot be obeyed"},
		{name: "DANE", q: q("insecure-mx.example", "mx.dane.example"), level: May, source: "opportunistic", why: "MX records of insecure-mx.example are not DNSSEC-validated"},
		{name: "DANE usable", q: q("both.example", "mx.both.example"), level: Verify, source: "dane", names: "mx.both.example both.example"},
		{name: "DANE off", daneOff: true, q: q("both.example", "mx.both.example"), level: Verify, source: "sts", names: "mx.both.example"},
		{name: "TLSA unusable: encrypt", q: q("unusable.example", "mx.unusable.example"), level: Encrypt, source: "dane", failType: "tlsa-invalid"},
		{name: "TLSA lookup fails", q: q("broken.example", "mx.broken.example"), source: "dane", refuse: "403 4.7.0 TLSA lookup failed (DANE: Deferred: Name server: _25._tcp.mx.broken.example", failType: "dnssec-invalid"},
		{name: "no TLSA records", q: q("plain.example", "mx.plain.example"), level: May, source: "opportunistic", why: "no TLSA records at _25._tcp.mx.plain.example"},
		{name: "STS enforce", q: q("sts.example", "mx.sts.example"), level: Verify, source: "sts", names: "mx.sts.example"},
		{name: "STS enforce, MX not in the policy", q: q("sts.example", "evil.example"), level: Verify, source: "sts", refuse: "403 4.7.0 TLS policy (MTA-STS): MX host evil.example is not in the policy of sts.example", failType: "validation-failure"},
		{name: "STS testing", q: q("testing.example", "mx.testing.example"), level: May, source: "sts-testing", names: "mx.testing.example"},
		{name: "default encrypt", def: Encrypt, q: q("other.example", "mx.other.example"), level: Encrypt, source: "default"},
		{name: "default encrypt, STS wins", def: Encrypt, q: q("sts.example", "mx.sts.example"), level: Verify, source: "sts"},
		{name: "default encrypt, STS testing does not weaken it", def: Encrypt, q: q("testing.example", "mx.testing.example"), level: Encrypt, source: "sts-testing"},
		{name: "default verify", def: Verify, q: q("other.example", "mx.other.example"), level: Verify, source: "default", names: "mx.other.example"},
		{name: "default dane-only", def: DANEOnly, q: q("dane2.example", "mx.dane.example"), level: Verify, source: "dane"},
		{name: "default none", def: None, q: q("both.example", "mx.both.example"), level: None, source: "default"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			def := tt.def
			if def == 0 && tt.name != "default none" {
				def = May
			}
			e, _ := testEngine(t, m, def, !tt.daneOff)
			if tt.name == "default dane-only" {
				e.DNS.(*fakeDNS).mx["dane2.example"] = []string{"mx.dane.example"}
				e.DNS.(*fakeDNS).secure["dane2.example"] = true
			}
			d := e.Decide(context.Background(), tt.q)
			if d.Source != tt.source {
				t.Errorf("source %q, want %q (%s)", d.Source, tt.source, d.Why)
			}
			if tt.refuse != "" {
				if d.Refuse == nil || !strings.HasPrefix(status.From(d.Refuse).Text, tt.refuse) || !status.From(d.Refuse).Temporary() {
					t.Errorf("refuse %v, want %q", d.Refuse, tt.refuse)
				}
			} else {
				if d.Refuse != nil {
					t.Errorf("refused: %v", d.Refuse)
				}
				if d.Level != tt.level {
					t.Errorf("level %s, want %s (%s)", d.Level, tt.level, d.Why)
				}
			}
			if tt.names != "" && strings.Join(d.Names, " ") != tt.names {
				t.Errorf("names %q, want %q", d.Names, tt.names)
			}
			if tt.why != "" && !strings.Contains(d.Why, tt.why) {
				t.Errorf("why %q, want %q", d.Why, tt.why)
			}
			if d.PolicyFailure != tt.failType {
				t.Errorf("policy failure %q, want %q", d.PolicyFailure, tt.failType)
			}
		})
	}
}

// Require: the modes and labels the relay gets, and what is recorded.
func TestRequire(t *testing.T) {
	e, _ := testEngine(t, "", May, true)
	rec := &memRecorder{}
	e.Reports = rec
	for _, tt := range []struct {
		q      relay.TLSQuery
		mode   relay.TLSMode
		policy string
		label  string
	}{
		{q("both.example", "mx.both.example"), relay.TLSVerify, "dane", "DANE"},
		{q("sts.example", "mx.sts.example"), relay.TLSVerify, "sts", "MTA-STS"},
		{q("testing.example", "mx.testing.example"), relay.TLSOpportunistic, "sts-testing", "MTA-STS"},
		{q("unusable.example", "mx.unusable.example"), relay.TLSEncrypt, "dane", "DANE"},
		{q("other.example", "mx.other.example"), relay.TLSOpportunistic, "opportunistic", ""},
	} {
		r := e.Require(context.Background(), tt.q)
		if r.Mode != tt.mode || r.Policy != tt.policy || r.Label != tt.label || r.Refuse != nil || r.Report == nil {
			t.Errorf("%s: %+v", tt.q.Domain, r)
		}
	}
	// A refused host is recorded as a failed session at once.
	r := e.Require(context.Background(), q("sts.example", "evil.example"))
	if r.Refuse == nil || r.Report != nil {
		t.Errorf("%+v", r)
	}
	if len(rec.s) != 1 || rec.s[0].Domain != "sts.example" || rec.s[0].PolicyType != "sts" || rec.s[0].Result != "validation-failure" || rec.s[0].MX != "evil.example" {
		t.Errorf("recorded %+v", rec.s)
	}
	// The report hook: the policy type that applied, success only when met.
	rec.s = nil
	e.Require(context.Background(), q("both.example", "mx.both.example")).Report(relay.TLSReport{TLS: true, Authenticated: true})
	e.Require(context.Background(), q("both.example", "mx.both.example")).Report(relay.TLSReport{TLS: false, Result: "starttls-not-supported"})
	e.Require(context.Background(), q("testing.example", "mx.testing.example")).Report(relay.TLSReport{TLS: true, Result: "certificate-expired"})
	e.Require(context.Background(), q("other.example", "mx.other.example")).Report(relay.TLSReport{TLS: true, Result: "certificate-not-trusted"})
	e.Require(context.Background(), q("unusable.example", "mx.unusable.example")).Report(relay.TLSReport{TLS: true, Authenticated: true})
	want := []string{"tlsa:", "tlsa:starttls-not-supported", "sts:certificate-expired", "no-policy-found:", "tlsa:tlsa-invalid"}
	var got []string
	for _, s := range rec.s {
		got = append(got, s.PolicyType+":"+s.Result)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("recorded %v, want %v", got, want)
	}
	if len(rec.s) > 0 && (len(rec.s[0].PolicyString) != 1 || rec.s[0].PolicyString[0] != "_25._tcp.mx.both.example. IN TLSA "+tlsaEE) {
		t.Errorf("tlsa policy string %q", rec.s[0].PolicyString)
	}
	if len(rec.s) > 2 && strings.Join(rec.s[2].MXHosts, ",") != "mx.testing.example" {
		t.Errorf("sts mx-host %q", rec.s[2].MXHosts)
	}
}

type memRecorder struct{ s []tlsrpt.Session }

func (m *memRecorder) Record(s tlsrpt.Session) { m.s = append(m.s, s) }
