package main

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// router resolves the final recipients of a qf to mailer triples. Aliases
// were expanded at acceptance, so nothing is expanded again here.
type router struct {
	names *addr.Names
}

func (rt router) Route(ctx context.Context, j *queue.Job, rcpt *queue.Recipient) (runner.Route, error) {
	a := rcpt.Addr
	// sendmail writes programs and files in quotes ("|cmd args").
	if len(a) > 2 && a[0] == '"' && a[len(a)-1] == '"' && (a[1] == '|' || a[1] == '/') {
		a = a[1 : len(a)-1]
	}
	switch {
	case strings.HasPrefix(a, "error:"):
		return runner.Route{}, errorTarget(a)
	case strings.HasPrefix(a, "|"):
		return runner.Route{Mailer: "prog", User: a}, nil
	case strings.HasPrefix(a, "/"):
		return runner.Route{Mailer: "*file*", User: a}, nil
	}
	a = strings.TrimPrefix(a, "\\")
	p, err := addr.Parse(a)
	if err != nil {
		return runner.Route{}, err
	}
	dest := p.Resolve(rt.names)
	if dest.Local {
		return runner.Route{Mailer: "local", User: dest.User}, nil
	}
	return runner.Route{Mailer: "esmtp", Host: dest.Domain, User: dest.String()}, nil
}

// errorTarget turns "error:5.1.1:550 text" (an aliases error: target or a
// list member that failed at acceptance) into its failure.
func errorTarget(a string) error {
	rest := strings.TrimPrefix(a, "error:")
	enh, rest, _ := strings.Cut(rest, ":")
	codeText, text, _ := strings.Cut(rest, " ")
	code, err := strconv.Atoi(codeText)
	if err != nil || code < 400 || code > 599 {
		code, text = 550, rest
	}
	return status.New(code, enh, "%s", text)
}

// localMailers are the delivery agents of package deliver, as the runner's
// local, *file* and prog mailers.
type localMailers struct {
	agent *deliver.Agent
}

func (m *localMailers) message(d *runner.Delivery) *deliver.Message {
	msg := &deliver.Message{Header: d.Header, QueueID: d.Job.ID}
	if !d.Null {
		msg.Sender = d.Sender
	}
	if sr, ok := d.Body.(*io.SectionReader); ok {
		msg.Body, msg.BodySize = sr, sr.Size()
	}
	return msg
}

// owner says whose privileges a file or program delivery uses: the
// aliases file's products run as DefaultUser, a ~/.forward's as its user
// (restricted to smrsh programs).
func (m *localMailers) owner(rc runner.Rcpt) (deliver.Owner, error) {
	if rc.HasFlag(queue.RcptAlias) {
		return deliver.Owner{}, nil
	}
	if rc.Ctl == "" {
		return deliver.Owner{}, status.New(550, "5.7.1", "%s... Cannot mail directly to files or programs", rc.Addr)
	}
	name, _, _ := strings.Cut(rc.Ctl, ":")
	if name == "" {
		return deliver.Owner{}, nil // controlled by root: DefaultUser
	}
	u, err := deliver.LookupSystemUser(name)
	if err != nil {
		return deliver.Owner{}, status.Wrap(err, 451, "4.3.0", "%s... controlling user %s unknown", rc.Addr, name)
	}
	return deliver.Owner{User: u, Restricted: true}, nil
}

func (m *localMailers) Deliver(ctx context.Context, d *runner.Delivery) []runner.Result {
	msg := m.message(d)
	out := make([]runner.Result, len(d.Rcpts))
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
	return out
}
