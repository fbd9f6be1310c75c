package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/status"
)

// hostOutcome is what trying one host gave.
type hostOutcome struct {
	fail    *failure // the host was not reached or the session failed: nothing decided
	hs      hoststat.Status
	tryNext bool  // the recipients in retry may be tried at the next host
	retry   []int // temporarily failed recipients
}

// tryHost delivers to one host: a cached connection when one is idle,
// otherwise each address in turn until one answers.
func (dl *delivery) tryHost(ctx context.Context, t target, pending []int) hostOutcome {
	key := cacheKey{name: t.name, port: dl.port, alwaysEHLO: dl.kind.alwaysEHLO}
	if sc := dl.c.takeIdle(key); sc != nil {
		sc.use(ctx, dl.v, dl.xf)
		kind := "S"
		if sc.esmtp {
			kind = "ES"
		}
		fmt.Fprintf(dl.v, "%s... Using cached %sMTP connection to %s via %s...\n", dl.who(pending), kind, t.name, dl.kind.name)
		if r, err := sc.cmd(dl.c.to.Misc, "RSET"); err == nil && r.code/100 == 2 && dl.tlsAllowed(t, sc) {
			return dl.transact(ctx, sc, t, pending)
		}
		sc.quit(dl.c.to.Quit)
		if ctx.Err() != nil {
			return hostOutcome{fail: interrupted(ctx, t.name, t.name)}
		}
	}

	addrs := t.addrs
	if addrs == nil {
		if dl.c.cfg.Resolver == nil {
			return hostOutcome{fail: lookupFailure(errNoResolver, t.name, t.name)}
		}
		var err error
		addrs, err = dl.c.cfg.Resolver.Addrs(ctx, t.lookup)
		switch {
		case ctx.Err() != nil:
			return hostOutcome{fail: interrupted(ctx, t.name, t.name)}
		case err != nil:
			return hostOutcome{fail: resolveFailure(err, t.name, t.name, t.name)}
		case len(addrs) == 0:
			return hostOutcome{fail: hostUnknown(errNoMX, t.name, t.name, t.name)}
		}
	}
	fmt.Fprintf(dl.v, "%s... Connecting to %s%s via %s...\n", dl.who(pending), t.name, portText(dl.port), dl.kind.name)
	var fail *failure
	for _, a := range addrs {
		sc, f, connected, plain := dl.open(ctx, t, a, false)
		if plain {
			// The handshake failed: the same host again, without STARTTLS.
			sc, f, connected, _ = dl.open(ctx, t, a, true)
		}
		if f == nil {
			sc.key = key
			return dl.transact(ctx, sc, t, pending)
		}
		fail = f
		if connected || ctx.Err() != nil {
			break // sendmail tries further addresses only when connect() failed
		}
	}
	return hostOutcome{fail: fail}
}

// open connects to one address of a host and runs the session up to the
// first MAIL: greeting, EHLO (HELO), STARTTLS. connected says that
// connect() succeeded; plain asks for a new try without STARTTLS.
func (dl *delivery) open(ctx context.Context, t target, a netip.Addr, noTLS bool) (sc *conn, f *failure, connected, plain bool) {
	c := dl.c
	relay := relayName(t.name, addrText(a, a.Is6() && !a.Is4In6()))
	timeout := c.to.Connect
	if dl.job().Attempts == 0 {
		timeout = c.to.IConnect
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	nc, err := c.dial(dctx, "tcp", netip.AddrPortFrom(a, uint16(dl.port)).String())
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(ctx, t.name, relay), false, false
		}
		return nil, connFailure(err, t.name, relay), false, false
	}
	sc = newConn(nc, t.name, a, dl.port)
	sc.use(ctx, dl.v, dl.xf)

	r, err := sc.readReply(c.to.Initial)
	if err != nil {
		sc.close()
		return nil, dl.ioFail(sc, err, "client greeting"), true, false
	}
	greetESMTP := false
	for _, l := range r.lines {
		greetESMTP = greetESMTP || strings.Contains(l, "ESMTP")
		sc.eightOK = sc.eightOK || strings.Contains(l, "8BIT-OK")
	}
	switch {
	case r.code/100 == 4:
		sc.quit(c.to.Quit)
		return nil, replyTempFailure(r, "4.5.0", t.name, relay, true), true, false
	case r.code/100 != 2:
		sc.quit(c.to.Quit)
		return nil, unavailable(r, "5.5.0", t.name, relay), true, false
	}
	if f := dl.hello(sc, dl.kind.alwaysEHLO || greetESMTP); f != nil {
		sc.quit(c.to.Quit)
		return nil, f, true, false
	}
	mode := dl.tlsMode(t)
	if !noTLS && mode != TLSNone && sc.esmtp && sc.ext.startTLS {
		f, plain := dl.startTLS(ctx, sc, t, mode)
		if f != nil || plain {
			return nil, f, true, plain
		}
	}
	if !dl.tlsAllowed(t, sc) {
		sc.quit(c.to.Quit)
		return nil, notAuthenticated(t.name, relay), true, false
	}
	return sc, nil, true, false
}

