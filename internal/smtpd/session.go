package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/status"
)

// maxLine is sendmail's command line limit, line end included.
const maxLine = 2048

// errTooLong reports a command line over maxLine.
var errTooLong = errors.New("command line too long")

// session is one SMTP dialogue. It runs on one goroutine.
type session struct {
	ctx  context.Context
	srv  *Server
	cfg  *Config
	c    *Client
	conn net.Conn // nil for -bs
	rdl  readDeadliner
	r    io.Reader
	w    io.Writer
	br   *inbuf
	out  []byte // replies not yet written

	start     time.Time // when the session began (real clock, for MaxSessionTime)
	id        string    // session queue ID for log lines outside a transaction
	env       *Envelope
	seen      map[string]int // canonical recipient -> index in env.Rcpts
	badRcpts  int
	rcptsFull bool // MaxRecipients reached (logged) in this transaction
	discard   bool // Connect: DISCARD: accept every message and drop it
	txDiscard bool // From:/To: DISCARD for this transaction
	curLine   string
	lastCmd   string // for the lost-input log line
	tlsState  *tls.ConnectionState
	milter    MilterSession // nil without filters

	nullserver string // after a protocol violation: reply to most commands
	verbose    bool
	issued     bool // MAIL, EXPN, VRFY or ETRN was used (else a log line at the end)
	closing    bool
	tooLong    int // length of the over-long line, for the log
	counts     [numTarpits]int
	logged     [numTarpits]bool
	badCmds    int
	nCommands  int
	// the client's open sessions and recent connections (Config.Clients)
	clientOpen, clientRate int
}

func newSession(ctx context.Context, srv *Server, c *Client, r io.Reader, w io.Writer, conn net.Conn) *session {
	s := &session{ctx: ctx, srv: srv, cfg: &srv.cfg, c: c, conn: conn, r: r, w: w, start: time.Now()}
	if d, ok := r.(readDeadliner); ok {
		s.rdl = d
	}
	s.br = newInbuf(r)
	s.id = s.cfg.Backend.NewID()
	return s
}

// serve runs the dialogue until the session ends.
func (s *session) serve() error {
	defer s.milterClose()
	defer s.endTransaction()
	if err := s.greet(); err != nil {
		return err
	}
	for !s.closing {
		if s.br.Buffered() == 0 {
			if err := s.flush(); err != nil {
				return err
			}
			s.br.idle() // waiting for the client: hold no input buffer
		}
		timeout, ok := s.commandTimeout()
		if !ok {
			return s.flush()
		}
		line, err := s.readLine(timeout)
		if isTimeout(err) && s.sessionOver() {
			s.sessionLimit()
			return s.flush()
		}
		if errors.Is(err, errTooLong) {
			s.log().Noticef(s.id, "%s: SMTP violation, input too long: %d", s.c.Relay(), s.tooLong)
			s.reply(421, "4.7.0", "%s Command too long, possible attack %s", s.cfg.Hostname, s.c.Relay())
			s.notIssued()
			return s.flush()
		}
		if err != nil {
			s.lostInput(err)
			return nil
		}
		s.nCommands++
		s.handle(line)
	}
	s.notIssued()
	return s.flush()
}

// commandTimeout is how long the next command may take to arrive:
// Timeout.command, or less when MaxSessionTime ends the session sooner.
// It is false, after the 421, when a session limit is reached.
func (s *session) commandTimeout() (time.Duration, bool) {
	if s.sessionOver() {
		s.sessionLimit()
		return 0, false
	}
	d := s.cfg.Timeouts.Command
	if max := s.cfg.MaxSessionTime; max > 0 {
		d = min(d, max-time.Since(s.start))
	}
	return d, true
}

func (s *session) sessionOver() bool {
	if max := s.cfg.MaxSessionCommands; max > 0 && s.nCommands >= max {
		return true
	}
	return s.cfg.MaxSessionTime > 0 && time.Since(s.start) >= s.cfg.MaxSessionTime
}

