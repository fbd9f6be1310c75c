package tlspolicy_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/tlspolicy"
	"github.com/posthorn/posthorn/internal/tlspolicy/testca"
	"github.com/posthorn/posthorn/queue/runner"
)

func sentVia(t *testing.T, r runner.Result, relay string) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("not sent: %v", r.Err)
	}
	if r.Relay != relay {
		t.Errorf("relay %q, want %q", r.Relay, relay)
	}
}

func deferredWith(t *testing.T, r runner.Result, prefix string) {
	t.Helper()
	var st *status.Error
	if !errors.As(r.Err, &st) || !st.Temporary() || !strings.HasPrefix(st.Text, prefix) || st.Enhanced != "4.7.0" {
		t.Fatalf("result %+v (%v), want deferred 4.7.0 %q", r, r.Err, prefix)
	}
}

func (w *world) logHas(s string) {
	w.t.Helper()
	if !strings.Contains(w.log.String(), s) {
		w.t.Errorf("no %q in the log:\n%s", s, w.log.String())
	}
}

// noPlaintext: the server saw no MAIL (nothing of the message was sent).
func noPlaintext(t *testing.T, m *mx) {
	t.Helper()
	if mails, _, _ := m.counts(); mails != 0 {
		t.Errorf("%d MAIL commands reached the server", mails)
	}
}

