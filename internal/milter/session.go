package milter

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dmilter "github.com/d--j/go-milter"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
)

// Action is what the chain of filters decided at a stage.
type Action int

// Verdicts. A filter's "accept" ends its part for the message (or, at
// connect and HELO, for the connection); the chain goes on with the others.
const (
	ActContinue Action = iota
	ActReject          // Reply holds the answer
	ActTempFail        // Reply holds the answer
	ActDiscard         // accept and drop the message
)

// Verdict is a stage's outcome.
type Verdict struct {
	Action Action
	Reply  *status.Error // for ActReject and ActTempFail
	Filter string        // the filter that decided ("" for continue)
}

// Shutdown reports a 421 answer (F=4, or a filter's 421 reply code):
// sendmail gives it and closes the SMTP connection.
func (v Verdict) Shutdown() bool { return v.Reply != nil && v.Reply.Code == 421 }

// sendmail's replies (srvrsmtp.c, sendmail 8.17).
var (
	replyReject   = status.New(550, "5.7.1", "Command rejected")
	replyTempFail = status.New(451, "4.3.2", "Please try again later")
	replyShutdown = status.New(421, "4.3.0", "closing connection")
)

// Conn describes the SMTP client for the connect stage.
type Conn struct {
	Host string     // PTR name, or "[ip]"; "localhost" for -bs
	Addr netip.Addr // zero for -bs (family unknown)
	Port int
}

// Dialer opens connections to filters (net.Dialer implements it).
type Dialer interface {
	Dial(network, address string) (net.Conn, error)
}

// Chain is the configured filters with the logger; it opens one Session
// per SMTP session. It is safe for concurrent use.
type Chain struct {
	cfg *Config
	log *maillog.Logger
	// Dial connects to a filter; nil uses a net.Dialer with the
	// filter's T=C timeout. Tests replace it.
	Dial func(f Filter) (net.Conn, error)
}

// NewChain returns the chain for cfg (nil cfg: nil chain).
func NewChain(cfg *Config, log *maillog.Logger) *Chain {
	if cfg == nil {
		return nil
	}
	warnLog.Store(log)
	warnOnce.Do(func() {
		// the library's warnings (a filter's odd answers) go to the mail log
		dmilter.LogWarning = func(format string, v ...any) {
			warnLog.Load().Warnf("", "Milter: "+format, v...)
		}
	})
	return &Chain{cfg: cfg, log: log}
}

var (
	warnOnce sync.Once
	warnLog  atomic.Pointer[maillog.Logger]
)

// Filters returns the filters in use.
func (c *Chain) Filters() []Filter { return c.cfg.Filters }

// state of one filter in one session.
type state int

const (
	stReady    state = iota
	stError          // unreachable, timed out or spoke garbage: F= decides
	stAccepted       // accepted the connection: no more events at all
	stMsgDone        // accepted or discarded this message: none until the next MAIL
)

// filterConn is one filter's connection for one SMTP session.
type filterConn struct {
	f     Filter
	s     *dmilter.ClientSession
	conn  *capConn
	state state
	helo  bool // HELO was sent (the protocol needs one before MAIL)
	rcpts int  // recipients sent in this transaction
	ended bool // the last end of message completed
}

// Session is the filters' side of one SMTP session. Its methods are
// called from the session's goroutine, in SMTP order.
type Session struct {
	chain   *Chain
	id      string // queue ID for log lines
	filters []*filterConn
	macros  macroBag
	inTx    bool
}

// macroBag implements dmilter.Macros over a map.
type macroBag map[string]string

func (m macroBag) Get(name string) string { return m[name] }
func (m macroBag) GetEx(name string) (string, bool) {
	v, ok := m[name]
	return v, ok
}

