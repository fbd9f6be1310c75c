package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/dsn"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// outcome is what happened to one recipient in this attempt.
type outcome struct {
	i      int // index in the job's recipients
	rcpt   *queue.Recipient
	route  Route
	res    Result
	st     *status.Error // nil: delivered
	xdelay time.Duration
}

func (o *outcome) sent() bool      { return o.st == nil }
func (o *outcome) temporary() bool { return o.st != nil && o.st.Temporary() }

// deliver makes one delivery attempt of a locked job and releases it:
// every recipient is routed and handed to its mailer; delivered and
// permanently failed recipients leave the qf, deferred ones stay; reports
// are queued (and delivered) for failures, delays past Timeout.queuewarn,
// jobs past Timeout.queuereturn and NOTIFY=SUCCESS. first marks the
// attempt right after acceptance, which leaves the priority alone.
func (r *Runner) deliver(ctx context.Context, l *queue.Locked, first bool, v io.Writer) Stats {
	return r.deliverJob(ctx, l, first, v, false)
}

// deliverJob is deliver for a run of quarantined jobs (-qQ, quarantined
// true) or of the others.
func (r *Runner) deliverJob(ctx context.Context, l *queue.Locked, first bool, v io.Writer, quarantined bool) Stats {
	var st Stats
	orig := l.Job()
	if (orig.Quarantine != "") != quarantined {
		// Quarantined jobs wait for the admin (sendmail -qQ), as sendmail's.
		l.Unlock()
		st.Skipped++
		return st
	}
	j := *orig
	j.Recipients = append([]queue.Recipient(nil), orig.Recipients...)
	now := r.now()
	if !first {
		j.Priority = queue.RunPriority(j.Priority)
	}
	dec := r.cfg.Schedule.Decide(queue.AttemptOf(&j), now)

	// The df is read only while the job is held: Remove and Unlock below
	// close it (waiting for reads in progress) before its file can become
	// another job's, so everything the reports need is read before.
	df, err := l.OpenData()
	if err != nil {
		// sendmail's readqf: a qf without its df can never be delivered.
		r.lose(l, "missing data file")
		st.Lost++
		return st
	}

	var tr bytes.Buffer // the transcript: for DSNs and for -v
	out := io.Writer(&tr)
	if v != nil {
		out = io.MultiWriter(&tr, v)
	}

	if v == nil {
		v = io.Discard
	}
	held := r.expandQueued(ctx, &j)
	outs := r.attempt(ctx, &j, df, now, held, &tr, out, v)

	var deferred, failed, receipts []*outcome
	lastDefer := ""
	for i := range outs {
		o := &outs[i]
		switch {
		case o.sent():
			st.Sent++
			if (o.res.Delivered || o.res.Relayed) && o.rcpt.HasFlag(queue.RcptSuccess) {
				receipts = append(receipts, o)
			}
		case o.temporary():
			deferred = append(deferred, o)
			lastDefer = deferredText(o.st)
		default:
			failed = append(failed, o)
		}
	}

	// Reports are built now, queued before the qf drops anyone.
	var reports []*pendingReport
	warned := j.HasFlag(queue.FlagWarned)
	switch {
	case dec.GiveUp && len(deferred) > 0:
		reason := dsn.TimeoutReason(r.cfg.Schedule.QueueReturn)
		fmt.Fprintln(v, reason)
		timedOut := append(failed, deferred...)
		lines := append(transcriptLines(tr.Bytes()), dsn.TimeoutLines(r.cfg.Schedule.QueueReturn)...)
		reports = append(reports, r.report(&j, df, dsn.Failure, orderLike(outs, timedOut), lines, reason, now, true, first))
		failed, deferred = timedOut, nil
		lastDefer = ""
	case len(failed) > 0:
		reason := statText(failed[len(failed)-1].st)
		reports = append(reports, r.report(&j, df, dsn.Failure, failed, transcriptLines(tr.Bytes()), reason, now, false, first))
	}
	if !dec.GiveUp && dec.Warn && len(deferred) > 0 && !warned {
		reason := dsn.WarningReason(r.cfg.Schedule.QueueWarn)
		fmt.Fprintln(v, reason)
		lines := append(transcriptLines(tr.Bytes()), dsn.WarningLines(r.cfg.Schedule.QueueWarn, r.cfg.Schedule.QueueReturn)...)
		p := r.report(&j, df, dsn.Delay, deferred, lines, reason, now, false, first)
		p.onQueued = func() { j.SetFlag(queue.FlagWarned, true); lastDefer = reason }
		reports = append(reports, p)
	}
	if len(receipts) > 0 {
		reports = append(reports, r.report(&j, df, dsn.Receipt, receipts, transcriptLines(tr.Bytes()), "Return receipt", now, false, first))
	}
	st.Deferred = len(deferred)
	st.Bounced = len(failed)

	var locked []*queue.Locked
	for _, p := range reports {
		dl, err := r.queueReport(ctx, p, &j, warned)
		switch {
		case err == nil:
			st.DSNs++
			locked = append(locked, dl)
			if p.onQueued != nil {
				p.onQueued()
			}
		case errors.Is(err, dsn.ErrNoReport):
			if p.onQueued != nil {
				p.onQueued()
			}
		default:
			r.log.Errf(j.ID, "cannot queue DSN: %v", err)
			if p.kind == dsn.Failure {
				// Keep the failed recipients rather than lose the report.
				deferred = append(deferred, failed...)
			}
		}
	}

	// What stays in the qf: the deferred recipients, in queue order.
	keep := make([]queue.Recipient, 0, len(deferred))
	for _, o := range orderLike(outs, deferred) {
		keep = append(keep, *o.rcpt)
	}
	idx := r.index()
	if len(keep) == 0 {
		if err := l.Remove(); err != nil {
			r.log.Errf(j.ID, "cannot remove queue files: %v", err)
		}
		if idx != nil {
			idx.Delete(l.Dir(), j.ID)
		}
	} else {
		j.Recipients = keep
		j.LastTry = now
		j.Attempts++
		if lastDefer != "" {
			j.Message = lastDefer
		}
		if err := l.Rewrite(&j); err != nil {
			r.log.Errf(j.ID, "cannot rewrite queue file: %v", err)
		} else if idx != nil {
			idx.Put(queue.EntryOf(l.Dir(), &j))
		}
		l.Unlock()
	}

	// Reports are delivered at once, like sendmail's queue runner does.
	for _, dl := range locked {
		st.add(r.deliver(ctx, dl, true, v))
	}
	return st
}

