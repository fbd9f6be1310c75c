package relay

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// rcptBatch is how many pipelined RCPTs are written before their replies
// are read, so that a long list cannot fill both directions' buffers.
const rcptBatch = 100

// errBodyRead marks a failure to read the df while sending: the message
// must not be ended with a dot.
var errBodyRead = errors.New("relay: reading the message")

// txn is one mail transaction on a connection.
type txn struct {
	dl      *delivery
	sc      *conn
	t       target
	pending []int
	okIdx   []int          // recipients the peer accepted
	replies map[int]*reply // each recipient's RCPT reply
	retry   []int          // temporarily failed recipients
	last    *reply         // the last reply of the transaction, for the host status
	lastDSN string         // its enhanced code
}

// transact runs MAIL, RCPT (pipelined when offered), DATA and the message
// on a session that is ready, decides the recipients and keeps the
// connection for reuse when it is still good (with the host's lock, under
// SingleThreadDelivery).
func (dl *delivery) transact(ctx context.Context, sc *conn, t target, pending []int, hold *hostHold) hostOutcome {
	x := &txn{dl: dl, sc: sc, t: t, pending: pending, replies: map[int]*reply{}}
	out := x.run()
	switch {
	case sc.broken:
		sc.close()
	case ctx.Err() != nil:
		sc.close()
	case out.fail == nil && !x.closed():
		sc.unlock = hold.take()
		dl.c.putIdle(sc, dl.v, dl.who(pending))
	}
	return out
}

func (x *txn) closed() bool { return x.sc.broken || x.sc.closed }

func (x *txn) final(i int, r runner.Result) {
	x.dl.res[i] = r
	x.dl.done[i] = true
}

// temp records a temporary failure that the next host may still change.
func (x *txn) temp(i int, r runner.Result) {
	x.dl.res[i] = r
	x.retry = append(x.retry, i)
}

func (x *txn) result(st *status.Error, r *reply) runner.Result {
	return runner.Result{Err: st, Relay: x.sc.relay(), RemoteMTA: x.t.name, Reply: r.first()}
}

// hs is the host status after a transaction: the last reply, kept as
// "up" unless the caller marks it sticky.
func (x *txn) hs() hoststat.Status {
	s := hoststat.Status{DSN: x.lastDSN, Reply: x.last.first()}
	return s
}

// lost is a connection lost or timed out in the transaction: every
// recipient not yet decided fails temporarily with it.
func (x *txn) lost(err error, phase string, retry bool) hostOutcome {
	f := x.dl.ioFail(x.sc, err, phase)
	x.sc.broken = true
	for _, i := range x.pending {
		if !x.dl.done[i] {
			x.temp(i, f.result())
		}
	}
	return hostOutcome{hs: f.hostStatus(""), tryNext: retry, retry: x.retry}
}

