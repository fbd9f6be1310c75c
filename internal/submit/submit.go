// Package submit is local submission: what `sendmail [-t] [-i] [-f from]
// [-F name] [rcpt…] < message` does, for MUAs (mailx, mutt), cron and
// scripts, and `sendmail -bs` for users who may not write the queue.
//
// The message is read from standard input. Without -i (-oi) a line holding
// only "." ends it, as in sendmail; a longer line is never cut, wherever
// it falls in the read buffer. Recipients are the arguments, or with -t the
// addresses in To:, Cc:, Bcc: and Apparently-To: (in a resent message only
// Resent-To/Cc/Bcc), minus the arguments, which -t suppresses. Each
// recipient is parsed and expanded (aliases, ~/.forward) before the message
// is queued; a bad one is reported on stderr in sendmail's words
// ("nosuchuser... User unknown") and the exit code says so (67), while the
// good ones are still queued.
//
// Both paths, root's direct one into the queue (Submitter) and a user's
// hand-off to the local MTA over SMTP (Handoff), give the MTA the message
// as sendmail's MSP relays it: the addresses of address fields (From, To,
// Cc, Reply-To, Sender, Resent-*, ...) qualified with $j and this host's
// own names (localhost, [127.0.0.1], $w) made $j, display names and
// comments kept; Bcc: and Resent-Bcc: left out when the message has To:
// or Cc:, else kept empty (package header). Their addresses are still
// recipients with -t.
//
// The envelope sender is the invoking user qualified with $j, or the -f
// address; a user who is not trusted (root, TrustedUser, T lines) and uses
// -f gets sendmail's "X-Authentication-Warning: $j: bob set sender to x
// using -f" header. Missing Date:, From: (with the full name from -F or the
// GECOS field) and Message-Id: are added by package accept, which also
// makes the job durable before Submit returns.
//
// Values from the command line and the password file that become header
// text (-f, -F, the GECOS name) pass through header.Clean first: a CR, LF
// or NUL in them becomes a space and is logged as sendmail logs it
// ("POSSIBLE ATTACK from [UNKNOWN]: newline in string ..."), so they can
// never start a header line of their own; a -F name with specials is
// quoted, as sendmail does.
package submit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// User is the invoking user.
type User struct {
	Name     string // login name
	FullName string // from the GECOS field
	UID      int
}

// Request is one submission, from the command line.
type Request struct {
	User        User
	Sender      string // -f/-r; "" for the invoking user
	FullName    string // -F
	Recipients  []string
	ReadHeaders bool // -t
	IgnoreDots  bool // -i, -oi
	Notify      string
	Ret         string
	EnvID       string
	BodyType    string
}

// Submitter queues local submissions.
type Submitter struct {
	Acceptor *accept.Acceptor
	Expander accept.Expander // validates recipients before queuing
	Hostname string          // $j
	Version  string          // for the Received header: "posthorn 0.1.0"
	Trusted  func(user string) bool
	// HostNames are this host's own names, made $j in header addresses
	// (header.HostNames); nil: localhost and $j.
	HostNames func(domain string) bool
	// Log receives sendmail's "POSSIBLE ATTACK" notices; nil discards.
	Log *maillog.Logger
	// OldStyleHeaders: "To: a b" names two recipients (sendmail.cf option).
	OldStyleHeaders bool
	Date            func(time.Time) string
	// KeepLocked leaves the queued job locked in Result.Locked, for a
	// caller that delivers it at once (interactive delivery, -v).
	KeepLocked bool
}

// Result is the outcome of a submission.
type Result struct {
	ID     string // queue ID, "" when nothing was queued
	Job    *queue.Job
	Locked *queue.Locked // with KeepLocked: the job, still locked
	Size   int64         // message size as sendmail counts it, for the from= log line
	Exit   int           // sysexits code
	// Bad lists the recipients that were refused, with the reason.
	Bad []string
	// Raw is the message as read when no recipient was valid: what the
	// caller saves to dead.letter.
	Raw []byte
	// Accepted are the recipients the MTA took (Handoff), for the log.
	Accepted []string
}

