package relay

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/posthorn/posthorn/internal/hoststat"
)

// hostOutcome is what trying one host gave.
type hostOutcome struct {
	fail    *failure // the host was not reached or the session failed: nothing decided
	hs      hoststat.Status
	tryNext bool  // the recipients in retry may be tried at the next host
	retry   []int // temporarily failed recipients
	// hold is the delivery's hold on the host (SingleThreadDelivery);
	// the caller releases it once the outcome is recorded.
	hold *hostHold
}

// tryHost delivers to one host: a cached connection when one is idle,
// otherwise each address in turn until one answers. Under
// SingleThreadDelivery it first waits for its turn at the host and locks
// it before connecting (single.go).
func (dl *delivery) tryHost(ctx context.Context, t target, pending []int) hostOutcome {
	req := dl.tlsRequirement(ctx, t)
	if req.Refuse != nil {
		return hostOutcome{fail: dl.refused(t, req)}
	}
	hold, f := dl.awaitTurn(ctx, t)
	if f != nil {
		return hostOutcome{fail: f}
	}
	out := dl.tryHeld(ctx, t, pending, req, hold)
	out.hold = hold
	return out
}

func (dl *delivery) tryHeld(ctx context.Context, t target, pending []int, req TLSRequirement, hold *hostHold) hostOutcome {
	key := cacheKey{name: t.name, port: dl.port, alwaysEHLO: dl.kind.alwaysEHLO}
	if sc := dl.c.takeIdle(key); sc != nil {
		if hold != nil {
			// The idle connection's lock is this delivery's now, also
			// for a new connection should this one prove dead.
			hold.unlock, sc.unlock = sc.unlock, nil
		}
		sc.use(ctx, dl.v, dl.xf)
		kind := "S"
		if sc.esmtp {
			kind = "ES"
		}
		fmt.Fprintf(dl.v, "%s... Using cached %sMTP connection to %s via %s...\n", dl.who(pending), kind, t.name, dl.kind.name)
		if r, err := sc.cmd(dl.c.to.Misc, "RSET"); err == nil && r.code/100 == 2 && tlsAllowed(req, sc) {
			return dl.transact(ctx, sc, t, pending, hold)
		}
		sc.quit(dl.c.to.Quit)
		if ctx.Err() != nil {
			return hostOutcome{fail: interrupted(ctx, t.name, t.name)}
		}
	}
	if f := dl.lock(hold, t); f != nil {
		return hostOutcome{fail: f}
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
		sc, f, connected, plain := dl.open(ctx, t, a, req, false)
		if plain {
			// The handshake failed: the same host again, without STARTTLS.
			sc, f, connected, _ = dl.open(ctx, t, a, req, true)
		}
		if f == nil {
			sc.key = key
			return dl.transact(ctx, sc, t, pending, hold)
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
func (dl *delivery) open(ctx context.Context, t target, a netip.Addr, req TLSRequirement, noTLS bool) (sc *conn, f *failure, connected, plain bool) {
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
	if f, plain := dl.negotiateTLS(ctx, sc, t, req, noTLS); f != nil || plain {
		return nil, f, true, plain
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
