package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// Errors a dataReader gives the backend instead of more message.
var (
	errBareLF   = status.New(421, "4.5.0", "Bare linefeed (LF) not allowed")
	errBareCR   = status.New(421, "4.5.0", "Bare carriage return (CR) not allowed")
	errTooBig   = errors.New("message exceeds MaxMessageSize")
	errTooMany  = errors.New("too many hops")
	errDeadline = errors.New("DATA took too long")
)

// dataReader turns the DATA stream into the message: it checks line
// ends, removes dot-stuffing, stops at the lone "." and yields LF line
// ends. It reads straight from the session's buffer without copying.
type dataReader struct {
	s         *session
	pending   []byte
	bol       bool // at the beginning of a line
	crPending bool // the previous piece ended in CR
	inHeader  bool
	done      bool  // saw the final "."
	fatal     error // bare LF/CR or a read error: the session ends
	stop      error // errTooBig/errTooMany: keep reading, store nothing
	size      int64
	hops      int
	msgid     string
	class     int // of the Precedence: header, for the from= line
	deadline  time.Time
}

// Read implements io.Reader for Backend.Enqueue.
func (d *dataReader) Read(p []byte) (int, error) {
	for len(d.pending) == 0 {
		switch {
		case d.fatal != nil:
			return 0, d.fatal
		case d.stop != nil:
			return 0, d.stop
		case d.done:
			return 0, io.EOF
		}
		d.next(true)
	}
	n := copy(p, d.pending)
	d.pending = d.pending[n:]
	return n, nil
}

// drain reads up to the final "." without keeping anything.
func (d *dataReader) drain() {
	for !d.done && d.fatal == nil {
		d.next(false)
	}
	d.pending = nil
}

// next reads one piece of a line and sets pending to its message bytes.
func (d *dataReader) next(keep bool) {
	s := d.s
	if s.br.Buffered() == 0 {
		now := time.Now()
		if now.After(d.deadline) {
			d.fatal = errDeadline
			return
		}
		if s.rdl != nil { // a read will happen: arm the timer
			dl := now.Add(s.cfg.Timeouts.DataBlock)
			if dl.After(d.deadline) {
				dl = d.deadline
			}
			_ = s.rdl.SetReadDeadline(dl)
		}
	}
	line, err := s.br.ReadSlice('\n')
	var out []byte
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		// a line longer than the buffer: pass it on in pieces
		if d.crPending {
			d.fatal = errBareCR
			return
		}
		if i := bytes.IndexByte(line, '\r'); i >= 0 && i < len(line)-1 {
			d.fatal = errBareCR
			return
		}
		if line[len(line)-1] == '\r' {
			d.crPending = true
			line = line[:len(line)-1]
		}
		if d.bol && line[0] == '.' {
			line = line[1:]
		}
		d.bol = false
		out = line
	case err != nil:
		// the connection ended before the final ".": for the backend
		// that is an error, never the io.EOF of a complete message
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.fatal = err
		return
	case d.crPending:
		d.crPending = false
		if len(line) != 1 {
			d.fatal = errBareCR
			return
		}
		d.bol = true
		out = line
	default:
		n := len(line)
		if n < 2 || line[n-2] != '\r' {
			d.fatal = errBareLF
			return
		}
		content := line[:n-2]
		if bytes.IndexByte(content, '\r') >= 0 {
			d.fatal = errBareCR
			return
		}
		if d.bol && len(content) > 0 && content[0] == '.' {
			if len(content) == 1 {
				d.done = true
				return
			}
			content = content[1:]
		}
		if d.bol && d.inHeader {
			d.header(content)
		}
		line[n-2] = '\n' // LF line end, in place
		out = line[len(line)-len(content)-2 : n-1]
		d.bol = true
	}
	d.size += int64(len(out))
	if max := s.cfg.MaxMessageSize; max > 0 && d.size > max && d.stop == nil {
		d.stop = errTooBig
	}
	if keep && d.stop == nil {
		d.pending = out
	}
}

