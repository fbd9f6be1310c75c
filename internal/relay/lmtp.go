package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// LMTPConfig configures an LMTP mailer.
type LMTPConfig struct {
	// Network is "tcp" or "unix"; Address "host:port" or the socket's path.
	Network, Address string
	Hostname         string // $j: the LHLO name
	Timeouts         Timeouts
	// LHLO is Timeout.lhlo (sendmail's default 2m).
	LHLO time.Duration
	// ConnectionCacheSize and ConnectionCacheTimeout bound the idle
	// sessions kept for the next message (as the relay client's).
	ConnectionCacheSize    int
	ConnectionCacheTimeout time.Duration
	Dial                   func(ctx context.Context, network, address string) (net.Conn, error)
	Logger                 *maillog.Logger
	Now                    func() time.Time
}

// LMTP delivers local recipients to an LMTP server (RFC 2033), such as
// Dovecot's lmtp: the local mailer when sendmail.cf defines it with
// P=[IPC] (see the package comment, "LMTP"). It is safe for concurrent
// use; idle sessions are kept for the next message.
type LMTP struct {
	c    *Client // timeouts, dialer, idle sessions, logger
	net  string
	addr string
	name string // as shown: "[127.0.0.1] port 24", "/run/dovecot/lmtp"
	lhlo time.Duration
}

// NewLMTP returns an LMTP mailer; Close ends its idle sessions.
func NewLMTP(cfg LMTPConfig) *LMTP {
	l := &LMTP{net: cfg.Network, addr: cfg.Address, lhlo: cfg.LHLO}
	if l.net == "" {
		l.net = "tcp"
	}
	if l.lhlo <= 0 {
		l.lhlo = 2 * time.Minute
	}
	l.name = l.addr
	if l.net != "unix" {
		if host, port, err := net.SplitHostPort(l.addr); err == nil {
			l.name = "[" + host + "] port " + port
		}
	}
	l.c = New(Config{Hostname: cfg.Hostname, Timeouts: cfg.Timeouts, ConnectionCacheSize: cfg.ConnectionCacheSize,
		ConnectionCacheTimeout: cfg.ConnectionCacheTimeout, Dial: cfg.Dial, Logger: cfg.Logger, Now: cfg.Now})
	return l
}

// Close says QUIT to the idle sessions.
func (l *LMTP) Close() error { return l.c.Close() }

func (l *LMTP) key() cacheKey { return cacheKey{name: l.net + ":" + l.addr} }

// relayOf is the log's relay= for a session: the host and address
// connected to, or the socket's path.
func (l *LMTP) relayOf(sc *conn) string {
	if l.net == "unix" || sc == nil || !sc.addr.IsValid() {
		return l.addr
	}
	host, _, _ := net.SplitHostPort(l.addr)
	return relayName(host, addrText(sc.addr, sc.addr.Is6() && !sc.addr.Is4In6()))
}

// Deliver sends the message of d to its recipients in one LMTP
// transaction and returns each recipient's result, in order, from the
// replies the server gives after the data.
func (l *LMTP) Deliver(ctx context.Context, d *runner.Delivery) []runner.Result {
	dl := &delivery{c: l.c, d: d, kind: mailerKind{name: d.Mailer, eightBits: true},
		res: make([]runner.Result, len(d.Rcpts)), done: make([]bool, len(d.Rcpts)),
		v: d.Verbose, xf: d.TranscriptOnly}
	if dl.kind.name == "" {
		dl.kind.name = "local"
	}
	if dl.v == nil {
		dl.v = io.Discard
	}
	if dl.xf == nil {
		dl.xf = d.Transcript
	}
	if dl.xf == nil {
		dl.xf = io.Discard
	}
	unset := status.New(451, "4.3.0", "Internal error: recipient not attempted")
	for i := range dl.res {
		dl.res[i].Err = unset
	}
	if len(d.Rcpts) == 0 {
		return dl.res
	}
	var err error
	if dl.msg, err = newMessage(d); err != nil {
		dl.settle(&failure{st: status.From(err)})
		return dl.res
	}
	sc, f := l.session(ctx, dl)
	if f != nil {
		dl.settle(f)
		return dl.res
	}
	l.transact(ctx, dl, sc)
	dl.settle(&failure{st: unset, relay: l.relayOf(sc), remote: l.name})
	return dl.res
}

