package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// TLSMode is the STARTTLS requirement for one host.
type TLSMode int

const (
	// TLSOpportunistic: STARTTLS when offered, any certificate accepted
	// (verify= is logged); after a failed handshake the host is tried
	// again without STARTTLS on a new connection.
	TLSOpportunistic TLSMode = iota
	// TLSNone: never STARTTLS.
	TLSNone
	// TLSEncrypt: STARTTLS required, any certificate; otherwise deferred.
	TLSEncrypt
	// TLSVerify: STARTTLS required with a certificate the requirement's
	// Verify accepts (DANE, MTA-STS, a verify or secure policy; PKIX for
	// the host name when it has none); otherwise deferred.
	TLSVerify
)

// TLSQuery is what Config.TLSPolicy is asked: one host of a destination.
type TLSQuery struct {
	// Domain is the destination domain whose MX hosts are tried
	// ("example.com"); "" for a [host] or an address literal.
	Domain string
	// NextHop is the destination as routed, without a port:
	// "example.com", "[mx.example.com]", "[192.0.2.1]".
	NextHop string
	// Host is the host about to be tried, without the trailing dot
	// ("mx.example.com"), or the address of a literal.
	Host string
	Port int
}

// TLSRequirement is the TLS policy's answer for one host.
type TLSRequirement struct {
	Mode TLSMode
	// Verify authenticates the peer from the handshake's state (whose
	// PeerCertificates crypto/tls has not verified) and returns the log's
	// verify= word ("OK", "TRUSTED", "NONE") or why it does not. Under
	// TLSVerify a failure ends the session and defers; otherwise it is
	// only logged and reported. nil: PKIX against Config.TLS's RootCAs
	// for the host name ("OK").
	Verify func(cs tls.ConnectionState) (string, error)
	// Policy names the policy in the log: "policy=dane"; ""
	// is "opportunistic".
	Policy string
	// Label names it in deferral texts ("DANE", "MTA-STS"); "": Policy.
	Label string
	// Refuse, when set, is why the host must not be tried at all (an MX
	// outside an MTA-STS policy, a failed TLSA lookup): its result,
	// nothing sent.
	Refuse error
	// Key names what a TLSVerify session was authenticated for; a cached
	// connection serves a TLSVerify requirement only with the same Key.
	Key string
	// Report, when set, is told the outcome of every TLS attempt with the
	// host (for TLS reporting, RFC 8460).
	Report func(TLSReport)
}

// TLSReport is the outcome of one session's TLS.
type TLSReport struct {
	Host  string     // the host, as in TLSQuery
	Addr  netip.Addr // the peer's address
	Local netip.Addr // ours
	// TLS: the handshake succeeded; Authenticated: Verify accepted the
	// peer.
	TLS, Authenticated bool
	// Result is the RFC 8460 result type of what failed
	// (starttls-not-supported, certificate-host-mismatch,
	// certificate-expired, certificate-not-trusted, validation-failure),
	// "" when nothing did; Detail says it in words.
	Result, Detail string
}

func (r TLSRequirement) mandatory() bool { return r.Mode == TLSEncrypt || r.Mode == TLSVerify }

func (r TLSRequirement) policy() string {
	if r.Policy == "" {
		return "opportunistic"
	}
	return r.Policy
}

func (r TLSRequirement) label() string {
	switch {
	case r.Label != "":
		return r.Label
	case r.Policy != "":
		return r.Policy
	}
	return "TLS policy"
}

// tlsRequirement asks the policy about one host.
func (dl *delivery) tlsRequirement(ctx context.Context, t target) TLSRequirement {
	if dl.c.cfg.TLSPolicy == nil {
		return TLSRequirement{}
	}
	q := TLSQuery{Domain: dl.dest.domain, Host: strings.TrimSuffix(t.lookup, "."), Port: dl.port}
	switch {
	case dl.dest.domain != "":
		q.NextHop = dl.dest.domain
	case dl.dest.host != "":
		q.NextHop = "[" + dl.dest.host + "]"
	default:
		q.NextHop = "[" + dl.dest.addr.String() + "]"
	}
	if q.Host == "" && len(t.addrs) > 0 {
		q.Host = t.addrs[0].String()
	}
	return dl.c.cfg.TLSPolicy(ctx, q)
}

// refused is the result of a host the policy says not to try.
func (dl *delivery) refused(t target, req TLSRequirement) *failure {
	st := status.From(req.Refuse)
	dl.c.log.Noticef(dl.qid(), "STARTTLS=client, relay=%s, policy=%s, not tried: %s", t.name, req.policy(), st.Text)
	return &failure{st: st, relay: t.name, remote: t.name, reply: st.Text, exit: exitTempFail}
}