// Submit reads the message from in, queues it, and writes sendmail's
// per-recipient complaints to errw.
func (s *Submitter) Submit(req *Request, in io.Reader, errw io.Writer) (*Result, error) {
	m, err := s.Acceptor.Begin(true)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			m.Abort()
		}
	}()

	raw, err := readMessage(in, req.IgnoreDots, m)
	if err != nil {
		return nil, err
	}

	env := s.envelope(req)
	candidates := req.Recipients
	if req.ReadHeaders {
		candidates = s.headerRecipients(m.Headers(), req.Recipients, errw)
		if len(candidates) == 0 {
			fmt.Fprintln(errw, "No recipient addresses found in header")
			return &Result{Exit: sysexits.OK}, nil
		}
	}
	res := &Result{Exit: sysexits.OK}
	for _, r := range candidates {
		if err := s.check(r); err != nil {
			se := status.From(err)
			fmt.Fprintln(errw, se.Text)
			res.Bad = append(res.Bad, se.Text)
			if se.Code == 553 {
				// sendmail follows a syntax error with "User unknown"
				// for the same address and exits 67.
				fmt.Fprintf(errw, "%s... User unknown\n", r)
				se = status.New(550, "5.1.1", "%s... User unknown", r)
			}
			if code := se.Exit(); res.Exit == sysexits.OK || code == sysexits.NoUser {
				res.Exit = code
			}
			continue
		}
		env.Recipients = append(env.Recipients, accept.Recipient{Addr: r, Notify: strings.ToUpper(req.Notify)})
	}
	if len(env.Recipients) == 0 {
		res.Raw = raw
		return res, nil
	}
	var names []string // for "for": none with -t, as sendmail's $u is not yet set when it reads the header
	if !req.ReadHeaders {
		for _, r := range env.Recipients {
			names = append(names, r.Addr)
		}
	}
	env.Received = s.Received(req.User.Name, m.ID(), names, m.Arrival())
	if s.KeepLocked {
		l, err := m.CommitLocked(env)
		if err != nil {
			return nil, err
		}
		committed = true
		res.ID, res.Job, res.Locked, res.Size = l.ID(), l.Job(), l, m.Size()
		return res, nil
	}
	j, err := m.Commit(env)
	if err != nil {
		return nil, err
	}
	committed = true
	res.ID, res.Job, res.Size = j.ID, j, m.Size()
	return res, nil
}

// check parses one recipient and asks the expander whether it exists.
func (s *Submitter) check(rcpt string) error {
	a, err := addr.Parse(rcpt)
	if err != nil {
		return err
	}
	if a.Null {
		return status.New(553, "5.0.0", "%s... User address required", rcpt)
	}
	if s.Expander == nil {
		return nil
	}
	_, err = s.Expander.Expand(rcpt)
	return err
}

// envelope is the submission's envelope and the header text it adds. Every
// value from the command line or the password file goes through clean.
func (s *Submitter) envelope(req *Request) *accept.Envelope {
	user := s.clean(req.User.Name)
	sender := user + "@" + s.Hostname
	env := &accept.Envelope{
		Macros:   []queue.Macro{{Name: "_", Value: user + "@localhost"}, {Name: "{daemon_flags}", Value: "c u"}},
		Auth:     user + "@" + s.Hostname,
		Local:    true,
		EnvID:    s.clean(req.EnvID),
		Ret:      req.Ret,
		BodyType: req.BodyType,
		// the MSP's rewriting of the message's own fields
		EditHeaders: s.rewriter().Submission,
	}
	fullName := strings.TrimSpace(s.clean(req.FullName))
	if fullName != "" {
		env.FullName = header.QuoteName(fullName)
	} else {
		env.FullName = strings.TrimSpace(s.clean(req.User.FullName))
	}
	if req.Sender != "" {
		given := s.clean(req.Sender)
		a, err := addr.Parse(given)
		if err == nil && !a.Null {
			sender = a.String()
			if a.Domain == "" {
				sender += "@" + s.Hostname
			}
		} else if err == nil && a.Null {
			sender = ""
		}
		if s.Trusted == nil || !s.Trusted(req.User.Name) {
			env.Extra = append(env.Extra, queue.Header{HasCond: true, Name: "X-Authentication-Warning",
				Value: fmt.Sprintf(" %s: %s set sender to %s using -f", s.Hostname, user, given)})
		}
		if fullName == "" {
			env.FullName = "" // the GECOS name belongs to the user, not to the -f address
		}
	}
	env.Sender = "<" + sender + ">"
	env.FromAddr = sender
	return env
}