// session is an idle session that answers RSET, or a new one.
func (l *LMTP) session(ctx context.Context, dl *delivery) (*conn, *failure) {
	to := l.c.to
	if sc := l.c.takeIdle(l.key()); sc != nil {
		sc.use(ctx, dl.v, dl.xf)
		fmt.Fprintf(dl.v, "%s... Using cached LMTP connection to %s via %s...\n", dl.who(nil), l.name, dl.kind.name)
		if r, err := sc.cmd(to.Misc, "RSET"); err == nil && r.code/100 == 2 {
			return sc, nil
		}
		sc.quit(to.Quit)
		if ctx.Err() != nil {
			return nil, interrupted(ctx, l.name, l.addr)
		}
	}
	fmt.Fprintf(dl.v, "%s... Connecting to %s via %s...\n", dl.who(nil), l.name, dl.kind.name)
	timeout := to.Connect
	if dl.job().Attempts == 0 {
		timeout = to.IConnect
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	nc, err := l.c.dial(dctx, l.net, l.addr)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil, interrupted(ctx, l.name, l.addr)
		}
		return nil, connFailure(err, l.name, l.addr)
	}
	var a netip.Addr
	port := 0
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		a, port = ap.Addr().Unmap(), int(ap.Port())
	}
	sc := newConn(nc, l.name, a, port)
	sc.key = l.key()
	sc.use(ctx, dl.v, dl.xf)
	r, err := sc.readReply(to.Initial)
	if err != nil {
		sc.close()
		return nil, l.ioFail(dl, sc, err, "client greeting")
	}
	if r.code/100 != 2 {
		return nil, l.refused(sc, r)
	}
	r, err = sc.cmd(l.lhlo, "LHLO %s", l.c.cfg.Hostname)
	switch {
	case err != nil:
		sc.close()
		return nil, l.ioFail(dl, sc, err, "client LHLO")
	case r.code/100 != 2:
		return nil, l.refused(sc, r)
	}
	sc.esmtp = true
	sc.ext = parseEHLO(r)
	return sc, nil
}

// refused is a greeting or LHLO refused. Even a 5xx defers: the mail
// store is part of this site, and a server that refuses to talk is a
// configuration or maintenance matter, not the recipients' fault.
func (l *LMTP) refused(sc *conn, r *reply) *failure {
	sc.quit(l.c.to.Quit)
	f := replyTempFailure(r, "4.5.0", l.name, l.relayOf(sc), false)
	if r.code/100 != 4 {
		f.st = status.New(451, "4.3.0", "%s", r.first())
	}
	return f
}

// ioFail is a session lost or timed out during phase.
func (l *LMTP) ioFail(dl *delivery, sc *conn, err error, phase string) *failure {
	if ctx := sc.ctx; ctx.Err() != nil {
		return interrupted(ctx, l.name, l.relayOf(sc))
	}
	if isTimeout(err) {
		l.c.log.Noticef(dl.qid(), "timeout waiting for input from %s during %s", l.name, phase)
	}
	return ioFailure(err, l.name, l.relayOf(sc))
}

// transact runs MAIL, the RCPTs and DATA (pipelined when offered), then
// reads one reply per accepted recipient. The session is kept for the
// next message when it ended cleanly.
func (l *LMTP) transact(ctx context.Context, dl *delivery, sc *conn) {
	if l.run(dl, sc) && !sc.broken && !sc.closed && ctx.Err() == nil {
		l.c.putIdle(sc, dl.v, dl.who(nil))
		return
	}
	if !sc.closed {
		sc.close()
	}
}

