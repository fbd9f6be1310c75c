package submit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/dsn"
	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// SMTPBackend is "sendmail -bs" for a user who may not write the queue:
// the SMTP dialogue on standard input and output is served as sendmail's
// MSP serves it (06-sendmail-bs-msp.txt), and each message is handed to
// the local MTA through the same Handoff as "sendmail -t".
//
// As in the MSP, RCPT is answered from the address's syntax alone; the
// MTA decides at the end of DATA. When it refuses every recipient, or
// cannot be reached, the DATA reply is its refusal (or 451 4.4.1), so the
// client keeps the message. When it takes some, the reply is 250 with the
// MTA's queue ID, the refusals go to Errors, Exit reports them (67 for an
// unknown user, as the MSP exits), and the sender gets a DSN through the
// MTA, as the MSP sends one (03-dsn-msp-generated-full-message.txt).
//
// A user who is not trusted gets sendmail's "X-Authentication-Warning:
// $j: bob owned process doing -bs". Local queue IDs (IDs) name the
// session's messages in its Received header and log lines, as the MSP's
// own queue IDs do; the 250 reply carries the MTA's.
type SMTPBackend struct {
	Handoff *Handoff     // required
	User    User         // the invoking user
	IDs     *queue.IDGen // required
	Errors  io.Writer    // refusals that came after the 250 (stderr); nil discards

	mu   sync.Mutex
	exit int
}

var _ smtpd.Backend = (*SMTPBackend)(nil)

// NewID returns a local queue ID.
func (b *SMTPBackend) NewID() string { return b.IDs.Next() }

// CheckSender takes any sender smtpd accepted.
func (b *SMTPBackend) CheckSender(ctx context.Context, c *smtpd.Client, from smtpd.Path) error {
	return nil
}

// CheckRecipient takes any address that parses; the MTA decides later.
func (b *SMTPBackend) CheckRecipient(ctx context.Context, c *smtpd.Client, env *smtpd.Envelope, rcpt smtpd.Path, t route.Triple) error {
	return nil
}

// Verify is refused as sendmail's MSP refuses it (PrivacyOptions novrfy).
func (b *SMTPBackend) Verify(ctx context.Context, c *smtpd.Client, arg string, expand bool) ([]smtpd.Expansion, error) {
	return nil, status.New(252, "2.5.2", "Cannot VRFY user; try RCPT to attempt delivery (or try finger)")
}

// ETRN has no queue to run here.
func (b *SMTPBackend) ETRN(ctx context.Context, c *smtpd.Client, arg string) error {
	return status.New(458, "4.0.0", "Unable to queue messages for node %s", arg)
}

// Exit is the process's exit code once the session is over: 0, or the
// sysexits code of the worst refusal that came after a 250.
func (b *SMTPBackend) Exit() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.exit
}

// Enqueue hands the message to the MTA.
func (b *SMTPBackend) Enqueue(ctx context.Context, env *smtpd.Envelope, r io.Reader) (string, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return "", err // the client broke off: nothing is sent
	}
	if env.Received != "" { // the MSP's own trace header comes first
		raw = append([]byte("Received: "+env.Received+"\n"), raw...)
	}
	h := b.Handoff
	from := env.From.Addr
	if from != "" {
		from = rcptAddress(from, h.Hostname)
	}
	headers, body := accept.ParseMessage(raw, false)
	text := h.composeSMTP(b.User, from, headers, body, env.ID)
	t := &Transfer{From: from, EnvID: unxtext(env.EnvID), Ret: env.Ret, BodyType: env.Body, Text: text}
	for _, rc := range env.Rcpts {
		typ, v, _ := strings.Cut(rc.ORcpt, ";")
		orcpt := ""
		if v != "" {
			orcpt = typ + ";" + unxtext(v)
		}
		t.Rcpts = append(t.Rcpts, accept.Recipient{Addr: rcptAddress(rc.Addr, h.Hostname), Notify: rc.Notify, ORcpt: orcpt})
	}
	out, err := h.Transfer(t)
	if err != nil {
		return "", err
	}
	if out.ID == "" {
		for _, e := range out.Refused {
			if e != nil {
				return "", e
			}
		}
		return "", status.New(451, "4.3.0", "Temporary system failure. Please try again later.")
	}
	b.refused(env, t, out, text)
	return out.ID, nil
}