// Open connects to every filter and negotiates with it: one connection
// per filter for the whole SMTP session, as sendmail's milter_init. A
// filter that cannot be reached goes to error state; the verdict then
// follows its F= flag (reject or tempfail every command, or go on
// without it). macros are the session macros known so far ("j", "_",
// "{daemon_name}", ...).
func (c *Chain) Open(id string, macros map[string]string) (*Session, Verdict) {
	s := &Session{chain: c, id: id, macros: macroBag{}}
	for k, v := range macros {
		s.macros[k] = v
	}
	if c.cfg.LogLevel > 10 {
		c.log.Infof(id, "Milter: connect to filters")
	}
	var v Verdict
	for _, f := range c.cfg.Filters {
		fc := &filterConn{f: f}
		s.filters = append(s.filters, fc)
		if err := s.dial(fc); err != nil {
			c.log.Errf(id, "Milter (%s): error connecting to filter: %v", f.Name, err)
			s.toError(fc)
			if v.Action == ActContinue {
				v = errorVerdict(fc)
			}
		}
	}
	switch {
	case v.Action == ActReject:
		s.logf(3, "Milter: initialization failed, rejecting commands")
	case v.Shutdown():
		s.logf(3, "Milter: initialization failed, closing connection")
	case v.Action == ActTempFail:
		s.logf(3, "Milter: initialization failed, temp failing commands")
	}
	return s, v
}

func (s *Session) dial(fc *filterConn) error {
	f := fc.f
	var conn net.Conn
	var err error
	if s.chain.Dial != nil {
		conn, err = s.chain.Dial(f)
	} else {
		conn, err = (&net.Dialer{Timeout: f.Timeouts.Connect}).Dial(f.Network, f.Address)
	}
	if err != nil {
		return err
	}
	fc.conn = &capConn{Conn: conn}
	opts := []dmilter.Option{
		dmilter.WithDialer(fixedDialer{fc.conn}),
		dmilter.WithReadTimeout(f.Timeouts.Read),
		dmilter.WithWriteTimeout(f.Timeouts.Send),
		dmilter.WithActions(dmilter.AllClientSupportedActionMasks),
		dmilter.WithoutDefaultMacros(),
	}
	for i, st := range libStages {
		opts = append(opts, dmilter.WithMacroRequest(st, s.chain.cfg.Macros[i]))
	}
	cs, err := dmilter.NewClient(f.Network, f.Address, opts...).Session(s.macros)
	if err != nil {
		conn.Close()
		return err
	}
	fc.s = cs
	return nil
}

// libStages maps our stages to the library's.
var libStages = [numStages]dmilter.MacroStage{
	StageConnect: dmilter.StageConnect, StageHelo: dmilter.StageHelo, StageEnvFrom: dmilter.StageMail,
	StageEnvRcpt: dmilter.StageRcpt, StageData: dmilter.StageData, StageEOH: dmilter.StageEOH, StageEOM: dmilter.StageEOM,
}

// fixedDialer hands the library the connection already made.
type fixedDialer struct{ c net.Conn }

func (d fixedDialer) Dial(string, string) (net.Conn, error) { return d.c, nil }

// capConn caps every read deadline the library sets at limit, which
// makes T=E an overall bound on the end-of-message exchange while T=R
// still bounds each reply.
type capConn struct {
	net.Conn
	limit time.Time
}