// sessionLimit ends a session that reached MaxSessionCommands or
// MaxSessionTime.
func (s *session) sessionLimit() {
	if max := s.cfg.MaxSessionCommands; max > 0 && s.nCommands >= max {
		s.log().Noticef(s.id, "%s: session limit reached: MaxSessionCommands=%d", s.c.Relay(), max)
		s.reply(421, "4.7.0", "%s Too many commands; closing connection", s.cfg.Hostname)
	} else {
		s.log().Noticef(s.id, "%s: session limit reached: MaxSessionTime=%s", s.c.Relay(), s.cfg.MaxSessionTime)
		s.reply(421, "4.7.0", "%s Session too long; closing connection", s.cfg.Hostname)
	}
	s.notIssued()
	s.closing = true
}

// greet sends the 220 banner, after GreetPause when one is configured.
func (s *session) greet() error {
	if s.cfg.GreetPause > 0 && s.rdl != nil {
		_ = s.rdl.SetReadDeadline(time.Now().Add(s.cfg.GreetPause))
		_, err := s.br.Peek(1)
		_ = s.rdl.SetReadDeadline(time.Time{})
		if err == nil {
			s.protocolViolation()
			s.reply(554, "", "%s ESMTP not accepting messages", s.cfg.Hostname)
			return s.flush()
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return nil // the client left
		}
	}
	if s.clientOpen > 0 {
		if e := s.cfg.Policy.Access.CheckClient(s.c.Addr, s.clientOpen, s.clientRate); e != nil {
			s.log().Noticef(s.id, "ruleset=check_relay, arg1=%s, arg2=%s, relay=%s, reject=%s", s.c.Name, s.c.Addr, s.c.Relay(), e.Error())
			s.reply(e.Code, e.Enhanced, "%s", e.Text)
			s.notIssued()
			s.closing = true
			return s.flush()
		}
	}
	d := s.policyClient()
	switch dec := s.cfg.Policy.ConnectDecision(d); dec.Action {
	case policy.Reject, policy.Error:
		e := dec.Err
		if e == nil {
			e = status.New(550, "5.7.1", "Access denied")
		}
		s.log().Noticef(s.id, "ruleset=check_relay, arg1=%s, arg2=%s, relay=%s, reject=%s", s.c.Name, s.c.Addr, s.c.Relay(), e.Error())
		if e == policy.ErrMapTempFail {
			// the access map could not answer (a directory that is
			// down): the client is told to come back, not refused
			s.reply(421, e.Enhanced, "%s %s", s.cfg.Hostname, e.Text)
			s.closing = true
			return s.flush()
		}
		// as after a greet_pause violation: no greeting, and every
		// command but QUIT, NOOP, RSET, HELO/EHLO gets the rejection
		s.nullserver = e.Error()
		s.reply(554, "", "%s ESMTP not accepting messages", s.cfg.Hostname)
		return s.flush()
	case policy.Discard:
		s.discard = true
	}
	if s.milterOpen() {
		return s.flush()
	}
	g := strings.ReplaceAll(s.cfg.Greeting, "$b", rfc822Date(s.cfg.Now()))
	lines := strings.Split(g, "\n")
	s.replyLines(220, "", lines)
	return s.flush()
}

// readLine reads one command line, without its CRLF or LF.
func (s *session) readLine(timeout time.Duration) (string, error) {
	s.setReadDeadline(timeout)
	b, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		s.tooLong = len(b)
		// count the rest of the line for the log, without keeping it
		for errors.Is(err, bufio.ErrBufferFull) && s.tooLong < 1<<20 {
			b, err = s.br.ReadSlice('\n')
			s.tooLong += len(b)
		}
		return "", errTooLong
	}
	if err != nil {
		return "", err
	}
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return string(b), nil
}

// readDeadliner is a reader with deadlines: a net.Conn, or the pipe
// behind -bs when it supports them.
type readDeadliner interface{ SetReadDeadline(time.Time) error }

func (s *session) setReadDeadline(d time.Duration) {
	if s.rdl != nil && s.br.Buffered() == 0 {
		_ = s.rdl.SetReadDeadline(time.Now().Add(d))
	}
}