// attempt routes every recipient and calls the mailers, one call per
// mailer and host: the local class first, then the remote one, each in
// the order the recipients first name them (so the local recipients of a
// job are not kept waiting by its remote ones).
//
// out receives the transcript (kept for DSNs, and shown with -v), tr the
// lines for the DSNs alone, v the lines shown only with -v.
func (r *Runner) attempt(ctx context.Context, j *queue.Job, df *queue.Data, now time.Time, held map[int]*status.Error, tr, out, v io.Writer) []outcome {
	outs := make([]outcome, len(j.Recipients))
	type group struct {
		mailer, host string
		idx          []int
	}
	var groups []*group
	byKey := map[[2]string]*group{}
	for i := range j.Recipients {
		o := &outs[i]
		o.i, o.rcpt = i, &j.Recipients[i]
		if st := held[i]; st != nil {
			o.st = st
			r.logResults(j, []*outcome{o}, now)
			r.verbose(out, v, o)
			continue
		}
		route, err := r.cfg.Router.Route(ctx, j, o.rcpt)
		if err != nil {
			o.st = status.From(err)
			r.logResults(j, []*outcome{o}, now)
			r.verbose(out, v, o)
			continue
		}
		o.route = route
		key := [2]string{route.Mailer, route.Host}
		g := byKey[key]
		if g == nil {
			g = &group{mailer: route.Mailer, host: route.Host}
			groups = append(groups, g)
			byKey[key] = g
		}
		g.idx = append(g.idx, i)
	}
	sort.SliceStable(groups, func(a, b int) bool {
		return r.classOf(groups[a].mailer) == classLocal && r.classOf(groups[b].mailer) != classLocal
	})
	m := r.newMacros(j)
	for _, g := range groups {
		mailer := r.cfg.Mailers[g.mailer]
		start := r.now()
		var res []Result
		var down error
		if mailer != nil && r.cfg.HostDown != nil && g.host != "" && r.classOf(g.mailer) == classRemote {
			down = r.cfg.HostDown(ctx, g.mailer, g.host)
		}
		switch {
		case mailer == nil:
			down = status.New(451, "4.3.0", "Mailer %s not available", g.mailer)
			fallthrough
		case down != nil:
			for range g.idx {
				res = append(res, Result{Err: down})
			}
		default:
			d := &Delivery{Job: j, Sender: m.sender, Null: dsn.IsNull(j.Sender), Mailer: g.mailer, Host: g.host,
				Transcript: out, Verbose: v, TranscriptOnly: tr}
			for _, i := range g.idx {
				d.Rcpts = append(d.Rcpts, Rcpt{Route: outs[i].route, Recipient: outs[i].rcpt})
			}
			m.host, m.user = g.host, outs[g.idx[0]].route.User
			d.Header = renderHeader(nil, j, r.flag[g.mailer], m)
			d.Body = df.Reader()
			res = callMailer(ctx, mailer, d)
		}
		xdelay := r.now().Sub(start)
		done := make([]*outcome, 0, len(g.idx))
		for k, i := range g.idx {
			o := &outs[i]
			o.xdelay = xdelay
			if k < len(res) {
				o.res = res[k]
				o.st = status.From(res[k].Err)
			} else {
				o.st = status.New(451, "4.3.0", "mailer %s gave no result", g.mailer)
			}
			r.verbose(out, v, o)
			done = append(done, o)
		}
		r.logResults(j, done, now)
	}
	return outs
}