// run is one transaction; it reports whether the session may be reused.
func (l *LMTP) run(dl *delivery, sc *conn) bool {
	to := l.c.to
	relay := l.relayOf(sc)
	result := func(st *status.Error, r *reply) runner.Result {
		return runner.Result{Err: st, Relay: relay, RemoteMTA: l.name, Reply: r.first()}
	}
	final := func(i int, res runner.Result) { dl.res[i], dl.done[i] = res, true }
	lost := func(err error, phase string) bool {
		f := l.ioFail(dl, sc, err, phase)
		sc.broken = true
		dl.settle(f)
		return false
	}
	utf8 := dl.job().HasFlag(queue.FlagUTF8)
	if utf8 && !sc.ext.smtpUTF8 {
		dl.settle(&failure{st: status.New(550, "5.6.7", "SMTPUTF8 required but not offered"), relay: relay,
			remote: l.name, diag: "504 5.6.7 SMTPUTF8 required but not offered"})
		return true
	}
	r, err := sc.cmd(to.Mail, "MAIL From:<%s>%s", dl.sender(), l.mailParams(dl, sc, utf8))
	if err != nil {
		return lost(err, "client MAIL")
	}
	if r.code/100 != 2 {
		st := mailFailure(r)
		for i := range dl.res {
			final(i, result(st, r))
		}
		return l.rset(sc)
	}
	pipelined := sc.ext.pipelining
	var ok []int
	for start := 0; start < len(dl.res); {
		end := start + 1
		if pipelined {
			end = min(len(dl.res), start+rcptBatch)
		}
		for i := start; i < end; i++ {
			sc.send(lmtpRcpt(dl.d.Rcpts[i]))
		}
		if pipelined && end == len(dl.res) {
			sc.send("DATA")
		}
		for i := start; i < end; i++ {
			r, err := sc.readReply(to.Rcpt)
			if err != nil {
				return lost(err, "client RCPT")
			}
			if st := rcptFailure(r, l.name, relay); st != nil {
				final(i, result(st, r))
				continue
			}
			ok = append(ok, i)
		}
		start = end
	}
	if !pipelined && len(ok) > 0 {
		sc.send("DATA")
	}
	if len(ok) == 0 && !pipelined {
		return l.rset(sc)
	}
	r, err = sc.readReply(to.DataInit)
	if err != nil {
		return lost(err, "client DATA 354")
	}
	if r.code != 354 {
		st := dataFailure(r)
		for _, i := range ok {
			final(i, result(st, r))
		}
		return l.rset(sc)
	}
	if len(ok) == 0 {
		// The server said 354 to a pipelined DATA without recipients:
		// an empty message, which it has no recipient to reply for.
		sc.w.WriteString(".\r\n")
		fmt.Fprintln(sc.v, ">>> .")
		if _, err := sc.readReply(to.DataFinal); err != nil {
			return lost(err, "client DATA status")
		}
		return true
	}
	if err := writeMessage(sc.w, dl.msg, dataPlan{}); err != nil {
		if errors.Is(err, errBodyRead) {
			sc.broken = true
			dl.settle(&failure{st: status.Wrap(err, 451, "4.3.0", "cannot read the data file"), relay: relay, remote: l.name})
			return false
		}
		return lost(err, "client DATA")
	}
	sc.w.WriteString(".\r\n")
	fmt.Fprintln(sc.v, ">>> .")
	if err := sc.flush(to.DataBlock); err != nil {
		return lost(err, "client DATA")
	}
	// One reply per accepted recipient, in RCPT order (RFC 2033 4.2). A
	// session lost among them defers those not yet answered: the server
	// may have delivered to them, which a retry repeats, as any MTA must.
	for _, i := range ok {
		r, err := sc.readReply(to.DataFinal)
		if err != nil {
			return lost(err, "client DATA status")
		}
		switch r.code / 100 {
		case 2:
			final(i, runner.Result{Relay: relay, RemoteMTA: l.name, Reply: r.first(),
				DSN: r.enhancedOr(smtpToDSN(r.code)), Delivered: true})
		default:
			final(i, result(dataFailure(r), r))
		}
	}
	return true
}

// mailParams are SIZE=, SMTPUTF8 and BODY= as the server offers them; an
// LMTP server makes the final delivery, so no DSN parameters are passed
// (the runner sends the success notices itself).
func (l *LMTP) mailParams(dl *delivery, sc *conn, utf8 bool) string {
	var b strings.Builder
	if sc.ext.sizeOK && dl.msg.size > 0 {
		b.WriteString(" SIZE=" + strconv.FormatInt(dl.msg.size, 10))
	}
	if utf8 {
		b.WriteString(" SMTPUTF8")
	}
	if body := dl.job().BodyType; sc.ext.eightBit && body != "" {
		b.WriteString(" BODY=" + body)
	}
	return b.String()
}

// lmtpRcpt is the RCPT command: the local user, as sendmail's local
// mailer gives it ("RCPT To:<bob>").
func lmtpRcpt(rc runner.Rcpt) string {
	user := rc.User
	if user == "" {
		user = rc.Recipient.Addr
	}
	return "RCPT To:<" + strings.TrimSuffix(strings.TrimPrefix(user, "<"), ">") + ">"
}

// rset ends a failed transaction on a session kept for reuse.
func (l *LMTP) rset(sc *conn) bool {
	r, err := sc.cmd(l.c.to.Rset, "RSET")
	if err != nil || r.code/100 != 2 {
		sc.broken = true
		return false
	}
	return true
}