// tlsAllowed reports whether a connection meets the host's TLS
// requirement.
func tlsAllowed(req TLSRequirement, sc *conn) bool {
	switch req.Mode {
	case TLSEncrypt:
		return sc.tls
	case TLSVerify:
		return sc.tls && sc.verified && sc.authKey == req.Key
	}
	return true
}

// tlsFailure is a session that did not meet a mandatory requirement:
// deferred, "Deferred: 403 4.7.0 <text>" in the queue and the log.
func tlsFailure(sc *conn, text string) *failure {
	msg := "403 4.7.0 " + text
	return &failure{st: status.New(403, "4.7.0", "%s", msg), relay: sc.relay(), remote: sc.name, reply: msg, exit: exitTempFail}
}

// report tells the policy about a TLS attempt.
func (dl *delivery) report(req TLSRequirement, sc *conn, r TLSReport) {
	if req.Report == nil {
		return
	}
	r.Host, r.Addr = strings.TrimSuffix(strings.Trim(sc.name, "[]"), "."), sc.addr
	if la, ok := sc.raw.LocalAddr().(*net.TCPAddr); ok {
		r.Local = la.AddrPort().Addr().Unmap()
	}
	req.Report(r)
}

// negotiateTLS runs STARTTLS as the requirement says, after EHLO. A
// failure ends the session (the connection is closed); plain asks for a
// new connection without STARTTLS (an opportunistic handshake failed).
func (dl *delivery) negotiateTLS(ctx context.Context, sc *conn, t target, req TLSRequirement, noTLS bool) (f *failure, plain bool) {
	if req.Mode == TLSNone || noTLS {
		return nil, false
	}
	if !sc.esmtp || !sc.ext.startTLS {
		dl.report(req, sc, TLSReport{Result: "starttls-not-supported", Detail: "STARTTLS not offered"})
		if !req.mandatory() {
			return nil, false
		}
		dl.c.log.Warnf(dl.qid(), "STARTTLS=client, relay=%s, policy=%s, error: STARTTLS not offered", sc.name, req.policy())
		sc.quit(dl.c.to.Quit)
		return tlsFailure(sc, fmt.Sprintf("TLS required (%s): %s does not offer STARTTLS", req.label(), sc.name)), false
	}
	return dl.startTLS(ctx, sc, t, req)
}