func (x *txn) run() hostOutcome {
	dl, sc, to := x.dl, x.sc, x.dl.c.to
	j := dl.job()

	if sc.ext.sizeOK && sc.ext.size > 0 && dl.msg.size > sc.ext.size {
		text := fmt.Sprintf("Message is too large; %d bytes max", sc.ext.size)
		for _, i := range x.pending {
			x.final(i, runner.Result{Err: status.New(552, "5.3.4", "%s", text), Relay: sc.relay(),
				RemoteMTA: x.t.name, Diagnostic: "552 5.3.4 " + text})
		}
		return hostOutcome{hs: hoststat.Status{DSN: "5.3.4"}}
	}
	plan, err := dl.plan(sc)
	if err != nil {
		return x.abort(status.Wrap(err, 451, "4.3.0", "cannot read the data file"))
	}
	utf8 := j.HasFlag(queue.FlagUTF8)
	if utf8 && !sc.ext.smtpUTF8 {
		for _, i := range x.pending {
			x.final(i, runner.Result{Err: status.New(550, "5.6.7", "SMTPUTF8 required but not offered"),
				Relay: sc.relay(), RemoteMTA: x.t.name, Diagnostic: "504 5.6.7 SMTPUTF8 required but not offered"})
		}
		return hostOutcome{hs: hoststat.Status{DSN: "5.6.7"}}
	}

	// MAIL
	r, err := sc.cmd(to.Mail, "MAIL From:<%s>%s", dl.sender(), dl.mailParams(sc, utf8))
	if err != nil {
		return hostOutcome{fail: dl.ioFail(sc, err, "client MAIL")}
	}
	x.note(r)
	switch {
	case r.code == 421:
		sc.quit(to.Quit)
		return x.all(mailFailure(r), r, true)
	case r.code/100 == 4:
		x.rset()
		return x.all(mailFailure(r), r, true)
	case r.code/100 == 5:
		x.rset()
		return x.all(mailFailure(r), r, false)
	case r.code/100 != 2:
		dl.c.log.Errf(dl.qid(), "%s: SMTP MAIL protocol error: %s", x.t.name, r.first())
		sc.quit(to.Quit)
		return x.all(mailFailure(r), r, false)
	}

	// RCPT, and DATA right after them when pipelining.
	pipelined := sc.ext.pipelining
	for start := 0; start < len(x.pending); {
		end := len(x.pending)
		if pipelined && end-start > rcptBatch {
			end = start + rcptBatch
		}
		if !pipelined {
			end = start + 1
		}
		for _, i := range x.pending[start:end] {
			sc.send(dl.rcptCmd(sc, i))
		}
		if pipelined && end == len(x.pending) {
			sc.send("DATA")
		}
		for _, i := range x.pending[start:end] {
			r, err := sc.readReply(to.Rcpt)
			if err != nil {
				return x.lost(err, "client RCPT", true)
			}
			x.note(r)
			x.replies[i] = r
			st := rcptFailure(r, x.t.name, sc.relay())
			switch {
			case st == nil:
				x.okIdx = append(x.okIdx, i)
			case st.Temporary():
				x.temp(i, x.result(st, r))
			default:
				x.final(i, x.result(st, r))
			}
			if r.code == 421 {
				// The peer is closing: the rest fail with its reply.
				sc.quit(to.Quit)
				for _, k := range x.pending {
					if !x.dl.done[k] && x.replies[k] == nil {
						x.temp(k, x.result(rcptFailure(r, x.t.name, sc.relay()), r))
					}
				}
				for _, k := range x.okIdx {
					x.temp(k, x.result(status.New(r.code, r.enhancedOr("4.4.2"), "%s", r.first()), r))
				}
				return hostOutcome{hs: x.hs(), tryNext: true, retry: x.retry}
			}
		}
		start = end
	}

	if len(x.okIdx) == 0 {
		if pipelined {
			x.noRecipientsData()
		} else {
			x.rset()
		}
		return hostOutcome{hs: x.hs(), tryNext: len(x.retry) > 0, retry: x.retry}
	}

	// DATA
	if !pipelined {
		sc.send("DATA")
	}
	r, err = sc.readReply(to.DataInit)
	if err != nil {
		return x.lost(err, "client DATA 354", true)
	}
	x.note(r)
	switch {
	case r.code/100 == 4:
		sc.quit(to.Quit)
		x.okTemp(dataFailure(r), r)
		return hostOutcome{hs: x.hs(), tryNext: true, retry: x.retry}
	case r.code/100 == 5:
		x.rset()
		x.okFinal(dataFailure(r), r)
		return hostOutcome{hs: x.hs(), retry: x.retry}
	case r.code/100 != 3:
		dl.c.log.Errf(dl.qid(), "%s: SMTP DATA-1 protocol error: %s", x.t.name, r.first())
		x.rset()
		x.okFinal(dataFailure(r), r)
		return hostOutcome{hs: x.hs()}
	}

	// The message. From here on a lost connection may have delivered it:
	// the recipients are deferred, never sent elsewhere in this attempt.
	if err := writeMessage(sc.w, dl.msg, plan); err != nil {
		if errors.Is(err, errBodyRead) {
			sc.broken = true // no final dot: the peer must not take a truncated message
			return x.abort(status.Wrap(err, 451, "4.3.0", "cannot read the data file"))
		}
		return x.lost(err, "client DATA", false)
	}
	sc.w.WriteString(".\r\n")
	fmt.Fprintln(sc.v, ">>> .")
	if err := sc.flush(to.DataBlock); err != nil {
		return x.lost(err, "client DATA", false)
	}
	r, err = sc.readReply(to.DataFinal)
	if err != nil {
		return x.lost(err, "client DATA status", false)
	}
	x.note(r)
	switch {
	case r.code/100 == 2:
		for _, i := range x.okIdx {
			x.final(i, dl.success(sc, x.t, i, r, x.replies[i]))
		}
		return hostOutcome{hs: x.hs(), tryNext: false, retry: x.retry}
	case r.code/100 == 4:
		x.okTemp(dataFailure(r), r)
		out := hostOutcome{hs: x.hs(), tryNext: true, retry: x.retry}
		if r.code != 452 {
			out.hs.Exit = exitTempFail // sticky, as sendmail's xstat
		}
		return out
	case r.code/100 == 5:
		x.okFinal(dataFailure(r), r)
	default:
		dl.c.log.Errf(dl.qid(), "%s: SMTP DATA-2 protocol error: %s", x.t.name, r.first())
		x.okFinal(dataFailure(r), r)
	}
	return hostOutcome{hs: x.hs(), retry: x.retry}
}