func (c *capConn) SetReadDeadline(t time.Time) error {
	if !c.limit.IsZero() && (t.IsZero() || t.After(c.limit)) {
		t = c.limit
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *capConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

// SetID sets the queue ID used in log lines (it changes at each MAIL).
func (s *Session) SetID(id string) { s.id = id }

// SetMacros defines macros for the following stages ("i", "{mail_addr}", ...).
func (s *Session) SetMacros(kv map[string]string) {
	for k, v := range kv {
		s.macros[k] = v
	}
}

func (s *Session) logf(above int, format string, args ...any) {
	if s.chain.cfg.LogLevel > above {
		s.chain.log.Infof(s.id, format, args...)
	}
}

// toError closes a filter's connection and marks it, as milter_error.
func (s *Session) toError(fc *filterConn) {
	if fc.s != nil {
		_ = fc.conn.Close()
	} else if fc.conn != nil {
		fc.conn.Close()
	}
	fc.s = nil
	fc.state = stError
	if s.chain.cfg.LogLevel > 0 {
		s.chain.log.Infof(s.id, "Milter (%s): to error state", fc.f.Name)
	}
}

// errorVerdict is what a filter in error state makes of each command:
// its F= flag.
func errorVerdict(fc *filterConn) Verdict {
	switch fc.f.OnError {
	case Reject:
		return Verdict{Action: ActReject, Reply: replyReject, Filter: fc.f.Name}
	case TempFail:
		return Verdict{Action: ActTempFail, Reply: replyTempFail, Filter: fc.f.Name}
	case TempDrop:
		return Verdict{Action: ActTempFail, Reply: replyShutdown, Filter: fc.f.Name}
	}
	return Verdict{}
}

// each runs step on every filter that still takes events and folds the
// answers: the first reject, tempfail or discard ends the stage. A filter
// in error state answers by its F= flag. msgLevel says the stage belongs
// to a transaction (an accept ends the filter's part in the message only).
func (s *Session) each(msgLevel bool, step func(fc *filterConn) (*dmilter.Action, error)) Verdict {
	for _, fc := range s.filters {
		switch fc.state {
		case stError:
			if v := errorVerdict(fc); v.Action != ActContinue {
				return v
			}
			continue
		case stAccepted, stMsgDone:
			continue
		}
		act, err := step(fc)
		if err != nil {
			s.chain.log.Errf(s.id, "Milter (%s): %v", fc.f.Name, err)
			s.toError(fc)
			if v := errorVerdict(fc); v.Action != ActContinue {
				return v
			}
			continue
		}
		if v, done := s.fold(fc, act, msgLevel); done {
			return v
		}
	}
	return Verdict{}
}

// fold turns one filter's answer into the chain's; done means the stage
// ends with v.
func (s *Session) fold(fc *filterConn, act *dmilter.Action, msgLevel bool) (v Verdict, done bool) {
	if act == nil {
		return Verdict{}, false
	}
	switch act.Type {
	case dmilter.ActionAccept:
		if msgLevel {
			fc.state = stMsgDone
		} else {
			fc.state = stAccepted
		}
	case dmilter.ActionDiscard:
		return Verdict{Action: ActDiscard, Filter: fc.f.Name}, true
	case dmilter.ActionReject:
		return Verdict{Action: ActReject, Reply: replyReject, Filter: fc.f.Name}, true
	case dmilter.ActionTempFail:
		return Verdict{Action: ActTempFail, Reply: replyTempFail, Filter: fc.f.Name}, true
	case dmilter.ActionRejectWithCode:
		r := parseReply(act.SMTPReply, int(act.SMTPCode))
		a := ActReject
		if r.Code/100 == 4 {
			a = ActTempFail
		}
		return Verdict{Action: a, Reply: r, Filter: fc.f.Name}, true
	}
	return Verdict{}, false
}

// parseReply splits a filter's SMFIR_REPLYCODE text ("550 5.7.1 text",
// or several lines "550-5.7.1 one\r\n550 5.7.1 two" from smfi_setmlreply)
// into a status error: the first line's codes, each line's text, so that
// the client gets the lines as the filter wrote them, as from sendmail.
func parseReply(text string, code int) *status.Error {
	var lines []string
	enh := ""
	for i, line := range strings.Split(strings.TrimRight(strings.ReplaceAll(text, "\r\n", "\n"), "\n"), "\n") {
		if len(line) >= 4 {
			if n, err := strconv.Atoi(line[:3]); err == nil && n >= 400 && n <= 599 && (line[3] == ' ' || line[3] == '-') {
				if i == 0 {
					code = n
				}
				line = line[4:]
			}
		}
		if e, rest, ok := strings.Cut(line, " "); ok && isEnhanced(e) {
			if i == 0 {
				enh = e
			}
			line = rest
		}
		lines = append(lines, line)
	}
	if enh == "" {
		enh = fmt.Sprintf("%d.0.0", code/100)
	}
	r := status.New(code, enh, "%s", lines[0])
	if len(lines) > 1 {
		r.More = lines[1:]
	}
	return r
}

func isEnhanced(s string) bool {
	p := strings.Split(s, ".")
	if len(p) != 3 {
		return false
	}
	for _, x := range p {
		if _, err := strconv.Atoi(x); err != nil {
			return false
		}
	}
	return true
}

// Connect sends the client's address (SMFIC_CONNECT).
func (s *Session) Connect(c Conn) Verdict {
	v := s.each(false, func(fc *filterConn) (*dmilter.Action, error) {
		fam, addr, port := dmilter.FamilyUnknown, "", uint16(0)
		if c.Addr.IsValid() {
			fam, addr, port = dmilter.FamilyInet, c.Addr.String(), uint16(c.Port)
			if c.Addr.Is6() && !c.Addr.Is4In6() {
				fam = dmilter.FamilyInet6
			}
		}
		return fc.s.Conn(c.Host, fam, port, addr)
	})
	switch v.Action {
	case ActReject:
		s.logf(3, "Milter: connect: host=%s, addr=%s, rejecting commands", c.Host, c.Addr)
	case ActTempFail:
		s.logf(3, "Milter: connect: host=%s, addr=%s, temp failing commands", c.Host, c.Addr)
	case ActDiscard:
		v = Verdict{} // sendmail ignores a discard at connect
	}
	return v
}

// Helo sends the HELO/EHLO argument.
func (s *Session) Helo(name string) Verdict {
	v := s.each(false, func(fc *filterConn) (*dmilter.Action, error) {
		fc.helo = true
		return fc.s.Helo(name)
	})
	if v.Action == ActDiscard {
		v = Verdict{}
	}
	s.logVerdict("helo", name, v)
	return v
}

// Mail starts a transaction: SMFIC_MAIL with the sender (without angle
// brackets; "" for <>) and its ESMTP arguments.
func (s *Session) Mail(from string, args []string) Verdict {
	s.Abort() // a transaction that was not ended
	s.inTx = true
	for _, fc := range s.filters {
		fc.rcpts = 0
		if fc.state == stMsgDone {
			fc.state = stReady
		}
	}
	v := s.each(true, func(fc *filterConn) (*dmilter.Action, error) {
		if !fc.helo { // a client that sent MAIL without HELO
			fc.helo = true
			if _, err := fc.s.Helo(""); err != nil {
				return nil, err
			}
		}
		return fc.s.Mail(from, strings.Join(args, "\x00"))
	})
	s.logVerdict("from", "<"+from+">", v)
	return v
}

// Rcpt sends one recipient. A reject or tempfail refuses that recipient
// alone; a discard drops the whole message.
func (s *Session) Rcpt(rcpt string, args []string) Verdict {
	v := s.each(true, func(fc *filterConn) (*dmilter.Action, error) {
		act, err := fc.s.Rcpt(rcpt, strings.Join(args, "\x00"))
		if err == nil && act != nil && !act.StopProcessing() && act.Type != dmilter.ActionDiscard {
			fc.rcpts++
		}
		return act, err
	})
	s.logVerdict("to", "<"+rcpt+">", v)
	return v
}

// Data sends SMFIC_DATA (the DATA command, before the 354).
func (s *Session) Data() Verdict {
	v := s.each(true, func(fc *filterConn) (*dmilter.Action, error) {
		if fc.rcpts == 0 {
			return nil, nil // the filter took no recipient: it gets no message
		}
		return fc.s.DataStart()
	})
	s.logVerdict("data", "", v)
	return v
}

// Unknown sends an unrecognized command.
func (s *Session) Unknown(line string) Verdict {
	v := s.each(s.inTx, func(fc *filterConn) (*dmilter.Action, error) {
		return fc.s.Unknown(line, nil)
	})
	if v.Action == ActDiscard {
		v = Verdict{}
	}
	return v
}

// Abort ends a transaction that did not reach end of message (RSET,
// a new MAIL, QUIT, a rejected DATA). It is a no-op outside one.
func (s *Session) Abort() {
	if !s.inTx {
		return
	}
	s.inTx = false
	for _, fc := range s.filters {
		if fc.s == nil || fc.state == stAccepted {
			continue
		}
		if err := fc.s.Abort(nil); err != nil {
			s.chain.log.Errf(s.id, "Milter (%s): abort: %v", fc.f.Name, err)
			s.toError(fc)
		}
		if fc.state == stMsgDone {
			fc.state = stReady
		}
	}
}

// Close sends SMFIC_QUIT to every filter and closes the connections.
func (s *Session) Close() {
	s.Abort()
	for _, fc := range s.filters {
		if fc.s != nil {
			_ = fc.s.Close()
			fc.s = nil
		}
	}
}

// logVerdict writes srvrsmtp.c's MILTER_REPLY lines.
func (s *Session) logVerdict(stage, arg string, v Verdict) {
	what := stage
	if arg != "" {
		what = stage + "=" + arg
	}
	switch v.Action {
	case ActReject, ActTempFail:
		s.logf(3, "Milter: %s, reject=%s", what, v.Reply.Error())
	case ActDiscard:
		s.logf(3, "Milter: %s, discard", what)
	}
}