// startTLS runs STARTTLS and the second EHLO. A refused STARTTLS goes on
// in plain text unless TLS is required; a failed handshake asks for a new
// connection without it (plain), or defers when TLS is required.
func (dl *delivery) startTLS(ctx context.Context, sc *conn, t target, req TLSRequirement) (f *failure, plain bool) {
	c := dl.c
	r, err := sc.cmd(c.to.StartTLS, "STARTTLS")
	if err != nil {
		sc.close()
		return dl.ioFail(sc, err, "client STARTTLS"), false
	}
	if r.code != 220 {
		dl.report(req, sc, TLSReport{Result: "starttls-not-supported", Detail: "STARTTLS refused: " + r.first()})
		if !req.mandatory() {
			return nil, false
		}
		c.log.Warnf(dl.qid(), "STARTTLS=client, relay=%s, policy=%s, error: STARTTLS refused: %s", sc.name, req.policy(), r.first())
		sc.quit(c.to.Quit)
		return tlsFailure(sc, fmt.Sprintf("TLS required (%s): %s refused STARTTLS: %s", req.label(), sc.name, r.first())), false
	}
	serverName := strings.TrimSuffix(t.lookup, ".")
	cfg := &tls.Config{}
	if c.cfg.TLS != nil {
		cfg = c.cfg.TLS.Clone()
	}
	verify := req.Verify
	if verify == nil {
		roots := cfg.RootCAs
		verify = func(cs tls.ConnectionState) (string, error) {
			return "OK", verifyPeer(cs, roots, serverName, sc.addr)
		}
	}
	word, verr := "", error(nil)
	cfg.ServerName = serverName
	cfg.InsecureSkipVerify = true // verified below, to log verify= whatever the outcome
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		word, verr = verify(cs)
		if verr != nil {
			word = "FAIL"
			if req.Mode == TLSVerify {
				return verr
			}
		}
		return nil
	}
	tc := tls.Client(sc.raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.to.StartTLS)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		rep := TLSReport{Result: tlsrptResult(err), Detail: err.Error()}
		text := "TLS handshake failed (" + req.label() + ": " + err.Error() + ")"
		if verr != nil && req.Mode == TLSVerify {
			c.log.Warnf(dl.qid(), "STARTTLS=client, relay=%s, verify=FAIL, policy=%s, error: %v", sc.name, req.policy(), verr)
			rep = TLSReport{Result: tlsrptResult(verr), Detail: verr.Error()}
			text = "TLS handshake failed (" + req.label() + ": " + verr.Error() + ")"
		} else {
			c.log.Warnf(dl.qid(), "STARTTLS=client, relay=%s, error: connect failed: %v, policy=%s", sc.name, err, req.policy())
		}
		dl.report(req, sc, rep)
		sc.broken = true
		sc.close()
		if ctx.Err() != nil {
			return interrupted(ctx, sc.name, sc.relay()), false
		}
		if req.mandatory() {
			return tlsFailure(sc, text), false
		}
		return nil, true
	}
	cs := tc.ConnectionState()
	bits := cipherBits(cs.CipherSuite)
	c.log.Infof(dl.qid(), "STARTTLS=client, relay=%s, version=%s, verify=%s, cipher=%s, bits=%d/%d, policy=%s",
		sc.name, tlsVersion(cs.Version), word, cipherName(cs.CipherSuite), bits, bits, req.policy())
	rep := TLSReport{TLS: true, Authenticated: verr == nil}
	if verr != nil {
		rep.Result, rep.Detail = tlsrptResult(verr), verr.Error()
	}
	dl.report(req, sc, rep)
	sc.nc = tc
	sc.r.Reset(tc)
	sc.tls, sc.verified = true, verr == nil
	sc.authKey = ""
	if req.Mode == TLSVerify {
		sc.authKey = req.Key
	}
	r, err = sc.cmd(c.to.Helo, "EHLO %s", c.cfg.Hostname)
	switch {
	case err != nil:
		sc.close()
		return dl.ioFail(sc, err, "client EHLO"), false
	case r.code/100 != 2:
		sc.quit(c.to.Quit)
		return replyTempFailure(r, "4.5.0", sc.name, sc.relay(), true), false
	}
	sc.ext = parseEHLO(r)
	return nil, false
}

// tlsrptResult classifies a verification or handshake failure as an RFC
// 8460 result type.
func tlsrptResult(err error) string {
	var typed interface{ TLSRPTResult() string }
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &typed):
		return typed.TLSRPTResult()
	case errors.As(err, &he):
		return "certificate-host-mismatch"
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "certificate-expired"
	case errors.As(err, &ua):
		return "certificate-not-trusted"
	}
	return "validation-failure"
}

// verifyPeer checks the peer's chain against roots (nil: the system's)
// for the host name, or for the address when the host is a literal.
func verifyPeer(cs tls.ConnectionState, roots *x509.CertPool, name string, a netip.Addr) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, ct := range cs.PeerCertificates[1:] {
		inter.AddCert(ct)
	}
	if name == "" {
		name = a.String()
	}
	_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: name})
	return err
}

// tlsVersion names a version as OpenSSL (and so sendmail's log) does.
func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return "0x" + strconv.FormatUint(uint64(v), 16)
}

// cipherName is OpenSSL's name of a suite (TLS 1.3 names are the same).
func cipherName(id uint16) string {
	names := map[uint16]string{
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:         "ECDHE-RSA-AES128-GCM-SHA256",
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384:         "ECDHE-RSA-AES256-GCM-SHA384",
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:       "ECDHE-ECDSA-AES128-GCM-SHA256",
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384:       "ECDHE-ECDSA-AES256-GCM-SHA384",
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:   "ECDHE-RSA-CHACHA20-POLY1305",
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
		tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA:            "ECDHE-RSA-AES128-SHA",
		tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA:            "ECDHE-RSA-AES256-SHA",
		tls.TLS_RSA_WITH_AES_128_GCM_SHA256:               "AES128-GCM-SHA256",
		tls.TLS_RSA_WITH_AES_256_GCM_SHA384:               "AES256-GCM-SHA384",
	}
	if n, ok := names[id]; ok {
		return n
	}
	return tls.CipherSuiteName(id)
}

// cipherBits is the key length of a suite, sendmail's bits=.
func cipherBits(id uint16) int {
	name := tls.CipherSuiteName(id)
	switch {
	case strings.Contains(name, "AES_128"):
		return 128
	case strings.Contains(name, "3DES"):
		return 112
	}
	return 256
}