// note remembers a reply as the transaction's latest.
func (x *txn) note(r *reply) {
	x.last = r
	x.lastDSN = r.enhancedOr(smtpToDSN(r.code))
}

// all gives every pending recipient the failure st (temporary ones may
// go to the next host when retry).
func (x *txn) all(st *status.Error, r *reply, retry bool) hostOutcome {
	for _, i := range x.pending {
		if st.Temporary() {
			x.temp(i, x.result(st, r))
		} else {
			x.final(i, x.result(st, r))
		}
	}
	return hostOutcome{hs: x.hs(), tryNext: retry, retry: x.retry}
}

// abort defers every undecided recipient for a local reason.
func (x *txn) abort(st *status.Error) hostOutcome {
	for _, i := range x.pending {
		if !x.dl.done[i] {
			x.final(i, runner.Result{Err: st, Relay: x.sc.relay(), RemoteMTA: x.t.name})
		}
	}
	x.sc.broken = true
	return hostOutcome{hs: hoststat.Status{DSN: st.Enhanced}}
}

func (x *txn) okTemp(st *status.Error, r *reply) {
	for _, i := range x.okIdx {
		x.temp(i, x.result(st, r))
	}
}

func (x *txn) okFinal(st *status.Error, r *reply) {
	for _, i := range x.okIdx {
		if st.Temporary() {
			x.temp(i, x.result(st, r))
		} else {
			x.final(i, x.result(st, r))
		}
	}
}

// rset resets the transaction on a connection kept for reuse.
func (x *txn) rset() {
	if x.sc.broken {
		return
	}
	r, err := x.sc.cmd(x.dl.c.to.Rset, "RSET")
	if err != nil || r.code/100 != 2 {
		x.sc.broken = true
	}
}

// noRecipientsData answers the DATA pipelined after RCPTs that all
// failed: a 354 gets an empty message (sendmail sends just the dot),
// a refusal an RSET.
func (x *txn) noRecipientsData() {
	sc, to := x.sc, x.dl.c.to
	r, err := sc.readReply(to.DataInit)
	if err != nil {
		sc.broken = true
		return
	}
	x.note(r)
	switch r.code / 100 {
	case 3:
		sc.w.WriteString(".\r\n")
		fmt.Fprintln(sc.v, ">>> .")
		if r, err = sc.readReply(to.DataFinal); err != nil {
			sc.broken = true
			return
		}
		x.note(r)
	case 4:
		sc.quit(to.Quit)
	default:
		x.rset()
	}
}

// sender is the MAIL FROM address.
func (dl *delivery) sender() string {
	if dl.d.Null {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(dl.d.Sender, "<"), ">")
}

