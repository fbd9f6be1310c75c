package runner

import (
	"bytes"
	"context"
	"io"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/dsn"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// pendingReport is a DSN decided during an attempt, not yet queued.
type pendingReport struct {
	kind     dsn.Kind
	report   *dsn.Report
	reason   string // logged: "<ID>: <new ID>: <label>: <reason>"
	onQueued func() // run once the report is queued (or not needed)
}

// report prepares a DSN of kind k about the outcomes os of job j.
// timedOut marks the recipients of a job given up after
// Timeout.queuereturn (status 4.4.7, no diagnostic).
//
// first marks the attempt right after acceptance: sendmail makes it in the
// receiving process, which knows the client's host name, and so names it
// in Received-From-MTA.
func (r *Runner) report(j *queue.Job, df *queue.Data, k dsn.Kind, os []*outcome, transcript []string, reason string, now time.Time, timedOut, first bool) *pendingReport {
	rep := &dsn.Report{
		Kind:         k,
		Hostname:     r.cfg.Hostname,
		Version:      r.cfg.Version,
		DoubleBounce: r.cfg.DoubleBounceAddress,
		OriginalID:   j.ID,
		Sender:       j.Sender,
		Arrival:      j.Created,
		EnvID:        j.EnvID,
		EightBit:     j.BodyType == "8BITMIME" || j.HasFlag(queue.Flag8Bit),
		Transcript:   transcript,
		WarnAfter:    r.cfg.Schedule.QueueWarn,
		ReturnAfter:  r.cfg.Schedule.QueueReturn,
		Now:          now,
	}
	for _, m := range j.Macros {
		if m.Name == "_" {
			rep.ReceivedFrom = m.Value
			if host, _, ok := strings.Cut(m.Value, " ["); ok && first {
				rep.ReceivedFromMTA = host
			}
		}
	}
	m := r.newMacros(j)
	rep.Header = renderHeader(nil, j, r.flag["local"], m)
	rep.Return = dsn.Full
	if j.HasFlag(queue.FlagRetHdrs) || (r.cfg.NoBodyReturn && !j.HasFlag(queue.FlagRetParam)) {
		rep.Return = dsn.Headers
	}
	if rep.Return == dsn.Full {
		if body, err := io.ReadAll(df.Reader()); err == nil {
			rep.Body = body
		} else {
			rep.Return = dsn.Headers
		}
	}
	if k == dsn.Receipt {
		rep.Transcript = rep.Transcript[:0:0]
	}
	for _, o := range os {
		q := dsn.Recipient{
			Address:        o.rcpt.Addr,
			ExpandedFrom:   ctlAlias(o.rcpt),
			Notify:         notifyOf(o.rcpt),
			ORCPT:          o.rcpt.ORcpt,
			FinalRecipient: o.rcpt.FinalRcpt,
			User:           o.route.User,
			RemoteMTA:      o.res.RemoteMTA,
			LastAttempt:    now,
		}
		switch {
		case k == dsn.Receipt:
			q.Action = dsn.Delivered
			q.Status = o.res.DSN
			q.Diagnostic = o.res.Reply
			if q.Diagnostic == "" {
				q.Diagnostic = o.res.Diagnostic
			}
			if o.res.Relayed && !o.res.Delivered {
				q.Action = dsn.Relayed
				rep.Transcript = append(rep.Transcript, o.rcpt.Addr+"... relayed; expect no further notifications")
			} else {
				rep.Transcript = append(rep.Transcript, o.rcpt.Addr+"... Successfully delivered")
			}
		case k == dsn.Delay:
			q.Action = dsn.Delayed
			q.Status = o.st.Enhanced
			q.Diagnostic = o.res.Reply
			if q.Diagnostic == "" {
				q.Diagnostic = o.res.Diagnostic
			}
		case timedOut && o.temporary():
			q.Action = dsn.Failed
			q.Status = "4.4.7"
		default:
			q.Action = dsn.Failed
			q.Status = o.st.Enhanced
			q.Diagnostic = o.res.Reply
			if q.Diagnostic == "" {
				q.Diagnostic = o.res.Diagnostic
			}
			if q.Diagnostic == "" {
				q.Diagnostic = o.st.Error()
			}
		}
		if q.User == "" {
			q.User = strings.TrimSuffix(strings.TrimPrefix(o.rcpt.Addr, "<"), ">")
		}
		rep.Recipients = append(rep.Recipients, q)
	}
	return &pendingReport{kind: k, report: rep, reason: reason}
}

// notifyOf reads a recipient's NOTIFY setting from its R flags.
func notifyOf(rc *queue.Recipient) dsn.Notify {
	if !rc.HasFlag(queue.RcptHasNotify) {
		return 0
	}
	var n dsn.Notify
	if rc.HasFlag(queue.RcptSuccess) {
		n |= dsn.NotifySuccess
	}
	if rc.HasFlag(queue.RcptFailure) {
		n |= dsn.NotifyFailure
	}
	if rc.HasFlag(queue.RcptDelay) {
		n |= dsn.NotifyDelay
	}
	if n == 0 {
		n = dsn.NotifyNever
	}
	return n
}

// queueReport builds the DSN and queues it as a new job from <> (flag r),
// durably, returning it locked for immediate delivery. dsn.ErrNoReport
// means none is due (null sender, NOTIFY, a failed postmaster notify).
func (r *Runner) queueReport(ctx context.Context, p *pendingReport, orig *queue.Job, warned bool) (*queue.Locked, error) {
	txn, err := r.cfg.Store.Begin()
	if err != nil {
		return nil, err
	}
	p.report.QueueID = txn.ID()
	msg, err := dsn.Build(p.report)
	if err != nil {
		txn.Abort()
		return nil, err
	}
	if _, err := txn.Write(msg.Body); err != nil {
		txn.Abort()
		return nil, err
	}
	addr := msg.Recipient
	if strings.Contains(addr, "@") {
		addr = "<" + addr + ">"
	}
	rcpts := []queue.Recipient{{Flags: "P", Addr: addr}}
	if r.cfg.ExpandReport != nil {
		x, err := r.cfg.ExpandReport(ctx, addr)
		switch {
		case err != nil:
			r.log.Errf(orig.ID, "%s: cannot expand %s: %v", txn.ID(), addr, err)
			if st := status.From(err); st.Temporary() {
				// The alias database unavailable: expanded at the report's
				// own delivery (see ExpandQueued).
				rcpts[0].Flags += string(queue.RcptUnexpanded)
			}
		case len(x) > 0:
			rcpts = x
		}
	}
	now := p.report.Now
	j := &queue.Job{
		Created:    now,
		Priority:   queue.InitialPriority(0, len(rcpts), 0),
		Flags:      "r",
		Macros:     []queue.Macro{{Name: "_", Value: "localhost"}},
		Sender:     "<>",
		Recipients: rcpts,
		Headers: append([]queue.Header{{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"}},
			parseHeaderBlock(msg.Header)...),
	}
	if p.report.EightBit {
		j.SetFlag(queue.Flag8Bit, true)
		j.BodyType = "8BITMIME"
	}
	l, err := txn.CommitLocked(j)
	if err != nil {
		return nil, err
	}
	label := dsn.LogLabel(msg.Kind, orig.HasFlag(queue.FlagResponse), warned)
	r.log.Infof(orig.ID, "%s: %s: %s", l.ID(), label, p.reason)
	return l, nil
}

// parseHeaderBlock turns "Name: value\n\tmore\n" lines into qf headers
// without conditions.
func parseHeaderBlock(b []byte) []queue.Header {
	var hs []queue.Header
	for _, line := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') && len(hs) > 0 {
			hs[len(hs)-1].Value += "\n" + string(line)
			continue
		}
		name, value, ok := strings.Cut(string(line), ":")
		if !ok {
			continue
		}
		hs = append(hs, queue.Header{HasCond: true, Name: name, Value: value})
	}
	return hs
}