// expandQueued expands the recipients that acceptance queued unexpanded
// (queue.RcptUnexpanded: their alias database was unavailable) with
// Config.ExpandQueued, in place in j: each is replaced by what it expands
// to, which this attempt delivers. One that still cannot be expanded stays
// as it is and is held: the returned map gives its index in j.Recipients
// and its (temporary) status, so that it is deferred without being routed.
// A permanent failure of the expansion is the recipient's failure.
//
// What a recipient expands to that the job already delivers to (another
// of its recipients, or a member of another expanded list) is dropped, as
// acceptance drops duplicates and sendmail's recipient() finds them in
// its send queue: compared by route (sendmail's sameaddr), so that the
// member "alice" of a list and the recipient <alice@$j> are one.
func (r *Runner) expandQueued(ctx context.Context, j *queue.Job) map[int]*status.Error {
	if r.cfg.ExpandQueued == nil || !hasUnexpanded(j) {
		return nil
	}
	seen := map[string]bool{}
	for i := range j.Recipients {
		if rc := &j.Recipients[i]; !rc.HasFlag(queue.RcptUnexpanded) {
			seen[r.destinationKey(ctx, j, rc)] = true
		}
	}
	var held map[int]*status.Error
	var out []queue.Recipient
	for _, rc := range j.Recipients {
		if !rc.HasFlag(queue.RcptUnexpanded) {
			out = append(out, rc)
			continue
		}
		x, err := r.cfg.ExpandQueued(ctx, rc)
		if err == nil && len(x) > 0 {
			for i := range x {
				if k := r.destinationKey(ctx, j, &x[i]); !seen[k] {
					seen[k] = true
					out = append(out, x[i])
				}
			}
			continue
		}
		if err == nil {
			err = status.New(451, "4.3.0", "%s... Deferred: nothing to deliver to", rc.Addr)
		}
		if held == nil {
			held = map[int]*status.Error{}
		}
		held[len(out)] = status.From(err)
		out = append(out, rc)
	}
	j.Recipients = out
	return held
}

func hasUnexpanded(j *queue.Job) bool {
	for i := range j.Recipients {
		if j.Recipients[i].HasFlag(queue.RcptUnexpanded) {
			return true
		}
	}
	return false
}

// destinationKey is what makes two qf recipients one delivery (sendmail's
// sameaddr): the mailer, host and user they route to (a local user in any
// case), with the controlling user of a file or program; a recipient
// that does not route is its address.
func (r *Runner) destinationKey(ctx context.Context, j *queue.Job, rc *queue.Recipient) string {
	route, err := r.cfg.Router.Route(ctx, j, rc)
	if err != nil {
		return "addr\x00" + strings.ToLower(rc.Addr) + "\x00" + rc.Ctl
	}
	user := route.User
	if route.Mailer == "local" {
		user = strings.ToLower(user)
	}
	ctl := ""
	if route.Mailer == "prog" || route.Mailer == "*file*" {
		// the user whose privileges run it: "user:uid:gid:alias"
		if f := strings.SplitN(rc.Ctl, ":", 3); len(f) > 1 {
			ctl = f[1]
		} else {
			ctl = rc.Ctl
		}
	}
	return route.Mailer + "\x00" + strings.ToLower(route.Host) + "\x00" + user + "\x00" + ctl
}

// statText is an error's text as logged in stat= and shown by -v, without
// the "<addr>... " that sendmail's own texts start with.
func statText(e *status.Error) string {
	t := e.Text
	if i := strings.Index(t, "... "); i > 0 && !strings.ContainsAny(t[:i], " \t") {
		t = t[i+4:]
	}
	if t == "" {
		t = e.Error()
	}
	return t
}

// deferredText is how a deferral is shown (stat=, mailq, -v): "Deferred:
// <reason>". A text that already says so is kept: sendmail's bare
// "Deferred" (giveresponse for EX_TEMPFAIL without errno or reply, as for
// a host another process holds under SingleThreadDelivery), or an SMTP
// reply's "<rcpt>... Deferred: alias database unavailable".
func deferredText(e *status.Error) string {
	t := statText(e)
	if t == "Deferred" || strings.HasPrefix(t, "Deferred: ") {
		return t
	}
	return "Deferred: " + t
}

