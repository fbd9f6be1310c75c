package smtpd

import (
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/maillog"
)

// tarpit names a counter of repeated commands that sendmail slows down.
type tarpit int

const (
	noTarpit tarpit = iota
	heloTarpit
	vrfyTarpit
	etrnTarpit
	noopTarpit
	numTarpits
)

// tarpitLimits are sendmail's MAXHELOCOMMANDS, MAXVRFYCOMMANDS,
// MAXETRNCOMMANDS and MAXNOOPCOMMANDS.
var tarpitLimits = [numTarpits]int{0, 3, 6, 8, 20}

// command is one row of the command table.
type command struct {
	name   string
	fn     func(s *session, arg string)
	tarpit tarpit
	label  string // for the "possible SMTP attack" log line
	// served after a protocol violation (sendmail's nullserver state);
	// other commands then get the stored rejection.
	nullOK bool
}

// commandTable is the dialogue: every command the server knows.
var commandTable = [...]command{
	{name: "HELO", fn: (*session).helo, tarpit: heloTarpit, label: "HELO/EHLO", nullOK: true},
	{name: "EHLO", fn: (*session).ehlo, tarpit: heloTarpit, label: "HELO/EHLO", nullOK: true},
	{name: "MAIL", fn: (*session).mail},
	{name: "RCPT", fn: (*session).rcpt},
	{name: "DATA", fn: (*session).data},
	{name: "RSET", fn: (*session).rset, nullOK: true},
	{name: "NOOP", fn: (*session).noop, tarpit: noopTarpit, label: "NOOP", nullOK: true},
	{name: "QUIT", fn: (*session).quit, nullOK: true},
	{name: "HELP", fn: (*session).help},
	{name: "VRFY", fn: (*session).vrfy, tarpit: vrfyTarpit, label: "VRFY"},
	{name: "EXPN", fn: (*session).expn, tarpit: vrfyTarpit, label: "EXPN"},
	{name: "VERB", fn: (*session).verb, tarpit: noopTarpit, label: "VERB"},
	{name: "ETRN", fn: (*session).etrn, tarpit: etrnTarpit, label: "ETRN"},
	{name: "STARTTLS", fn: (*session).starttls},
	{name: "AUTH", fn: (*session).auth},
	{name: "TURN", fn: (*session).notImplemented},
	{name: "SEND", fn: (*session).notImplemented},
	{name: "SOML", fn: (*session).notImplemented},
	{name: "SAML", fn: (*session).notImplemented},
}

// maxBadCommands is sendmail's MAXBADCOMMANDS.
const maxBadCommands = 25

func lookupCommand(word string) *command {
	for i := range commandTable {
		if strings.EqualFold(commandTable[i].name, word) {
			return &commandTable[i]
		}
	}
	return nil
}

// splitCommand separates the command word from its argument at the
// first white space (sendmail: any isspace, so "HELO\tname" is HELO).
func splitCommand(line string) (word, arg string) {
	i := 0
	for i < len(line) && !isSpace(line[i]) {
		i++
	}
	arg = line[i:]
	for len(arg) > 0 && isSpace(arg[0]) {
		arg = arg[1:]
	}
	return line[:i], arg
}

// handle dispatches one command line.
func (s *session) handle(line string) {
	s.curLine = line
	word, arg := splitCommand(line)
	cmd := lookupCommand(word)
	if cmd == nil {
		if s.c.Helo == "" && s.nCommands == 1 && isProxyCommand(line) {
			s.log().Noticef(s.id, "%s: probable open proxy: command=%.40s\\r\\n", s.c.Relay(), line)
			s.reply(421, "4.7.0", "%s Rejecting open proxy %s", s.cfg.Hostname, s.c.Relay())
			s.closing = true
			return
		}
		if s.tooManyBad() {
			return
		}
		if s.milterStage(func(m MilterSession) error { return m.Unknown(s.c, line) }) {
			return
		}
		s.reply(500, "5.5.1", "Command unrecognized: \"%s\"", addr.Shorten(line))
		return
	}
	if s.nullserver != "" && !cmd.nullOK {
		if s.tooManyBad() {
			return
		}
		s.out = append(s.out, s.nullserver...)
		s.out = append(s.out, '\r', '\n')
		return
	}
	if cmd.tarpit != noTarpit {
		s.tarpit(cmd.tarpit, cmd.label)
	}
	s.lastCmd = cmd.name
	cmd.fn(s, arg)
}

func (s *session) tooManyBad() bool {
	s.badCmds++
	if s.badCmds <= maxBadCommands {
		return false
	}
	s.reply(421, "4.7.0", "%s Too many bad commands; closing connection", s.cfg.Hostname)
	s.closing = true
	return true
}