// clean is header.Clean with sendmail's notice when it changed anything.
func (s *Submitter) clean(v string) string {
	c, changed := header.Clean(v)
	if changed {
		s.Log.Noticef("", "POSSIBLE ATTACK from [UNKNOWN]: newline in string \"%s\"", addr.Shorten(c))
	}
	return c
}

// rewriter is the header address rewriting of this host.
func (s *Submitter) rewriter() *header.Rewriter {
	self := s.HostNames
	if self == nil {
		self = header.HostNames(s.Hostname, "", nil)
	}
	return &header.Rewriter{Hostname: s.Hostname, Self: self}
}

// headerRecipients collects -t recipients, less the suppressed arguments:
// from To, Cc, Bcc and Apparently-To, or in a resent message (one with any
// Resent- field) from Resent-To, Resent-Cc and Resent-Bcc only, as
// sendmail's eatheader does.
func (s *Submitter) headerRecipients(headers []queue.Header, suppressed []string, errw io.Writer) []string {
	resent := header.Resent(headers)
	skip := map[string]bool{}
	for _, r := range suppressed {
		if a, err := addr.Parse(r); err == nil {
			skip[strings.ToLower(a.String())] = true
		}
	}
	p := &addr.ListParser{OldStyle: s.OldStyleHeaders}
	var out []string
	seen := map[string]bool{}
	for _, h := range headers {
		if !header.IsRecipient(h.Name, resent) {
			continue
		}
		list, err := p.Parse(strings.ReplaceAll(h.Value, "\n", " "))
		if err != nil {
			for _, e := range unjoin(err) {
				fmt.Fprintln(errw, status.From(e).Text)
			}
		}
		for _, a := range list {
			key := strings.ToLower(a.String())
			if a.Null || skip[key] || seen[key] {
				continue
			}
			seen[key] = true
			out = append(out, a.String())
		}
	}
	return out
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// readMessage copies the message into m, stopping at a line holding only
// "." (".\n", ".\r\n", or "." / ".\r" at the very end) unless ignoreDots;
// it also keeps a copy for dead.letter in case no recipient is valid. Line
// ends are normalised by package accept.
func readMessage(in io.Reader, ignoreDots bool, m io.Writer) ([]byte, error) {
	return readMessageSize(in, ignoreDots, m, 64<<10)
}

// readMessageSize is readMessage with a line buffer of size bytes. A line
// longer than the buffer arrives in pieces; only the piece that starts a
// line can be the terminating dot, so a long line that happens to end in
// "." at a buffer boundary is data like any other.
func readMessageSize(in io.Reader, ignoreDots bool, m io.Writer, size int) ([]byte, error) {
	var copyBuf bytes.Buffer
	w := io.MultiWriter(m, &copyBuf)
	if ignoreDots {
		if _, err := io.Copy(w, in); err != nil {
			return nil, readError(err)
		}
		return copyBuf.Bytes(), nil
	}
	r := bufio.NewReaderSize(in, size)
	bol := true // the next piece starts a line
	for {
		line, err := r.ReadSlice('\n')
		if bol && isDotLine(line, err) {
			return copyBuf.Bytes(), nil
		}
		if len(line) > 0 {
			if _, werr := w.Write(line); werr != nil {
				return nil, werr
			}
			bol = line[len(line)-1] == '\n'
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return copyBuf.Bytes(), nil
		default:
			return nil, readError(err)
		}
	}
}

// isDotLine reports whether a whole line ends the message: "." with LF or
// CRLF, or with nothing or a lone CR at the end of the input (sendmail's
// collect drops those too).
func isDotLine(line []byte, err error) bool {
	switch string(line) {
	case ".\n", ".\r\n":
		return err == nil
	case ".", ".\r":
		return errors.Is(err, io.EOF)
	}
	return false
}

func readError(err error) error {
	return status.Wrap(err, 451, "4.3.0", "collect: I/O error on standard input")
}

// Received builds the trace header of a local submission:
// "(from alice@localhost)\n\tby $j (posthorn v) id ID\n\tfor rcpt; date",
// with "for" only for exactly one recipient.
func (s *Submitter) Received(user, id string, rcpts []string, t time.Time) string {
	v := fmt.Sprintf("(from %s@localhost)\n\tby %s (%s) id %s", user, s.Hostname, s.Version, id)
	if len(rcpts) == 1 {
		return v + "\n\tfor " + rcpts[0] + "; " + s.Date(t)
	}
	return v + ";\n\t" + s.Date(t)
}