// DANE: a host with validated TLSA records gets authenticated TLS;
// anything else is deferred with nothing sent.
func TestDANE(t *testing.T) {
	spki := func(c testca.Cert) string { return tlsa(3, 1, 1, nil, c.Leaf.RawSubjectPublicKeyInfo) }
	const unusable = "1 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name string
		// setup gives the certificate the server presents and the TLSA
		// record published for it.
		setup    func(w *world) (testca.Cert, string)
		noTLS    bool
		insecure []string
		want     string // "" delivered, else the deferral's start
		verify   string // the log's verify= word when delivered
	}{
		{name: "DANE-EE SPKI SHA-256", verify: "TRUSTED", setup: func(w *world) (testca.Cert, string) {
			c := w.ca.Valid(w.t, "mx.dane.test")
			return c, spki(c)
		}},
		{name: "DANE-EE full certificate", verify: "TRUSTED", setup: func(w *world) (testca.Cert, string) {
			c := w.ca.Valid(w.t, "mx.dane.test")
			return c, tlsa(3, 0, 0, c.Leaf.Raw, nil)
		}},
		{name: "DANE-EE ignores names and dates", verify: "TRUSTED", setup: func(w *world) (testca.Cert, string) {
			c := w.ca.Expired(w.t, "wrong.name.test")
			return c, spki(c)
		}},
		{name: "DANE-TA", verify: "TRUSTED", setup: func(w *world) (testca.Cert, string) {
			return w.ca.Valid(w.t, "mx.dane.test"), tlsa(2, 1, 1, nil, w.ca.Inter.RawSubjectPublicKeyInfo)
		}},
		{name: "DANE-TA, wrong name", want: "403 4.7.0 TLS handshake failed (DANE: certificate not valid for mx.dane.test or dane.test (DANE-TA))",
			setup: func(w *world) (testca.Cert, string) {
				return w.ca.Valid(w.t, "wrong.name.test"), tlsa(2, 0, 1, w.ca.Inter.Raw, nil)
			}},
		{name: "DANE-TA, expired", want: "403 4.7.0 TLS handshake failed (DANE: certificate expired or not yet valid (DANE-TA))",
			setup: func(w *world) (testca.Cert, string) {
				return w.ca.Expired(w.t, "mx.dane.test"), tlsa(2, 0, 1, w.ca.Inter.Raw, nil)
			}},
		{name: "no matching record", want: "403 4.7.0 TLS handshake failed (DANE: no matching TLSA record)",
			setup: func(w *world) (testca.Cert, string) {
				return w.ca.Valid(w.t, "mx.dane.test"), spki(w.ca.Valid(w.t, "mx.dane.test"))
			}},
		{name: "STARTTLS stripped", noTLS: true, want: "403 4.7.0 TLS required (DANE): mx.dane.test. does not offer STARTTLS",
			setup: func(w *world) (testca.Cert, string) {
				c := w.ca.Valid(w.t, "mx.dane.test")
				return c, spki(c)
			}},
		// Not validated: DANE does not apply, even to a record that would
		// not match.
		{name: "unsigned TLSA: opportunistic", insecure: []string{"_25._tcp.mx.dane.test"}, verify: "OK", setup: func(w *world) (testca.Cert, string) {
			return w.ca.Valid(w.t, "mx.dane.test"), spki(w.ca.Valid(w.t, "other"))
		}},
		{name: "unsigned MX: opportunistic", insecure: []string{"dane.test"}, verify: "OK", setup: func(w *world) (testca.Cert, string) {
			return w.ca.Valid(w.t, "mx.dane.test"), spki(w.ca.Valid(w.t, "other"))
		}},
		{name: "unsigned address: opportunistic", insecure: []string{"mx.dane.test"}, verify: "OK", setup: func(w *world) (testca.Cert, string) {
			return w.ca.Valid(w.t, "mx.dane.test"), spki(w.ca.Valid(w.t, "other"))
		}},
		{name: "unusable records: encrypt", verify: "NONE", setup: func(w *world) (testca.Cert, string) {
			return w.ca.Valid(w.t, "other"), unusable
		}},
		{name: "unusable records, STARTTLS stripped", noTLS: true, want: "403 4.7.0 TLS required (DANE): mx.dane.test. does not offer STARTTLS",
			setup: func(w *world) (testca.Cert, string) { return w.ca.Valid(w.t, "other"), unusable }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			w.ca.Intermediate(t, "posthorn test issuing CA")
			cert, record := tt.setup(w)
			tlsCert := &cert.TLS
			if tt.noTLS {
				tlsCert = nil
			}
			m := w.host("mx.dane.test", "127.0.0.71", tlsCert)
			w.dns.add(t, "dane.test. 300 IN MX 10 mx.dane.test.", "_25._tcp.mx.dane.test. 300 IN TLSA "+record)
			w.dns.set(w.dns.insecure, tt.insecure...)
			res := w.send("dane.test", "bob@dane.test")
			if tt.want != "" {
				deferredWith(t, res, tt.want)
				noPlaintext(t, m)
				if _, _, sessions := m.counts(); sessions != 1 {
					t.Errorf("%d sessions: a failure must not be retried in plain text", sessions)
				}
				return
			}
			sentVia(t, res, "mx.dane.test. [127.0.0.71]")
			if mails, tlsMails, _ := m.counts(); mails != 1 || tlsMails != 1 {
				t.Errorf("%d mails, %d over TLS", mails, tlsMails)
			}
			policy := "dane"
			if tt.verify == "OK" {
				policy = "opportunistic"
			}
			w.logHas("STARTTLS=client, relay=mx.dane.test., version=TLSv1.3, verify=" + tt.verify + ", cipher=")
			w.logHas(", policy=" + policy + "\n")
		})
	}
}

// The AD bit of a server that is not marked validating is never trusted.
func TestDANEUnmarkedServer(t *testing.T) {
	w := newWorld(t, nil)
	c := w.ca.Valid(t, "mx.dane.test")
	m := w.host("mx.dane.test", "127.0.0.72", &c.TLS)
	// A TLSA record that does not match: were DANE applied, delivery
	// would fail. The server sets AD, but the resolver is not told to
	// trust it.
	other := w.ca.Valid(t, "mx.dane.test")
	w.dns.add(t, "dane.test. 300 IN MX 10 mx.dane.test.", "_25._tcp.mx.dane.test. 300 IN TLSA "+tlsa(3, 1, 1, nil, other.Leaf.RawSubjectPublicKeyInfo))
	newWorldWithResolver(t, w, false)
	sentVia(t, w.send("dane.test", "bob@dane.test"), "mx.dane.test. [127.0.0.72]")
	if mails, _, _ := m.counts(); mails != 1 {
		t.Errorf("%d mails", mails)
	}
	w.logHas("verify=OK, cipher=")
	w.logHas("policy=opportunistic")
}

