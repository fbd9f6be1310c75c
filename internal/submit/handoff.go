package submit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/posthorn/posthorn/internal/accept"
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
	// OldStyleHeaders: "To: a b" names two recipients.
	OldStyleHeaders bool
	Date            func(time.Time) string
	Now             func() time.Time
	Timeout         time.Duration // whole transaction; 0 = 5 minutes
}

// Submit reads the message from in and hands it to the MTA.
func (h *Handoff) Submit(req *Request, in io.Reader, errw io.Writer) (*Result, error) {
	raw, err := readMessage(in, req.IgnoreDots, io.Discard)
	if err != nil {
		return nil, err
	}
	headers, body := accept.ParseMessage(raw, true)
	sub := &Submitter{Hostname: h.Hostname, Trusted: h.Trusted, OldStyleHeaders: h.OldStyleHeaders}
	rcpts := req.Recipients
	if req.ReadHeaders {
		rcpts = sub.headerRecipients(headers, req.Recipients, errw)
		if len(rcpts) == 0 {
			fmt.Fprintln(errw, "No recipient addresses found in header")
			return &Result{Exit: sysexits.OK}, nil
		}
	}
	env := sub.envelope(req)
	text := h.compose(req, env, headers, body)

	res := &Result{Exit: sysexits.OK, Raw: raw}
	id, err := h.send(req, env, rcpts, text, res, errw)
	if err != nil {
		se := status.From(err)
		fmt.Fprintf(errw, "%s... %s\n", strings.Join(rcpts, ", "), se.Text)
		res.Exit = se.Exit()
		return res, nil
	}
	res.ID = id
	if id != "" {
		res.Raw = nil
	}
	return res, nil
}

// compose is the text the MTA receives: our trace header, a From: with
// the user's full name when the message has none, sendmail's warning for
// an untrusted -f, and the message without its Bcc: lines. The MTA adds
// Date: and Message-Id:.
func (h *Handoff) compose(req *Request, env *accept.Envelope, headers []queue.Header, body []byte) []byte {
	var b bytes.Buffer
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	fmt.Fprintf(&b, "Received: (from %s@localhost)\n\tby %s (%s/Submit);\n\t%s\n", req.User.Name, h.Hostname, h.Version, h.Date(now()))
	has := func(name string) bool {
		for _, hd := range headers {
			if strings.EqualFold(hd.Name, name) {
				return true
			}
		}
		return false
	}
	if !has("From") {
		if env.FullName != "" {
			fmt.Fprintf(&b, "From: %s <%s>\n", env.FullName, env.FromAddr)
		} else {
			fmt.Fprintf(&b, "From: %s\n", env.FromAddr)
		}
	}
	for _, x := range env.Extra {
		fmt.Fprintf(&b, "%s:%s\n", x.Name, x.Value)
	}
	for _, hd := range headers {
		if strings.EqualFold(hd.Name, "Bcc") || strings.EqualFold(hd.Name, "Resent-Bcc") {
			continue
		}
		fmt.Fprintf(&b, "%s:%s\n", hd.Name, hd.Value)
	}
	b.WriteByte('\n')
	b.Write(body)
	if n := b.Len(); n > 0 && b.Bytes()[n-1] != '\n' {
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// send runs the SMTP transaction and returns the MTA's queue ID. Refused
// recipients are reported on errw and counted in res; an error means the
// message was not accepted at all.
func (h *Handoff) send(req *Request, env *accept.Envelope, rcpts []string, text []byte, res *Result, errw io.Writer) (string, error) {
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	conn, err := net.DialTimeout("tcp", h.Addr, 30*time.Second)
	if err != nil {
		return "", status.Wrap(err, 451, "4.4.1", "Deferred: Connection refused by %s", h.Addr)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	if err := c.Hello(h.Hostname); err != nil {
		return "", smtpStatus(err)
	}
	opts := &smtp.MailOptions{EnvelopeID: req.EnvID}
	switch strings.ToUpper(req.Ret) {
	case "HDRS":
		opts.Return = smtp.DSNReturnHeaders
	case "FULL":
		opts.Return = smtp.DSNReturnFull
	}
	if strings.EqualFold(req.BodyType, "8BITMIME") {
		opts.Body = smtp.Body8BitMIME
	}
	if err := c.Mail(strings.Trim(env.Sender, "<>"), opts); err != nil {
		return "", smtpStatus(err)
	}
	accepted := 0
	for _, r := range rcpts {
		ropts := &smtp.RcptOptions{}
		for _, n := range strings.Split(strings.ToUpper(req.Notify), ",") {
			if n != "" {
				ropts.Notify = append(ropts.Notify, smtp.DSNNotify(n))
			}
		}
		if err := c.Rcpt(rcptAddress(r, h.Hostname), ropts); err != nil {
			se := smtpStatus(err)
			fmt.Fprintln(errw, se.Text)
			res.Bad = append(res.Bad, se.Text)
			if code := se.Exit(); res.Exit == sysexits.OK || code == sysexits.NoUser {
				res.Exit = code
			}
			continue
		}
		accepted++
		res.Accepted = append(res.Accepted, r)
	}
	if accepted == 0 {
		return "", nil
	}
	w, err := c.Data()
	if err != nil {
		return "", smtpStatus(err)
	}
	if _, err := w.Write(text); err != nil {
		return "", smtpStatus(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", smtpStatus(err)
	}
	c.Quit()
	// "2.0.0 <ID> Message accepted for delivery"
	f := strings.Fields(resp.StatusText)
	if len(f) >= 2 {
		return f[1], nil
	}
	return "accepted", nil
}

// rcptAddress qualifies a local name with $j, as the MSP's rulesets do.
func rcptAddress(r, hostname string) string {
	if strings.Contains(r, "@") || strings.HasPrefix(r, "|") || strings.HasPrefix(r, "/") {
		return r
	}
	return r + "@" + hostname
}

// smtpStatus carries an SMTP error's reply into a status.Error.
func smtpStatus(err error) *status.Error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		enh := ""
		if se.EnhancedCode != smtp.NoEnhancedCode && se.EnhancedCode != (smtp.EnhancedCode{}) {
			enh = fmt.Sprintf("%d.%d.%d", se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2])
		}
		return &status.Error{Code: se.Code, Enhanced: enh, Text: se.Message, Err: err}
	}
	return status.Wrap(err, 451, "4.4.1", "Deferred: %v", err)
}
