package smtpd

import (
	"errors"

	"github.com/posthorn/posthorn/internal/status"
)

// Milters are the mail filters (sendmail's X lines) a listener uses. The
// server calls them at each stage of the dialogue, before it answers;
// end of message belongs to the Backend, which gets the session in
// Envelope.Milter, because sendmail runs the filters over the received
// message before it writes the queue files.
type Milters interface {
	// Open connects the filters for a new session (the connect stage).
	// A *status.Error refuses the session: a 5xx makes every command but
	// HELO, NOOP, RSET and QUIT get it, a 4xx likewise.
	Open(c *Client, id string) (MilterSession, error)
}

// MilterSession is the filters' side of one SMTP session. Each stage
// returns nil to go on, a *status.Error to refuse the command with that
// reply, or ErrDiscard to accept the message and drop it.
type MilterSession interface {
	Helo(c *Client) error
	Mail(env *Envelope, args []string) error
	Rcpt(env *Envelope, rcpt *Recipient, args []string) error
	Data(env *Envelope) error
	Unknown(c *Client, line string) error
	// Abort ends a transaction that will not reach end of message.
	Abort()
	// Close ends the session (QUIT or the connection's end).
	Close()
}

// ErrDiscard is a filter's discard: the transaction goes on, and the
// message is accepted and dropped.
var ErrDiscard = errors.New("smtpd: the filters discard the message")

// The hooks below are the only places the dialogue calls the filters.

// milterOpen connects the filters; a refusal makes the session a
// "nullserver" with the filters' answer, and a 5xx one is greeted with
// 554, as sendmail's milter_init and milter_connect failures are. A 421
// (F=4) is greeted with sendmail's "421 4.7.0 host closing connection"
// and ends the session.
func (s *session) milterOpen() (refused bool) {
	if s.cfg.Milters == nil {
		return false
	}
	ms, err := s.cfg.Milters.Open(s.c, s.id)
	s.milter = ms
	if err == nil {
		return false
	}
	e := status.From(err)
	switch {
	case e.Code == 421:
		s.reply(421, "4.7.0", "%s closing connection", s.cfg.Hostname)
		s.closing = true
		return true
	case e.Code/100 == 5:
		s.nullserver = e.Error()
		s.reply(554, "", "%s ESMTP not accepting messages", s.cfg.Hostname)
		return true
	}
	s.nullserver = e.Error()
	return false
}

// milterStage runs one stage; true means the command was answered.
func (s *session) milterStage(call func(MilterSession) error) bool {
	if s.milter == nil {
		return false
	}
	err := call(s.milter)
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrDiscard):
		s.txDiscard = true
		return false
	}
	s.replyErr(err)
	s.closeOn421(err)
	return true
}

// closeOn421 ends the session after a filter's 421 (its reply code, or
// F=4), as sendmail's MILTER_REPLY does ("goto doquit").
func (s *session) closeOn421(err error) {
	if e := status.From(err); e != nil && e.Code == 421 {
		s.closing = true
	}
}

func (s *session) milterAbort() {
	if s.milter != nil {
		s.milter.Abort()
	}
}

func (s *session) milterClose() {
	if s.milter != nil {
		s.milter.Close()
		s.milter = nil
	}
}

// paramArgs gives ESMTP parameters as the client wrote them.
func paramArgs(params []param) []string {
	var out []string
	for _, p := range params {
		if p.has {
			out = append(out, p.key+"="+p.value)
		} else {
			out = append(out, p.key)
		}
	}
	return out
}
