package mta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// router resolves the final recipients of a qf to mailer triples with
// the one routing function (route.Router) of the current configuration,
// the same answer the relay check and the expander gave at acceptance.
// Aliases were expanded then, so nothing is expanded again here.
type router struct {
	site *atomic.Pointer[Site]
}

// routerOf is a router that always routes with rt (tests).
func routerOf(rt *route.Router) router {
	p := &atomic.Pointer[Site]{}
	p.Store(&Site{Router: rt})
	return router{site: p}
}

func (r router) Route(ctx context.Context, j *queue.Job, rcpt *queue.Recipient) (runner.Route, error) {
	a := rcpt.Addr
	// sendmail writes programs and files in quotes ("|cmd args").
	if len(a) > 2 && a[0] == '"' && a[len(a)-1] == '"' && (a[1] == '|' || a[1] == '/') {
		a = a[1 : len(a)-1]
	}
	switch {
	case strings.HasPrefix(a, "|"):
		return runner.Route{Mailer: route.Prog, User: a}, nil
	case strings.HasPrefix(a, "/"):
		return runner.Route{Mailer: route.File, User: a}, nil
	}
	t, err := r.site.Load().Router.ResolveString(a)
	if err != nil {
		return runner.Route{}, err
	}
	if t.Mailer == route.Error {
		return runner.Route{}, t.Err
	}
	return runner.Route{Mailer: t.Mailer, Host: t.Host, User: t.User}, nil
}

// localMailers are the delivery agents of package deliver, as the runner's
// local, *file* and prog mailers.
type localMailers struct {
	agent *deliver.Agent
	// hs, when HostStatusDirectory is set, gets the local mailer's
	// outcome under the name "local", as sendmail records Debian's
	// mail.local -l (LMTP): informational, never a reason to skip.
	hs *hoststat.Table
}

// message is the delivery in package deliver's terms. Its agents read the
// body at offsets (one message, many mailboxes); the runner hands the df
// as such a reader, and any other reader is read into memory rather than
// delivered as an empty body.
func (m *localMailers) message(d *runner.Delivery) (*deliver.Message, error) {
	msg := &deliver.Message{Header: d.Header, QueueID: d.Job.ID}
	if !d.Null {
		msg.Sender = d.Sender
	}
	type sizedReaderAt interface {
		io.ReaderAt
		Size() int64
	}
	if r, ok := d.Body.(sizedReaderAt); ok {
		msg.Body, msg.BodySize = r, r.Size()
		return msg, nil
	}
	body, err := io.ReadAll(d.Body)
	if err != nil {
		return nil, status.Wrap(err, 451, "4.3.0", "cannot read the data file")
	}
	msg.Body, msg.BodySize = bytes.NewReader(body), int64(len(body))
	return msg, nil
}

// owner says whose privileges a file or program delivery uses: the
// aliases file's products run as DefaultUser, a ~/.forward's as its user
// (restricted to smrsh programs).
func (m *localMailers) owner(rc runner.Rcpt) (deliver.Owner, error) {
	if rc.HasFlag(queue.RcptAlias) {
		return deliver.Owner{}, nil
	}
	ctl, ok := rc.Control()
	if !ok {
		return deliver.Owner{}, status.New(550, "5.7.1", "%s... Cannot mail directly to files or programs", rc.Addr)
	}
	if ctl.User == "" {
		return deliver.Owner{}, nil // controlled by root: DefaultUser
	}
	u, err := deliver.LookupSystemUser(ctl.User)
	if err != nil {
		return deliver.Owner{}, status.Wrap(err, 451, "4.3.0", "%s... controlling user %s unknown", rc.Addr, ctl.User)
	}
	return deliver.Owner{User: u, Restricted: true}, nil
}

func (m *localMailers) Deliver(ctx context.Context, d *runner.Delivery) []runner.Result {
	out := make([]runner.Result, len(d.Rcpts))
	msg, err := m.message(d)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	for i, rc := range d.Rcpts {
		var err error
		res := runner.Result{Relay: "", Delivered: true}
		switch d.Mailer {
		case "local":
			err = m.agent.Mailbox(ctx, rc.User, msg)
			res.Relay, res.DSN = "local", "2.1.5"
		case "*file*", "prog":
			var o deliver.Owner
			if o, err = m.owner(rc); err == nil {
				if d.Mailer == "prog" {
					err = m.agent.Program(ctx, strings.TrimPrefix(rc.User, "|"), o, msg)
				} else {
					err = m.agent.File(ctx, rc.User, o, msg)
				}
			}
		default:
			err = errors.New("mailer " + d.Mailer + " not available")
		}
		if err != nil {
			res.Err, res.Delivered = err, false
		}
		out[i] = res
	}
	if d.Mailer == "local" && m.hs != nil && len(out) > 0 {
		m.hs.Record(localStatus(d.Rcpts[len(out)-1].User, out[len(out)-1].Err))
	}
	return out
}

// localStatus is the host status entry "local" after a delivery to user:
// mail.local's LMTP reply ("250 2.1.5 alice Ok") or the failure's. The
// mailer itself worked (S0), so nothing skips it.
func localStatus(user string, err error) hoststat.Status {
	if err == nil {
		return hoststat.Status{Host: "local", DSN: "2.1.5", Reply: "250 2.1.5 " + user + " Ok"}
	}
	var se *status.Error
	if !errors.As(err, &se) {
		se = status.New(451, "4.3.0", "%s", err.Error())
	}
	return hoststat.Status{Host: "local", DSN: se.Enhanced, Reply: strings.TrimSpace(fmt.Sprintf("%d %s %s", se.Code, se.Enhanced, se.Text))}
}