// mailParams are the MAIL parameters, in sendmail's order: SIZE,
// SMTPUTF8, BODY, ENVID, RET.
func (dl *delivery) mailParams(sc *conn, utf8 bool) string {
	var b strings.Builder
	j := dl.job()
	if sc.ext.sizeOK && dl.msg.size > 0 {
		fmt.Fprintf(&b, " SIZE=%d", dl.msg.size)
	}
	if utf8 {
		b.WriteString(" SMTPUTF8")
	}
	if sc.ext.eightBit {
		body := j.BodyType
		if body == "" && dl.c.cfg.EightBitMode == Mimefy && !dl.kind.eightBits {
			if eight, _ := dl.msg.has8bit(); eight {
				body = "8BITMIME"
			}
		}
		if body != "" {
			b.WriteString(" BODY=" + body)
		}
	}
	if sc.ext.dsn {
		if j.EnvID != "" {
			b.WriteString(" ENVID=" + j.EnvID)
		}
		if j.HasFlag(queue.FlagRetParam) {
			if j.HasFlag(queue.FlagRetHdrs) {
				b.WriteString(" RET=HDRS")
			} else {
				b.WriteString(" RET=FULL")
			}
		}
	}
	return b.String()
}

// rcptCmd is the RCPT command for recipient i, with NOTIFY (for a
// recipient the sender named) and ORCPT when the peer offers DSN.
func (dl *delivery) rcptCmd(sc *conn, i int) string {
	rc := dl.d.Rcpts[i]
	user := rc.User
	if user == "" {
		user = rc.Recipient.Addr
	}
	user = strings.TrimSuffix(strings.TrimPrefix(user, "<"), ">")
	cmd := "RCPT To:<" + user + ">"
	if !sc.ext.dsn {
		return cmd
	}
	if rc.HasFlag(queue.RcptHasNotify) && rc.HasFlag(queue.RcptPrimary) {
		var n []string
		if rc.HasFlag(queue.RcptSuccess) {
			n = append(n, "SUCCESS")
		}
		if rc.HasFlag(queue.RcptFailure) {
			n = append(n, "FAILURE")
		}
		if rc.HasFlag(queue.RcptDelay) {
			n = append(n, "DELAY")
		}
		if len(n) == 0 {
			n = []string{"NEVER"}
		}
		cmd += " NOTIFY=" + strings.Join(n, ",")
	}
	if rc.ORcpt != "" {
		cmd += " ORCPT=" + rc.ORcpt
	}
	return cmd
}

// success is the result of a recipient whose message the peer took. A
// recipient that asked for NOTIFY=SUCCESS gets a "relayed" receipt when
// the peer does not offer DSN (it will send none).
func (dl *delivery) success(sc *conn, t target, i int, final, rcpt *reply) runner.Result {
	res := runner.Result{Relay: sc.relay(), RemoteMTA: t.name, Reply: rcpt.first(),
		Stat: final.text(), DSN: final.enhancedOr(smtpToDSN(final.code))}
	rc := dl.d.Rcpts[i]
	if !sc.ext.dsn && rc.HasFlag(queue.RcptSuccess) && rc.HasFlag(queue.RcptPrimary) {
		res.Relayed = true
		fmt.Fprintf(dl.xf, "%s... relayed; expect no further notifications\n", rc.Recipient.Addr)
	}
	return res
}

// plan decides how the message goes out on this connection: as it is,
// converted to 7-bit MIME, or with MIME headers added (EightBitMode).
func (dl *delivery) plan(sc *conn) (dataPlan, error) {
	p := dataPlan{limit: dl.kind.limit, charset: dl.c.cfg.DefaultCharSet, host: dl.c.cfg.Hostname, qid: dl.qid()}
	mode := dl.c.cfg.EightBitMode
	_, isMIME := lookupField(headerFields(dl.msg.header), "MIME-Version")
	if sc.ext.eightBit || dl.kind.eightBits || sc.eightOK {
		if mode == Mimefy && !dl.kind.eightBits && !isMIME {
			eight, err := dl.msg.has8bit()
			if err != nil {
				return p, err
			}
			p.mimefy = eight
		}
		return p, nil
	}
	eight, err := dl.msg.has8bit()
	if err != nil || !eight {
		return p, err
	}
	if mode == Pass8 && !isMIME {
		return p, nil // sendmail's pass8: a non-MIME message goes as it is
	}
	p.convert = true
	return p, nil
}