// lostInput logs why a session ended without QUIT.
func (s *session) lostInput(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		s.log().Noticef(s.id, "timeout waiting for input from %s during server cmd read", s.c.Relay())
		s.reply(421, "4.4.1", "%s Lost input channel from %s", s.cfg.Hostname, s.c.Relay())
		_ = s.flush()
	case s.nCommands > 0 && s.lastCmd != "":
		s.log().Infof(s.id, "lost input channel from %s to %s after %s", s.c.Relay(), s.cfg.DaemonName, strings.ToLower(s.lastCmd))
	}
	s.notIssued()
}

func (s *session) notIssued() {
	if !s.issued && !s.c.Local() {
		s.issued = true
		s.log().Infof(s.id, "%s did not issue MAIL/EXPN/VRFY/ETRN during connection to %s", s.c.Relay(), s.cfg.DaemonName)
	}
}

// reply queues a one-line reply.
func (s *session) reply(code int, enh, format string, args ...any) {
	s.out = append(s.out, formatLine(code, enh, fmt.Sprintf(format, args...), false)...)
}

// replyLines queues a multi-line reply with the same code on each line.
func (s *session) replyLines(code int, enh string, lines []string) {
	for i, l := range lines {
		s.out = append(s.out, formatLine(code, enh, l, i < len(lines)-1)...)
	}
}

// replyErr queues the reply an error carries.
func (s *session) replyErr(err error) {
	e := status.From(err)
	if !errors.As(err, new(*status.Error)) {
		s.log().Errf(s.id, "SYSERR: %v", err)
		e = status.New(451, "4.3.0", "Temporary system failure. Please try again later.")
	}
	if len(e.More) > 0 {
		s.replyLines(e.Code, e.Enhanced, append([]string{e.Text}, e.More...))
		return
	}
	s.reply(e.Code, e.Enhanced, "%s", e.Text)
}

func formatLine(code int, enh, text string, more bool) []byte {
	b := make([]byte, 0, len(text)+16)
	b = strconv.AppendInt(b, int64(code), 10)
	if more {
		b = append(b, '-')
	} else {
		b = append(b, ' ')
	}
	if enh != "" {
		b = append(b, enh...)
		b = append(b, ' ')
	}
	for i := 0; i < len(text); i++ {
		// A CR, LF or NUL in the text (echoed from a client, or from a
		// filter's or the access file's message) would end or cut the
		// reply line where the client does not expect it.
		if c := text[i]; c == '\r' || c == '\n' || c == 0 {
			b = append(b, '?')
		} else {
			b = append(b, c)
		}
	}
	return append(b, '\r', '\n')
}

// flush writes the queued replies.
func (s *session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	if s.conn != nil {
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.cfg.Timeouts.Write))
	}
	_, err := s.w.Write(s.out)
	s.out = nil // flush precedes waiting for the client: keep no buffer idle
	if err != nil {
		s.closing = true
	}
	return err
}

// protocolViolation puts the session in sendmail's "nullserver" state.
func (s *session) protocolViolation() {
	s.nullserver = "550 5.0.0 Command rejected"
}

func (s *session) log() *maillog.Logger { return s.cfg.Log }

func (s *session) sleep(d time.Duration) {
	if d > 0 {
		_ = s.flush()
		s.cfg.Sleep(s.ctx, d)
	}
}

// policyClient is the client as package policy sees it.
func (s *session) policyClient() policy.Client {
	return policy.Client{
		Addr:          s.c.Addr,
		Name:          s.c.Name,
		Forged:        s.c.Forged,
		NoPTR:         s.c.NoPTR,
		Authenticated: s.c.AuthUser != "",
		Local:         s.c.Local(),
	}
}

// rfc822Date formats t as sendmail's $b: "Wed, 25 Nov 2026 04:25:50 GMT",
// with a numeric zone ("-0500") when the local offset is not zero.
func rfc822Date(t time.Time) string {
	if _, off := t.Zone(); off == 0 {
		return t.Format("Mon, 2 Jan 2006 15:04:05") + " GMT"
	}
	return t.Format("Mon, 2 Jan 2006 15:04:05 -0700")
}