// isProxyCommand recognises an HTTP or similar proxy request.
func isProxyCommand(line string) bool {
	for _, p := range []string{"GET ", "POST ", "CONNECT ", "USER ", "HEAD ", "PUT "} {
		if len(line) >= len(p) && strings.EqualFold(line[:len(p)], p) {
			return true
		}
	}
	return false
}

// tarpit counts a command and delays it once the counter reaches its
// limit: 1 s at the limit, then 2, 4, 8 ... up to 240 s.
func (s *session) tarpit(t tarpit, label string) {
	s.counts[t]++
	n, limit := s.counts[t], tarpitLimits[t]
	if n < limit {
		return
	}
	if !s.logged[t] {
		s.logged[t] = true
		s.log().Infof(s.id, "%s: possible SMTP attack: command=%s, count=%d", s.c.Relay(), label, n)
	}
	d := 240 * time.Second
	if shift := n - limit; shift < 8 {
		d = min(time.Duration(1<<shift)*time.Second, d)
	}
	s.sleep(d)
}

func (s *session) helo(arg string) { s.greeting(arg, false) }
func (s *session) ehlo(arg string) { s.greeting(arg, true) }

func (s *session) greeting(arg string, esmtp bool) {
	name := "HELO"
	if esmtp {
		name = "EHLO"
	}
	if arg == "" {
		typed, _ := splitCommand(s.curLine)
		s.reply(501, "5.0.0", "%s requires domain address", typed)
		return
	}
	arg, ok := heloName(arg)
	if !ok {
		s.reply(501, "5.0.0", "Invalid domain name")
		return
	}
	if s.br.Buffered() > 0 {
		s.log().Infof(s.id, "%s: SMTP protocol error: input before %s reply", s.c.Relay(), name)
		s.protocolViolation()
		s.reply(554, "5.5.0", "SMTP protocol error")
		return
	}
	s.endTransaction()
	s.c.Helo, s.c.ESMTP = arg, esmtp
	if s.milterStage(func(m MilterSession) error { return m.Helo(s.c) }) {
		return
	}
	hello := s.cfg.Hostname + " Hello " + s.c.Relay() + ", pleased to meet you"
	if !esmtp {
		s.reply(250, "", "%s", hello)
		return
	}
	lines := []string{hello, "ENHANCEDSTATUSCODES", "PIPELINING"}
	if s.cfg.Privacy&NoExpn == 0 {
		lines = append(lines, "EXPN")
	}
	if s.cfg.Privacy&NoVerb == 0 {
		lines = append(lines, "VERB")
	}
	lines = append(lines, "8BITMIME")
	if s.cfg.MaxMessageSize > 0 {
		lines = append(lines, "SIZE "+itoa(s.cfg.MaxMessageSize))
	} else {
		lines = append(lines, "SIZE")
	}
	lines = append(lines, "DSN")
	if s.cfg.Privacy&NoEtrn == 0 {
		lines = append(lines, "ETRN")
	}
	if s.authOffered() {
		lines = append(lines, "AUTH LOGIN PLAIN")
	}
	if s.cfg.TLS != nil && !s.c.TLS {
		lines = append(lines, "STARTTLS")
	}
	lines = append(lines, "DELIVERBY", "HELP")
	s.replyLines(250, "", lines)
}

// maxHeloName is sendmail's MAXNAME: a longer HELO argument (trailing
// white space included) is refused, as it would hide the Received line's
// client part.
const maxHeloName = 256

// heloName checks a HELO/EHLO argument as sendmail 8.17's srvrsmtp.c
// does (without AllowBogusHELO) and returns the name: ASCII letters,
// digits and "[].-_#:" only, so "[IPv6:::1]", "[1.2.3.4", "host." and
// "a..b" pass; white space may follow the name but nothing after it;
// anything else (other punctuation, 8-bit bytes, a second word, more
// than 256 bytes) is "501 5.0.0 Invalid domain name". This also keeps
// the Received header well-formed.
func heloName(arg string) (string, bool) {
	if len(arg) > maxHeloName {
		return "", false
	}
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("[].-_#:", c) >= 0:
		case isSpace(c):
			if strings.TrimLeft(arg[i:], " \t\n\v\f\r") != "" {
				return "", false
			}
			return arg[:i], true
		default:
			return "", false
		}
	}
	return arg, true
}

// isSpace is C's isspace in the C locale.
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }

func (s *session) rset(string) {
	s.endTransaction()
	s.reply(250, "2.0.0", "Reset state")
}

func (s *session) noop(string) { s.reply(250, "2.0.0", "OK") }