// refused reports the recipients the MTA refused after the message was
// taken: on Errors, in Exit, and to the sender in a DSN.
func (b *SMTPBackend) refused(env *smtpd.Envelope, t *Transfer, out *Outcome, text []byte) {
	h := b.Handoff
	errw := b.Errors
	if errw == nil {
		errw = io.Discard
	}
	var rcpts []dsn.Recipient
	var transcript []string
	for i, e := range out.Refused {
		if e == nil {
			continue
		}
		se := status.From(e)
		rc := env.Rcpts[i]
		fmt.Fprintln(errw, se.Text)
		b.mu.Lock()
		if code := se.Exit(); b.exit == sysexits.OK || code == sysexits.NoUser {
			b.exit = code
		}
		b.mu.Unlock()
		reply := se.Error()
		notify, _ := dsn.ParseNotify(rc.Notify)
		rcpts = append(rcpts, dsn.Recipient{Address: "<" + rc.Addr + ">", ExpandedFrom: "<" + rc.Addr + ">", Notify: notify,
			ORCPT: t.Rcpts[i].ORcpt, FinalRecipient: "RFC822; " + t.Rcpts[i].Addr, User: t.Rcpts[i].Addr,
			Action: dsn.Failed, Status: se.Enhanced, RemoteMTA: "[127.0.0.1]", Diagnostic: reply})
		transcript = append(transcript, "... while talking to "+h.Addr+":", ">>> RCPT TO:<"+t.Rcpts[i].Addr+">", "<<< "+reply,
			fmt.Sprintf("%d %s <%s>... %s", se.Code, se.Enhanced, rc.Addr, strings.TrimPrefix(se.Text, "<"+t.Rcpts[i].Addr+">... ")))
	}
	if len(rcpts) == 0 {
		return
	}
	hdr, body := splitText(text)
	ret := dsn.Full
	if strings.EqualFold(env.Ret, "HDRS") {
		ret = dsn.Headers
	}
	rep := &dsn.Report{Kind: dsn.Failure, Hostname: h.Hostname, Version: h.Version + "/Submit", QueueID: b.NewID(),
		OriginalID: env.ID, Sender: "<" + t.From + ">", Arrival: env.MailTime, ReceivedFrom: b.User.Name + "@localhost",
		EnvID: env.EnvID, Return: ret, EightBit: strings.EqualFold(env.Body, "8BITMIME"),
		Header: append([]byte("Return-Path: <"+t.From+">\n"), hdr...), Body: body,
		Recipients: rcpts, Transcript: transcript, Now: h.now()}
	msg, err := dsn.Build(rep)
	if err != nil {
		return // nobody asked for it (NOTIFY=NEVER, or the sender is <>)
	}
	// The MSP's relay mailer qualifies the report's addresses too.
	dh, _ := accept.ParseMessage(append(msg.Header, '\n'), false)
	var b2 bytes.Buffer
	for _, f := range h.rewriter().Submission(dh) {
		fmt.Fprintf(&b2, "%s:%s\n", f.Name, f.Value)
	}
	report := &Transfer{Rcpts: []accept.Recipient{{Addr: rcptAddress(msg.Recipient, h.Hostname), Notify: "NEVER"}}, Text: finish(&b2, msg.Body)}
	if o, err := h.Transfer(report); err != nil || o.ID == "" {
		fmt.Fprintf(errw, "%s... cannot return the message: %v\n", t.From, err)
	}
}

// splitText splits a composed message at its blank line.
func splitText(text []byte) (hdr, body []byte) {
	if i := bytes.Index(text, []byte("\n\n")); i >= 0 {
		return text[:i+1], text[i+2:]
	}
	return text, nil
}

// composeSMTP is the text the MTA receives for a -bs message: the trace
// header smtpd made, the fields sendmail's MSP adds when the message lacks
// them (Date, From with the user's full name when the sender is the user,
// Message-Id with the session's queue ID id, the Resent- ones), the
// warning for an untrusted user, and the message's own fields as the MSP
// relays them.
func (h *Handoff) composeSMTP(u User, from string, headers []queue.Header, body []byte, id string) []byte {
	var b bytes.Buffer
	if len(headers) > 0 && strings.EqualFold(headers[0].Name, "Received") {
		fmt.Fprintf(&b, "%s:%s\n", headers[0].Name, headers[0].Value)
		headers = headers[1:]
	}
	sub := h.submitter()
	user := sub.clean(u.Name)
	from = sub.clean(from) // an SMTP path has no line end; this keeps it so
	env := &accept.Envelope{FromAddr: from, EditHeaders: sub.rewriter().Submission}
	if strings.EqualFold(from, user+"@"+h.Hostname) {
		env.FullName = strings.TrimSpace(sub.clean(u.FullName))
	}
	if h.Trusted == nil || !h.Trusted(u.Name) {
		env.Extra = append(env.Extra, queue.Header{Name: "X-Authentication-Warning", Value: fmt.Sprintf(" %s: %s owned process doing -bs", h.Hostname, user)})
	}
	if from == "" && !header.Has(headers, "From") {
		env.FromAddr = "MAILER-DAEMON@" + h.Hostname
	}
	h.writeHeaders(&b, env, headers, h.now(), id)
	return finish(&b, body)
}

// rewriter is the header address rewriting of this host.
func (h *Handoff) rewriter() *header.Rewriter { return h.submitter().rewriter() }
