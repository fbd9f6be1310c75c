package submit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// Handoff is local submission for a user who may not write the queue, as
// sendmail's MSP does it: the message goes to the local MTA over SMTP
// (from 127.0.0.1, which may relay), and sendmail exits 0 only after the
// MTA's 250, which it gives once the message is durable. Recipients the MTA
// refuses are reported in its words. When the MTA cannot be reached the
// message is not lost: the caller saves Result.Raw to dead.letter and exits
// 75, so cron and MUAs report a temporary failure.
type Handoff struct {
	Addr     string // the MTA, host:port
	Hostname string // $j
	Version  string // for the Received header
	Trusted  func(user string) bool
	// HostNames are this host's own names, made $j in header addresses
	// (header.HostNames); nil: localhost and $j.
	HostNames func(domain string) bool
	// OldStyleHeaders: "To: a b" names two recipients.
	OldStyleHeaders bool
	Date            func(time.Time) string
	Now             func() time.Time
	Timeout         time.Duration // whole transaction; 0 = 5 minutes
	// IDs makes the MSP's own queue IDs (Received, Message-Id); nil: one
	// generator for this process.
	IDs *queue.IDGen
	// Log receives sendmail's "POSSIBLE ATTACK" notices; nil discards.
	Log *maillog.Logger
}

// submitter is the part of Submitter that both paths share: the envelope,
// the -t recipients and the header rewriting.
func (h *Handoff) submitter() *Submitter {
	return &Submitter{Hostname: h.Hostname, Version: h.Version + "/Submit", Date: h.Date, Trusted: h.Trusted, HostNames: h.HostNames,
		OldStyleHeaders: h.OldStyleHeaders, Log: h.Log}
}

// newID is a queue ID of the MSP's own, as sendmail's MSP has one for the
// message before it relays it.
func (h *Handoff) newID() string {
	if h.IDs == nil {
		h.IDs = queue.NewIDGen(os.Getpid(), h.now)
	}
	return h.IDs.Next()
}

func (h *Handoff) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// Submit reads the message from in and hands it to the MTA.
func (h *Handoff) Submit(req *Request, in io.Reader, errw io.Writer) (*Result, error) {
	raw, err := readMessage(in, req.IgnoreDots, io.Discard)
	if err != nil {
		return nil, err
	}
	headers, body := accept.ParseMessage(raw, true)
	sub := h.submitter()
	rcpts := req.Recipients
	if req.ReadHeaders {
		rcpts = sub.headerRecipients(headers, req.Recipients, errw)
		if len(rcpts) == 0 {
			fmt.Fprintln(errw, "No recipient addresses found in header")
			return &Result{Exit: sysexits.OK}, nil
		}
	}
	env := sub.envelope(req)
	t := &Transfer{From: strings.Trim(env.Sender, "<>"), EnvID: env.EnvID, Ret: req.Ret, BodyType: req.BodyType,
		Text: h.compose(req, env, headers, body, rcpts)}
	for _, r := range rcpts {
		t.Rcpts = append(t.Rcpts, accept.Recipient{Addr: rcptAddress(r, h.Hostname), Notify: strings.ToUpper(req.Notify)})
	}

	res := &Result{Exit: sysexits.OK, Raw: raw}
	out, err := h.Transfer(t)
	if err != nil {
		se := status.From(err)
		fmt.Fprintf(errw, "%s... %s\n", strings.Join(rcpts, ", "), se.Text)
		res.Exit = se.Exit()
		return res, nil
	}
	for i, e := range out.Refused {
		if e == nil {
			res.Accepted = append(res.Accepted, rcpts[i])
			continue
		}
		se := status.From(e)
		fmt.Fprintln(errw, se.Text)
		res.Bad = append(res.Bad, se.Text)
		if code := se.Exit(); res.Exit == sysexits.OK || code == sysexits.NoUser {
			res.Exit = code
		}
	}
	res.ID = out.ID
	if out.ID != "" {
		res.Raw = nil
	}
	return res, nil
}

// compose is the text the MTA receives: our trace header (the same as
// root's, with "/Submit" and the MSP's own ID, "for" only for exactly one
// recipient given as an argument), then what sendmail's MSP adds to a
// message that lacks it (Date, From with the user's full name, Message-Id,
// and in a resent message Resent-Date, Resent-From, Resent-Message-Id),
// sendmail's warning for an untrusted -f, and the message's own fields as
// the MSP relays them (addresses qualified, Bcc: removed).
func (h *Handoff) compose(req *Request, env *accept.Envelope, headers []queue.Header, body []byte, rcpts []string) []byte {
	var b bytes.Buffer
	user, _ := header.Clean(req.User.Name)
	now, id := h.now(), h.newID()
	if req.ReadHeaders { // sendmail's $u is not yet set when -t reads the header
		rcpts = nil
	}
	fmt.Fprintf(&b, "Received: %s\n", h.submitter().Received(user, id, rcpts, now))
	h.writeHeaders(&b, env, headers, now, id)
	return finish(&b, body)
}

// writeHeaders writes what both kinds of hand-off add and the message's
// own fields, rewritten; id is the MSP's queue ID, for Message-Id.
func (h *Handoff) writeHeaders(b *bytes.Buffer, env *accept.Envelope, headers []queue.Header, now time.Time, id string) {
	for _, d := range accept.DefaultHeaders(headers, accept.Defaults{Date: h.Date(now), FromAddr: env.FromAddr, FullName: env.FullName,
		MessageID: accept.MessageID(now, id, h.Hostname)}) {
		fmt.Fprintf(b, "%s:%s\n", d.Name, d.Value)
	}
	for _, x := range env.Extra {
		fmt.Fprintf(b, "%s:%s\n", x.Name, x.Value)
	}
	for _, hd := range env.EditHeaders(headers) {
		fmt.Fprintf(b, "%s:%s\n", hd.Name, hd.Value)
	}
}

// finish ends the header block and adds the body, which must end in a
// line end.
func finish(b *bytes.Buffer, body []byte) []byte {
	b.WriteByte('\n')
	b.Write(body)
	if n := b.Len(); n > 0 && b.Bytes()[n-1] != '\n' {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// rcptAddress qualifies a local name with $j, as the MSP's rulesets do.
func rcptAddress(r, hostname string) string {
	if strings.Contains(r, "@") || strings.HasPrefix(r, "|") || strings.HasPrefix(r, "/") {
		return r
	}
	return r + "@" + hostname
}
