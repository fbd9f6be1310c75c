package submit

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/status"
)

// Transfer is one message for the local MTA.
type Transfer struct {
	From     string             // envelope sender without brackets; "" for <>
	Rcpts    []accept.Recipient // Addr qualified and without brackets; Notify; ORcpt ("rfc822;a@b", not xtext-encoded)
	EnvID    string             // ENVID, not xtext-encoded
	Ret      string             // "HDRS", "FULL" or ""
	BodyType string             // "8BITMIME", "7BIT" or ""
	Text     []byte             // the message, LF line ends
}

// Outcome is what the MTA made of a Transfer.
type Outcome struct {
	ID string // the MTA's queue ID; "" when it took no recipient
	// Refused has one entry per Transfer recipient: nil when the MTA took
	// it, else its refusal (a *status.Error with the MTA's reply).
	Refused []error
}

// Transfer runs one SMTP transaction with the MTA. An error means the
// message was not accepted at all (MTA unreachable, sender or data
// refused); refused recipients alone are in the Outcome.
func (h *Handoff) Transfer(t *Transfer) (*Outcome, error) {
	timeout := h.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	conn, err := net.DialTimeout("tcp", h.Addr, 30*time.Second)
	if err != nil {
		return nil, status.Wrap(err, 451, "4.4.1", "Deferred: Connection refused by %s", h.Addr)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = timeout, timeout
	if err := c.Hello(h.Hostname); err != nil {
		return nil, smtpStatus(err)
	}
	opts := &smtp.MailOptions{EnvelopeID: t.EnvID}
	switch strings.ToUpper(t.Ret) {
	case "HDRS":
		opts.Return = smtp.DSNReturnHeaders
	case "FULL":
		opts.Return = smtp.DSNReturnFull
	}
	if strings.EqualFold(t.BodyType, "8BITMIME") {
		opts.Body = smtp.Body8BitMIME
	}
	if err := c.Mail(t.From, opts); err != nil {
		return nil, smtpStatus(err)
	}
	out := &Outcome{Refused: make([]error, len(t.Rcpts))}
	accepted := 0
	for i, r := range t.Rcpts {
		if err := c.Rcpt(r.Addr, rcptOptions(r)); err != nil {
			out.Refused[i] = smtpStatus(err)
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return out, nil
	}
	w, err := c.Data()
	if err != nil {
		return nil, smtpStatus(err)
	}
	if _, err := w.Write(t.Text); err != nil {
		return nil, smtpStatus(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return nil, smtpStatus(err)
	}
	_ = c.Quit()
	// "2.0.0 <ID> Message accepted for delivery"
	out.ID = "accepted"
	if f := strings.Fields(resp.StatusText); len(f) >= 2 {
		out.ID = f[1]
	}
	return out, nil
}

func rcptOptions(r accept.Recipient) *smtp.RcptOptions {
	o := &smtp.RcptOptions{}
	for _, n := range strings.Split(strings.ToUpper(r.Notify), ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.Notify = append(o.Notify, smtp.DSNNotify(n))
		}
	}
	if typ, v, ok := strings.Cut(r.ORcpt, ";"); ok && strings.EqualFold(typ, "rfc822") && v != "" {
		o.OriginalRecipientType, o.OriginalRecipient = smtp.DSNAddressTypeRFC822, v
	}
	return o
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

// unxtext decodes an xtext value (RFC 3461: "+2B" is "+"), as ENVID and
// ORCPT arrive over SMTP; go-smtp encodes them again on the way out.
// Malformed escapes are kept as written.
func unxtext(s string) string {
	if strings.IndexByte(s, '+') < 0 {
		return s
	}
	var b bytes.Buffer
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(c))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