// The first MX fails DANE, the second is fine: delivered in the same
// attempt, through the second.
func TestDANENextMX(t *testing.T) {
	w := newWorld(t, nil)
	bad, good := w.ca.Valid(t, "mx1.dane.test"), w.ca.Valid(t, "mx2.dane.test")
	other := w.ca.Valid(t, "mx1.dane.test")
	m1 := w.host("mx1.dane.test", "127.0.0.73", &bad.TLS)
	m2 := w.host("mx2.dane.test", "127.0.0.74", &good.TLS)
	w.dns.add(t, "dane.test. 300 IN MX 10 mx1.dane.test.", "dane.test. 300 IN MX 20 mx2.dane.test.",
		"_25._tcp.mx1.dane.test. 300 IN TLSA "+tlsa(3, 1, 1, nil, other.Leaf.RawSubjectPublicKeyInfo),
		"_25._tcp.mx2.dane.test. 300 IN TLSA "+tlsa(3, 1, 1, nil, good.Leaf.RawSubjectPublicKeyInfo))
	sentVia(t, w.send("dane.test", "bob@dane.test"), "mx2.dane.test. [127.0.0.74]")
	noPlaintext(t, m1)
	if mails, tlsMails, _ := m2.counts(); mails != 1 || tlsMails != 1 {
		t.Errorf("mx2: %d mails, %d over TLS", mails, tlsMails)
	}
	w.logHas("STARTTLS=client, relay=mx1.dane.test., verify=FAIL, policy=dane, error: no matching TLSA record")
}

// A TLSA lookup that fails (SERVFAIL, what a validating resolver says to
// bogus data): the host is not tried.
func TestDANELookupFailure(t *testing.T) {
	w := newWorld(t, nil)
	c := w.ca.Valid(t, "mx.dane.test")
	m := w.host("mx.dane.test", "127.0.0.75", &c.TLS)
	w.dns.add(t, "dane.test. 300 IN MX 10 mx.dane.test.")
	w.dns.set(w.dns.servfail, "_25._tcp.mx.dane.test")
	deferredWith(t, w.send("dane.test", "bob@dane.test"), "403 4.7.0 TLSA lookup failed (DANE: ")
	if _, _, sessions := m.counts(); sessions != 0 {
		t.Errorf("%d sessions", sessions)
	}
}

const stsEnforce = "version: STSv1\nmode: enforce\nmx: *.sts.test\nmax_age: 86400\n"