// verbose writes the line of one recipient: "<a@b>... Sent" to -v only;
// "<a@b>... Deferred: <reason>" and "550 5.1.1 <a@b>... User unknown" to
// the transcript as well, as sendmail's transcript (xf) file has them.
func (r *Runner) verbose(out, v io.Writer, o *outcome) {
	switch {
	case o.sent():
		if o.res.Stat != "" {
			fmt.Fprintf(v, "%s... Sent (%s)\n", o.rcpt.Addr, o.res.Stat)
		} else {
			fmt.Fprintf(v, "%s... Sent\n", o.rcpt.Addr)
		}
	case o.temporary():
		fmt.Fprintf(out, "%s... %s\n", o.rcpt.Addr, deferredText(o.st))
	default:
		fmt.Fprintf(out, "%d %s%s... %s\n", o.st.Code, enhancedSpace(o.st), o.rcpt.Addr, statText(o.st))
	}
}

func enhancedSpace(e *status.Error) string {
	if e.Enhanced == "" {
		return ""
	}
	return e.Enhanced + " "
}

// logResults writes sendmail's delivery log lines for the outcomes of one
// mailer call: to=, ctladdr=, delay=, xdelay=, mailer=, pri=, relay=, dsn=,
// reply=, stat=. Consecutive recipients with the same result share a line
// ("to=alice,bob"), as sendmail logs one line per delivery, split over
// several lines when the list is long (see toLines).
func (r *Runner) logResults(j *queue.Job, os []*outcome, now time.Time) {
	delay := time.Duration(0)
	if !j.Created.IsZero() {
		delay = now.Sub(j.Created)
	}
	var to []string
	prev := ""
	flush := func() {
		if len(to) > 0 {
			for _, line := range toLines(joinTo(to), prev) {
				r.log.Infof(j.ID, "%s", line)
			}
		}
		to = to[:0]
	}
	for _, o := range os {
		var code, stat, reply string
		switch {
		case o.sent():
			code = o.res.DSN
			if code == "" {
				code = "2.0.0"
			}
			stat = "Sent"
			if o.res.Stat != "" {
				stat = "Sent (" + o.res.Stat + ")"
			}
		case o.temporary():
			code, stat = o.st.Enhanced, deferredText(o.st)
			reply = o.res.Reply
		default:
			code, stat = o.st.Enhanced, statText(o.st)
			reply = o.res.Reply
		}
		rest := maillog.Fields(
			"ctladdr", ctlAddr(o.rcpt),
			"delay", maillog.Delay(delay),
			"xdelay", maillog.Delay(o.xdelay),
			"mailer", o.route.Mailer,
			"pri", strconv.FormatInt(j.Priority, 10),
			"relay", o.res.Relay,
			"dsn", code,
			"reply", reply,
			"stat", shorten(stat, maxShortStr))
		if rest != prev {
			flush()
			prev = rest
		}
		to = append(to, o.rcpt.Addr)
	}
	flush()
}

// ctlAddr is the log's ctladdr= value of a recipient's C line.
func ctlAddr(rc *queue.Recipient) string {
	if c, ok := rc.Control(); ok {
		return c.LogAddr()
	}
	return ""
}

// ctlAlias is the alias a recipient was expanded from (C line, A flag).
func ctlAlias(rc *queue.Recipient) string {
	c, ok := rc.Control()
	if !ok || !rc.HasFlag(queue.RcptAlias) {
		return ""
	}
	return c.Addr
}

// transcriptLines splits a transcript into lines without their ends.
func transcriptLines(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return []string{}
	}
	return strings.Split(s, "\n")
}

// orderLike returns the outcomes of sub in the order they have in all.
func orderLike(all []outcome, sub []*outcome) []*outcome {
	in := make([]bool, len(all))
	for _, o := range sub {
		in[o.i] = true
	}
	out := make([]*outcome, 0, len(sub))
	for i := range all {
		if in[i] {
			out = append(out, &all[i])
		}
	}
	return out
}

// lose renames a job's qf to Qf and drops it from the index.
func (r *Runner) lose(l *queue.Locked, why string) {
	dir, id := l.Dir(), l.ID()
	if err := l.Lose(why); err != nil {
		r.log.Errf(id, "cannot lose queue file: %v", err)
	}
	if idx := r.index(); idx != nil {
		idx.Delete(dir, id)
	}
}

// callMailer calls m, turning a panic into a temporary failure of its
// recipients: a broken mailer must not take the daemon, and the job's
// lock, down with it.
func callMailer(ctx context.Context, m Mailer, d *Delivery) (res []Result) {
	defer func() {
		if p := recover(); p != nil {
			e := status.New(451, "4.3.0", "Internal error in mailer %s: %v", d.Mailer, p)
			res = make([]Result, len(d.Rcpts))
			for i := range res {
				res[i] = Result{Err: e}
			}
		}
	}()
	return m.Deliver(ctx, d)
}