// header notes what the server needs from the header: its end, the
// trace headers (hop count) and the Message-Id for the log.
func (d *dataReader) header(line []byte) {
	switch {
	case len(line) == 0:
		d.inHeader = false
	case hasPrefixFold(line, "received:"):
		d.hops++
		if d.hops > d.s.cfg.MaxHopCount && d.stop == nil {
			d.stop = errTooMany
		}
	case hasPrefixFold(line, "message-id:"):
		d.msgid = strings.TrimSpace(string(line[len("message-id:"):]))
	case hasPrefixFold(line, "precedence:"):
		d.class = queue.PrecedenceClass(string(line[len("precedence:"):]))
	}
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

// receive reads the message after the 354 and answers it.
func (s *session) receive(env *Envelope) {
	now := s.cfg.Now()
	d := &dataReader{s: s, bol: true, inHeader: true, deadline: time.Now().Add(s.cfg.Timeouts.Data)}
	env.Received = s.receivedHeader(env, now)
	if s.verbose {
		env.Transcript = transcript{s}
	}
	var id string
	var err error
	logged := false // the backend's Accepted hook wrote from=
	env.Accepted = func(qid, msgid string) {
		env.ID = qid
		if msgid != "" {
			d.msgid = msgid
		}
		s.logFrom(env, d.size, d.msgid, d.class)
		logged = true
	}
	if s.discard || s.txDiscard {
		_, err = io.Copy(io.Discard, d)
		id = env.ID
	} else {
		id, err = s.cfg.Backend.Enqueue(s.ctx, env, d)
	}
	if !d.done && d.fatal == nil {
		if err == nil && d.stop == nil {
			s.log().Errf(env.ID, "SYSERR: backend accepted the message before its end")
		}
		d.drain()
	}
	env.Accepted = nil
	s.env, s.seen = nil, nil
	size := d.size
	switch {
	case d.fatal != nil:
		s.closing = true
		where := "body"
		if d.inHeader {
			where = "header"
		}
		relay := s.c.Name
		if relay == "" {
			relay = s.c.Relay()
		}
		if errors.Is(d.fatal, errBareLF) || errors.Is(d.fatal, errBareCR) {
			s.log().Noticef(env.ID, "collect: relay=%s, from=%s, info=%s, where=%s, status=tempfail", relay, fromText(env), status.From(d.fatal).Text, where)
			s.replyErr(d.fatal)
		} else {
			s.log().Noticef(env.ID, "collect: relay=%s, from=%s, info=%s", relay, fromText(env), "unexpected close")
			if errors.Is(d.fatal, errDeadline) || isTimeout(d.fatal) {
				s.reply(421, "4.4.1", "%s Lost input channel from %s", s.cfg.Hostname, s.c.Relay())
			}
		}
		s.logFrom(env, size, d.msgid, d.class)
	case errors.Is(d.stop, errTooBig):
		s.logFrom(env, size, d.msgid, d.class)
		s.reply(552, "5.2.3", "Message exceeds maximum fixed size (%d)", s.cfg.MaxMessageSize)
	case errors.Is(d.stop, errTooMany):
		s.logFrom(env, size, d.msgid, d.class)
		via := s.c.Name
		if via == "" {
			via = "localhost"
		}
		s.reply(554, "5.4.6", "Too many hops %d (%d max): from %s via %s, to %s", d.hops, s.cfg.MaxHopCount, fromText(env), via, "<"+env.Rcpts[0].Addr+">")
	case err != nil:
		s.logFrom(env, size, d.msgid, d.class)
		s.replyErr(err)
		s.closeOn421(err)
	case id == "":
		s.logFrom(env, size, d.msgid, d.class)
		s.replyErr(status.New(451, "4.3.0", "Temporary system failure. Please try again later."))
	default:
		env.ID = id
		if !logged {
			s.logFrom(env, size, d.msgid, d.class)
		}
		s.reply(250, "2.0.0", "%s Message accepted for delivery", id)
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func fromText(env *Envelope) string {
	if env.From.Raw == "" || env.From.Addr == "" {
		return "<>"
	}
	return env.From.Raw
}

// receivedHeader builds the value of the Received header as sendmail
// does, folded with "\n\t".
func (s *session) receivedHeader(env *Envelope, now time.Time) string {
	var b strings.Builder
	b.WriteString("from ")
	if s.c.Helo != "" {
		b.WriteString(s.c.Helo + " (" + s.c.Relay() + ")")
	} else {
		b.WriteString(s.c.Relay())
	}
	b.WriteString("\n\t")
	if s.c.AuthUser != "" {
		b.WriteString("(authenticated bits=0)\n\t")
	}
	fmt.Fprintf(&b, "by %s (%s) with %s id %s", s.cfg.Hostname, s.cfg.Version, s.proto(), env.ID)
	if s.tlsState != nil {
		fmt.Fprintf(&b, "\n\t(version=%s cipher=%s verify=NO)",
			tlsVersionName(s.tlsState.Version), tls.CipherSuiteName(s.tlsState.CipherSuite))
	}
	if rcpt, ok := soleRecipient(env); ok {
		fmt.Fprintf(&b, "\n\tfor <%s>; %s", rcpt, rfc822Date(now))
	} else {
		fmt.Fprintf(&b, ";\n\t%s", rfc822Date(now))
	}
	return b.String()
}

// soleRecipient returns the envelope's recipient when it has exactly one.
// Refused RCPTs are not in env.Rcpts, and rcpt keeps one entry per
// canonical form, so "alice@x" and "Alice@X" (one local user) are one
// recipient, shown in its first spelling. Sendmail differs here (see
// testdata/behaviour-notes.txt).
func soleRecipient(env *Envelope) (string, bool) {
	if len(env.Rcpts) != 1 {
		return "", false
	}
	return env.Rcpts[0].Addr, true
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLSv1"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS13:
		return "TLSv1.3"
	}
	return fmt.Sprintf("0x%04x", v)
}

// transcript sends each line written to it as a 050 reply (VERB).
type transcript struct{ s *session }

func (t transcript) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		t.s.out = append(t.s.out, "050 "...)
		t.s.out = append(t.s.out, strings.TrimRight(l, "\r")...)
		t.s.out = append(t.s.out, '\r', '\n')
	}
	if err := t.s.flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}