// MTA-STS enforce: only matching MX hosts, only with a valid certificate;
// testing delivers and reports.
func TestMTASTS(t *testing.T) {
	for _, tt := range []struct {
		name       string
		policy     string
		mxName     string // the MX host
		cert       string // "good", "wrong", "expired", "untrusted", "none"
		want       string // "" delivered
		verify     string
		policyWord string
	}{
		{name: "enforce", policy: stsEnforce, mxName: "mx.sts.test", cert: "good", verify: "OK", policyWord: "sts"},
		{name: "enforce, wrong name", policy: stsEnforce, mxName: "mx.sts.test", cert: "wrong", want: "403 4.7.0 TLS handshake failed (MTA-STS: certificate is valid for wrong.sts.test, not mx.sts.test)"},
		{name: "enforce, expired", policy: stsEnforce, mxName: "mx.sts.test", cert: "expired", want: "403 4.7.0 TLS handshake failed (MTA-STS: x509: certificate has expired or is not yet valid"},
		{name: "enforce, untrusted", policy: stsEnforce, mxName: "mx.sts.test", cert: "untrusted", want: "403 4.7.0 TLS handshake failed (MTA-STS: x509: certificate signed by unknown authority"},
		{name: "enforce, STARTTLS stripped", policy: stsEnforce, mxName: "mx.sts.test", cert: "none", want: "403 4.7.0 TLS required (MTA-STS): mx.sts.test. does not offer STARTTLS"},
		{name: "enforce, MX outside the policy", policy: stsEnforce, mxName: "mx.elsewhere.test", cert: "good", want: "403 4.7.0 TLS policy (MTA-STS): MX host mx.elsewhere.test is not in the policy of sts.test"},
		{name: "enforce, MX one label too deep", policy: stsEnforce, mxName: "a.mx.sts.test", cert: "good", want: "403 4.7.0 TLS policy (MTA-STS): MX host a.mx.sts.test is not in the policy of sts.test"},
		{name: "testing, wrong name", policy: strings.Replace(stsEnforce, "enforce", "testing", 1), mxName: "mx.sts.test", cert: "wrong", verify: "FAIL", policyWord: "sts-testing"},
		{name: "none", policy: "version: STSv1\nmode: none\nmax_age: 86400\n", mxName: "mx.sts.test", cert: "wrong", verify: "FAIL", policyWord: "opportunistic"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, nil)
			var c = w.ca.Valid(t, tt.mxName)
			switch tt.cert {
			case "wrong":
				c = w.ca.Valid(t, "wrong.sts.test")
			case "expired":
				c = w.ca.Expired(t, tt.mxName)
			case "untrusted":
				c = testcaNew(t).Valid(t, tt.mxName)
			}
			cert := &c.TLS
			if tt.cert == "none" {
				cert = nil
			}
			m := w.host(tt.mxName, "127.0.0.81", cert)
			w.dns.add(t, "sts.test. 300 IN MX 10 "+tt.mxName+".", "_smtp._tls.sts.test. 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@sts.test\"")
			w.stsPolicy("sts.test", "127.0.0.82", "20300101", tt.policy, nil)
			res := w.send("sts.test", "bob@sts.test")
			sessions := w.sessions()
			if tt.want != "" {
				deferredWith(t, res, tt.want)
				noPlaintext(t, m)
				if len(sessions) != 1 || sessions[0].Result == "" || sessions[0].PolicyType != "sts" {
					t.Errorf("recorded %+v", sessions)
				}
				return
			}
			sentVia(t, res, tt.mxName+". [127.0.0.81]")
			w.logHas("STARTTLS=client, relay=" + tt.mxName + "., version=TLSv1.3, verify=" + tt.verify + ", cipher=")
			w.logHas(", policy=" + tt.policyWord + "\n")
			if len(sessions) != 1 {
				t.Fatalf("recorded %+v", sessions)
			}
			if tt.name == "testing, wrong name" && (sessions[0].PolicyType != "sts" || sessions[0].Result != "certificate-host-mismatch") {
				t.Errorf("recorded %+v", sessions[0])
			}
			if tt.name == "enforce" && (sessions[0].Result != "" || sessions[0].MX != "mx.sts.test" || strings.Join(sessions[0].MXHosts, ",") != "*.sts.test") {
				t.Errorf("recorded %+v", sessions[0])
			}
		})
	}
}