// hello says EHLO, or HELO when EHLO is refused with 5xx or the mailer
// does not speak ESMTP, and checks that the peer is not this host.
func (dl *delivery) hello(sc *conn, ehlo bool) *failure {
	c := dl.c
	if ehlo {
		r, err := sc.cmd(c.to.Helo, "EHLO %s", c.cfg.Hostname)
		switch {
		case err != nil:
			return dl.ioFail(sc, err, "client EHLO")
		case r.code/100 == 5:
			// try old SMTP instead
		case r.code/100 != 2:
			return replyTempFailure(r, "4.5.0", sc.name, sc.relay(), true)
		default:
			sc.esmtp = true
			sc.ext = parseEHLO(r)
			return dl.loopCheck(sc, r)
		}
	}
	r, err := sc.cmd(c.to.Helo, "HELO %s", c.cfg.Hostname)
	switch {
	case err != nil:
		return dl.ioFail(sc, err, "client HELO")
	case r.code/100 == 5:
		return unavailable(r, "5.5.0", sc.name, sc.relay())
	case r.code/100 != 2:
		return replyTempFailure(r, "4.5.0", sc.name, sc.relay(), true)
	}
	sc.esmtp, sc.ext = false, extensions{}
	return dl.loopCheck(sc, r)
}

// loopCheck fails a peer that greets with our own name: the mail would
// loop (an MX pointing at us, or a smart host that is us).
func (dl *delivery) loopCheck(sc *conn, r *reply) *failure {
	name := r.first()
	if len(name) < 4 {
		return nil
	}
	name, _, _ = strings.Cut(name[4:], " ")
	if !strings.EqualFold(name, dl.c.cfg.Hostname) {
		return nil
	}
	msg := sc.name + " config error: mail loops back to me (MX problem?)"
	fmt.Fprintf(dl.xf, "553 5.3.5 %s\n", msg)
	dl.c.log.Errf(dl.qid(), "SYSERR(root): %s", msg)
	return configFailure("553 5.3.5 system config error", sc.name, sc.relay())
}

// ioFail is the failure of a connection lost or timed out during phase.
func (dl *delivery) ioFail(sc *conn, err error, phase string) *failure {
	if ctx := sc.ctx; ctx.Err() != nil {
		return interrupted(ctx, sc.name, sc.relay())
	}
	if isTimeout(err) {
		dl.c.log.Noticef(dl.qid(), "timeout waiting for input from %s during %s", sc.name, phase)
	}
	return ioFailure(err, sc.name, sc.relay())
}

func (dl *delivery) tlsMode(t target) TLSMode {
	if dl.c.cfg.TLSPolicy == nil {
		return TLSOpportunistic
	}
	return dl.c.cfg.TLSPolicy(dl.domain, strings.TrimSuffix(t.lookup, "."))
}

// tlsAllowed reports whether a connection meets the destination's TLS
// requirement.
func (dl *delivery) tlsAllowed(t target, sc *conn) bool {
	switch dl.tlsMode(t) {
	case TLSEncrypt:
		return sc.tls
	case TLSVerify:
		return sc.tls && sc.verified
	}
	return true
}

// notAuthenticated is sendmail's answer when the TLS requirement of a
// destination is not met.
func notAuthenticated(name, relay string) *failure {
	return &failure{st: status.New(403, "4.7.0", "403 4.7.0 server not authenticated."),
		relay: relay, remote: name, reply: "403 4.7.0 server not authenticated.", exit: exitTempFail}
}

// startTLS runs STARTTLS and the second EHLO. A refused STARTTLS goes on
// in plain text (unless TLS is required); a failed handshake asks for a
// new connection without it (plain).
func (dl *delivery) startTLS(ctx context.Context, sc *conn, t target, mode TLSMode) (f *failure, plain bool) {
	c := dl.c
	r, err := sc.cmd(c.to.StartTLS, "STARTTLS")
	if err != nil {
		sc.close()
		return dl.ioFail(sc, err, "client STARTTLS"), false
	}
	if r.code != 220 {
		return nil, false // the caller checks the requirement
	}
	serverName := strings.TrimSuffix(t.lookup, ".")
	verified := false
	cfg := &tls.Config{}
	if c.cfg.TLS != nil {
		cfg = c.cfg.TLS.Clone()
	}
	roots := cfg.RootCAs
	cfg.ServerName = serverName
	cfg.InsecureSkipVerify = true // verified below, to log verify= whatever the outcome
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		err := verifyPeer(cs, roots, serverName, sc.addr)
		verified = err == nil
		if mode == TLSVerify {
			return err
		}
		return nil
	}
	tc := tls.Client(sc.raw, cfg)
	hctx, cancel := context.WithTimeout(ctx, c.to.StartTLS)
	err = tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		c.log.Warnf(dl.qid(), "STARTTLS=client, relay=%s, error: connect failed: %v", sc.name, err)
		sc.broken = true
		sc.close()
		if ctx.Err() != nil {
			return interrupted(ctx, sc.name, sc.relay()), false
		}
		if mode == TLSEncrypt || mode == TLSVerify {
			return notAuthenticated(sc.name, sc.relay()), false
		}
		return nil, true
	}
	cs := tc.ConnectionState()
	verify := "FAIL"
	if verified {
		verify = "OK"
	}
	bits := cipherBits(cs.CipherSuite)
	c.log.Infof(dl.qid(), "STARTTLS=client, relay=%s, version=%s, verify=%s, cipher=%s, bits=%d/%d",
		sc.name, tlsVersion(cs.Version), verify, cipherName(cs.CipherSuite), bits, bits)
	sc.nc = tc
	sc.r.Reset(tc)
	sc.tls, sc.verified = true, verified
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