func (s *session) quit(string) {
	s.endTransaction()
	s.reply(221, "2.0.0", "%s closing connection", s.cfg.Hostname)
	s.closing = true
}

func (s *session) verb(string) {
	if s.cfg.Privacy&NoVerb != 0 {
		s.reply(502, "5.7.0", "Verbose unavailable")
		return
	}
	s.verbose = true
	s.reply(250, "2.0.0", "Verbose mode")
}

func (s *session) notImplemented(string) {
	s.reply(502, "5.5.1", "Command not implemented: \"%s\"", addr.Shorten(s.curLine))
}

func (s *session) vrfy(arg string) { s.verify(arg, false) }
func (s *session) expn(arg string) { s.verify(arg, true) }

// verify answers VRFY and EXPN.
func (s *session) verify(arg string, expand bool) {
	name, need, deny := "VRFY", NeedVrfyHelo, NoVrfy
	if expand {
		name, need, deny = "EXPN", NeedExpnHelo, NoExpn
	}
	if s.cfg.Privacy&need != 0 && s.c.Helo == "" {
		s.reply(503, "5.0.0", "I demand that you introduce yourself first")
		return
	}
	s.issued = true
	s.log().Infof(s.id, "%s: %s %s", s.c.Relay(), name, addr.Shorten(arg))
	if s.cfg.Privacy&deny != 0 {
		if expand {
			s.reply(502, "5.7.0", "Sorry, we do not allow this operation")
		} else {
			s.reply(252, "2.5.2", "Cannot VRFY user; try RCPT to attempt delivery (or try finger)")
		}
		return
	}
	if arg == "" {
		s.reply(501, "5.5.2", "Argument required")
		return
	}
	p, _, err := addr.ParsePath(arg, addr.Sender)
	if err != nil {
		s.replyErr(err)
		return
	}
	if p.Null {
		s.reply(550, "5.1.1", "%s... User unknown", p.Raw)
		return
	}
	res, err := s.cfg.Backend.Verify(s.ctx, s.c, arg, expand)
	if err != nil {
		s.replyErr(err)
		return
	}
	if len(res) == 0 {
		s.reply(550, "5.1.1", "%s... User unknown", arg)
		return
	}
	for i, e := range res {
		code := e.Code
		if code == 0 {
			code = 250
		}
		text := "<" + e.Addr + ">"
		if e.FullName != "" {
			text = e.FullName + " " + text
		}
		s.out = append(s.out, formatLine(code, "2.1.5", text, i < len(res)-1)...)
	}
}

func (s *session) etrn(arg string) {
	if arg == "" {
		s.reply(500, "5.5.2", "Parameter required")
		return
	}
	if s.cfg.Privacy&NoEtrn != 0 {
		s.reply(502, "5.7.0", "Sorry, we do not allow this operation")
		return
	}
	s.issued = true
	s.log().Infof(s.id, "%s: ETRN %s", s.c.Relay(), addr.Shorten(arg))
	if q, ok := strings.CutPrefix(arg, "#"); ok {
		s.reply(459, "4.5.4", "Queue %s unknown", q)
		return
	}
	if err := s.cfg.Backend.ETRN(s.ctx, s.c, arg); err != nil {
		s.replyErr(err)
		return
	}
	s.reply(250, "2.0.0", "Queuing for node %s started", arg)
}

// endTransaction forgets the current transaction, logging it as
// sendmail does for a MAIL that did not end in an accepted message.
func (s *session) endTransaction() {
	if s.env != nil {
		s.logFrom(s.env, 0, "", 0)
		s.milterAbort()
	}
	s.env, s.seen, s.badRcpts, s.rcptsFull = nil, nil, 0, false
	s.txDiscard = false
}

// logFrom writes the "from=" line of a transaction; class is the
// message's precedence class (queue.PrecedenceClass).
func (s *session) logFrom(env *Envelope, size int64, msgid string, class int) {
	from := env.From.Raw
	if from == "" {
		from = "<>"
	}
	body := ""
	if env.Body == "8BITMIME" {
		body = "8BITMIME"
	}
	s.log().Infof(env.ID, "%s", maillog.Fields(
		"from", from, "size", itoa(size), "class", itoa(int64(class)), "nrcpts", itoa(int64(len(env.Rcpts))),
		"msgid", msgid, "bodytype", body, "proto", s.proto(), "daemon", s.cfg.DaemonName, "relay", s.c.Relay()))
}

// proto is $r: SMTP or ESMTP, with S for TLS and A for AUTH.
func (s *session) proto() string {
	p := "SMTP"
	if s.c.ESMTP {
		p = "ESMTP"
	}
	if s.c.TLS {
		p += "S"
	}
	if s.c.AuthUser != "" {
		p += "A"
	}
	return p
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