// DANE wins where a host has both (RFC 8461 §2): a certificate MTA-STS
// would refuse (no name) is delivered on its TLSA record.
func TestDANEWinsOverMTASTS(t *testing.T) {
	w := newWorld(t, nil)
	c := testcaNew(t).Valid(t, "not-the-mx.test")
	w.host("mx.both.test", "127.0.0.83", &c.TLS)
	w.dns.add(t, "both.test. 300 IN MX 10 mx.both.test.", "_25._tcp.mx.both.test. 300 IN TLSA "+tlsa(3, 1, 1, nil, c.Leaf.RawSubjectPublicKeyInfo))
	w.stsPolicy("both.test", "127.0.0.84", "1", "version: STSv1\nmode: enforce\nmx: mx.both.test\nmax_age: 86400\n", nil)
	sentVia(t, w.send("both.test", "bob@both.test"), "mx.both.test. [127.0.0.83]")
	w.logHas("verify=TRUSTED")
	w.logHas("policy=dane\n")
}

// The policy map: explicit levels override DANE and MTA-STS; bracketed
// next hops; match names.
func TestPolicyMap(t *testing.T) {
	const table = "[smart.test] verify match=.relays.test\nplain.test none\nmust.test encrypt\nsts.test may\n"
	w := newWorld(t, func(e *tlspolicy.Engine) { e.Table = tlspolicy.ParseTable(strings.NewReader(table), "map") })
	smart := w.ca.Valid(t, "gw.relays.test")
	ms := w.host("smart.test", "127.0.0.91", &smart.TLS)
	sentVia(t, w.send("[smart.test]", "bob@far.test"), "[smart.test] [127.0.0.91]")
	w.logHas("STARTTLS=client, relay=[smart.test], version=TLSv1.3, verify=OK, cipher=")
	w.logHas("policy=map\n")
	if _, tlsMails, _ := ms.counts(); tlsMails != 1 {
		t.Error("not over TLS")
	}
	// none: STARTTLS offered, not used.
	pc := w.ca.Valid(t, "mx.plain.test")
	mp := w.host("mx.plain.test", "127.0.0.92", &pc.TLS)
	w.dns.add(t, "plain.test. 300 IN MX 10 mx.plain.test.")
	sentVia(t, w.send("plain.test", "bob@plain.test"), "mx.plain.test. [127.0.0.92]")
	if mails, tlsMails, _ := mp.counts(); mails != 1 || tlsMails != 0 {
		t.Errorf("none: %d mails, %d over TLS", mails, tlsMails)
	}
	// encrypt without STARTTLS: deferred.
	mm := w.host("mx.must.test", "127.0.0.93", nil)
	w.dns.add(t, "must.test. 300 IN MX 10 mx.must.test.")
	deferredWith(t, w.send("must.test", "bob@must.test"), "403 4.7.0 TLS required (TLS policy map: encrypt): mx.must.test. does not offer STARTTLS")
	noPlaintext(t, mm)
	// may overrides an MTA-STS policy that would refuse the certificate.
	wrong := w.ca.Valid(t, "wrong.test")
	w.host("mx.sts.test", "127.0.0.94", &wrong.TLS)
	w.dns.add(t, "sts.test. 300 IN MX 10 mx.sts.test.")
	w.stsPolicy("sts.test", "127.0.0.95", "1", stsEnforce, nil)
	sentVia(t, w.send("sts.test", "bob@sts.test"), "mx.sts.test. [127.0.0.94]")
	// verify with a certificate outside the match names.
	w2 := newWorld(t, func(e *tlspolicy.Engine) {
		e.Table = tlspolicy.ParseTable(strings.NewReader("[smart.test] verify match=.relays.test\n"), "map")
	})
	bad := w2.ca.Valid(t, "smart.test")
	w2.host("smart.test", "127.0.0.96", &bad.TLS)
	deferredWith(t, w2.send("[smart.test]", "bob@far.test"), "403 4.7.0 TLS handshake failed (TLS policy map: verify: certificate is valid for smart.test, not .relays.test)")
}

func (w *world) sessions() []tlsrptSession {
	w.t.Helper()
	days, err := w.store.Days()
	if err != nil {
		w.t.Fatal(err)
	}
	var out []tlsrptSession
	for _, d := range days {
		s, err := w.store.Sessions(d)
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, s...)
	}
	return out
}
