// Package accept turns a message that an entry point has received (SMTP,
// `sendmail -bs`, local submission) into a durable sendmail 8 queue job.
// The entry points translate their protocol; this package decides what the
// qf says, the way sendmail's collect() and queueup() do:
//
//   - The raw message is streamed in (CRLF or LF line ends). Its header block
//     (up to the first empty line, or the first line that is not a header)
//     becomes the qf H lines; the rest, with LF line ends, becomes the df.
//     A leading mbox "From " line of a local submission is dropped.
//
//   - Before the message's own headers come the ones sendmail's
//     configuration defines, each only when it applies:
//
//     H?P?Return-Path: <\x81g>        always (mailers with the P flag show it)
//     H??Received: …                  the entry point's trace header
//     H?D?Resent-Date: <arrival date> a resent message without Resent-Date:
//     H?D?Date: <arrival date>        when the message has no Date:
//     H?F?Resent-From: …              a resent message without Resent-From:
//     H?F?From: <full name> <sender>  when the message has no From:
//     H?x?Full-Name: <full name>      when a full name is known and no Full-Name:
//     H?M?Resent-Message-Id: …        a resent message without one
//     H?M?Message-Id: <YYYYMMDDhhmm.ID@$j>  when the message has no Message-Id:
//     H??X-Authentication-Warning: …  and other headers the entry point adds
//
//     A resent message has a Resent- field (package header). The qf flag
//     b (delete Bcc at delivery) is set when the header has To, Cc or
//     Apparently-To.
//
//   - Every recipient is expanded (aliases, :include:, ~/.forward) through
//     the Expander at this point, as sendmail does at RCPT time, so the qf
//     holds final addresses with their controlling user (C line) and the A
//     flag for alias products; duplicates across the whole envelope are
//     delivered once.
//
//   - The job is committed (df, qf and directory fsynced) before Commit
//     returns: only then may the entry point say 250 or exit 0.
package accept

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// Final is one address an accepted recipient expands to.
type Final struct {
	Addr  string // as the R line holds it: "bob", "<a@remote>", "|prog", "/file"
	Ctl   string // controlling user in the qf C form ("bob:1001:1001:carol"); "" for none
	Alias bool   // produced by the aliases file: the R line's A flag
	// Owner is the envelope sender for this recipient's delivery when an
	// owner- alias governs the list it came from ("" = the message's).
	Owner string
	// Key identifies the destination for duplicate suppression across the
	// whole envelope ("<alice@localhost>" and "alice" are one mailbox);
	// "" compares Addr.
	Key string
}

// Expander expands an accepted recipient (as given, e.g. "<staff@host>" or
// "carol") into its final addresses. An error with SMTP meaning
// (*status.Error) refuses the message for that recipient.
type Expander interface {
	Expand(rcpt string) ([]Final, error)
}

// Recipient is an envelope recipient as the entry point accepted it.
type Recipient struct {
	Addr   string // as given: "<a@b>" from SMTP, "alice" from the command line
	Notify string // DSN NOTIFY: "" (default), "NEVER", or a list of SUCCESS,FAILURE,DELAY
	ORcpt  string // DSN ORCPT, e.g. "rfc822;a@b"
}

// Envelope is everything about the message that is not in its text.
type Envelope struct {
	Sender     string // S line as given: "<a@b>", "<>", or a local user name
	Recipients []Recipient
	EnvID      string // Z
	Ret        string // "HDRS" or "FULL"; "" when RET= was not given
	BodyType   string // "7BIT", "8BITMIME" or ""
	Auth       string // A line: AUTH= parameter (local submissions: user@$j)
	Macros     []queue.Macro
	Received   string // the value of the entry point's Received header, folded with "\n\t"
	FullName   string // $x: the sender's full name when known
	FromAddr   string // $g as it appears in an added From: ("alice@host", or "root")
	// Local marks a local submission: a leading "From " line is dropped.
	Local bool
	// Flags are envelope flags to set besides the ones derived here ('b',
	// delete Bcc, is set when the queued header has To, Cc or
	// Apparently-To, as sendmail's collect does).
	Flags string
	// EditHeaders, when set, gives the message's own header fields as they
	// are queued (local submission: the MSP's address qualification and
	// Bcc removal, package header). It must not change its argument.
	EditHeaders func([]queue.Header) []queue.Header
	// Extra headers go after the configured ones and before the message's
	// own (sendmail's X-Authentication-Warning).
	Extra []queue.Header
	// Quarantine holds the job (qf q line) with this reason: a mail
	// filter quarantined the message.
	Quarantine string
}

// Acceptor writes accepted messages to the queue.
type Acceptor struct {
	Store    *queue.Store
	Hostname string // $j, for Message-Id and unqualified final recipients
	Expander Expander
	// Date formats an RFC 5322 date as sendmail does (GMT for UTC); Now
	// is the clock. Both are required.
	Date func(time.Time) string
	Now  func() time.Time
	// MaxHeaderBytes is sendmail's MaxHeadersLength: a header block
	// longer than this is refused with "552 5.6.0 Headers too large (N
	// max)". 0 means posthorn's own bound of 1 MiB, not none: the header
	// is held in memory until it ends.
	MaxHeaderBytes int
	// MinFreeBlocks is sendmail's option: no message is accepted when
	// queueing it would leave fewer blocks free (see CheckSpace).
	MinFreeBlocks int64
	// Log receives "clone: owner=" lines; nil discards.
	Log *maillog.Logger
}

// Message is a message being received.
type Message struct {
	a       *Acceptor
	txn     *queue.Txn
	arrival time.Time
	local   bool

	inBody   bool
	hdr      []byte // header block collected so far
	pendCR   bool   // body: a CR at the end of the last write
	blank    bool   // the header block ended with an empty line
	bodySize int64
	headers  []queue.Header
	err      error
	clones   []Clone
}

// Clone is a job queued for an owner- list.
type Clone struct {
	Dir, ID string
}

// Begin starts a message and reserves its queue ID (call it at MAIL FROM or
// when a local submission starts).
func (a *Acceptor) Begin(local bool) (*Message, error) {
	if err := a.CheckSpace(0); err != nil {
		return nil, err
	}
	txn, err := a.Store.Begin()
	if err != nil {
		return nil, status.Wrap(err, 451, "4.3.0", "Temporary failure: cannot create queue file")
	}
	return &Message{a: a, txn: txn, arrival: a.Now(), local: local}, nil
}

// BeginID is Begin with a queue ID the entry point already gave out
// (Store.NewID at SMTP MAIL).
func (a *Acceptor) BeginID(id string, local bool) (*Message, error) {
	if err := a.CheckSpace(0); err != nil {
		return nil, err
	}
	txn, err := a.Store.BeginID(id)
	if err != nil {
		return nil, status.Wrap(err, 451, "4.3.0", "Temporary failure: cannot create queue file")
	}
	return &Message{a: a, txn: txn, arrival: a.Now(), local: local}, nil
}

// CheckSpace refuses a message of size bytes (0 when not known yet) when
// queueing it would leave fewer than MinFreeBlocks blocks free on the
// queue's file system, as sendmail's enoughdiskspace does: "452 4.4.5
// Insufficient disk space; try again later", logged as sendmail's "low on
// space" alert. Begin checks with 0; the SMTP server checks SIZE= at MAIL.
func (a *Acceptor) CheckSpace(size int64) error {
	if size <= 0 && a.MinFreeBlocks <= 0 {
		return nil
	}
	sp, err := a.Store.FreeSpace()
	if err == nil && sp.Fits(size, a.MinFreeBlocks) {
		return nil
	}
	if err != nil {
		a.Log.Errf("", "low on space: %v", err)
	} else {
		a.Log.Errf("", "low on space (SMTP-DAEMON needs %d bytes + %d blocks in %s), max avail: %d", max(size, 0), a.MinFreeBlocks, sp.Dir, sp.Avail)
	}
	return status.Wrap(err, 452, "4.4.5", "Insufficient disk space; try again later")
}

// ID is the message's queue ID.
func (m *Message) ID() string { return m.txn.ID() }

// Arrival is the time the message began.
func (m *Message) Arrival() time.Time { return m.arrival }

// Write takes the raw message text.
func (m *Message) Write(p []byte) (int, error) {
	if m.err != nil {
		return 0, m.err
	}
	n := len(p)
	if !m.inBody {
		m.hdr = append(m.hdr, p...)
		rest, size, done := m.splitHeader()
		if max := m.a.maxHeader(); size > max {
			m.a.Log.Noticef(m.ID(), "headers too large (%d max) during message collect", max)
			m.err = status.New(552, "5.6.0", "Headers too large (%d max)", max)
			return 0, m.err
		}
		if !done {
			return n, nil
		}
		p = rest
	}
	if err := m.writeBody(p); err != nil {
		m.err = writeError(err)
		return 0, m.err
	}
	return n, nil
}

// splitHeader looks for the end of the header block in m.hdr. When found it
// parses the headers, switches to the body and returns the body bytes that
// followed. size is the length of the header block, or of all that was
// collected while its end has not come.
func (m *Message) splitHeader() (rest []byte, size int, done bool) {
	h, ok := scanHeader(m.hdr, m.local)
	if !ok {
		return nil, len(m.hdr), false
	}
	if h.end-h.start > m.a.maxHeader() {
		return nil, h.end - h.start, false
	}
	m.blank = h.blank
	rest = m.hdr[h.bodyStart:]
	m.finishHeader(m.hdr[h.start:h.end])
	return rest, h.end - h.start, true
}

func (a *Acceptor) maxHeader() int {
	if a.MaxHeaderBytes > 0 {
		return a.MaxHeaderBytes
	}
	return 1 << 20
}

// headerBlock locates the header block of a message text.
type headerBlock struct {
	start, end int  // the header lines (after a dropped From_ line)
	bodyStart  int  // where the body begins
	blank      bool // an empty line separated header and body
}

// scanHeader finds the header block in buf: it ends at the first empty
// line or at the first line that is neither a header field nor the
// continuation of one. ok is false while that line has not arrived. A local
// submission's leading mbox "From " line is skipped (SaveFromLine off).
func scanHeader(buf []byte, local bool) (h headerBlock, ok bool) {
	off := 0
	for {
		nl := bytes.IndexByte(buf[off:], '\n')
		if nl < 0 {
			return h, false
		}
		line := bytes.TrimSuffix(buf[off:off+nl], []byte("\r"))
		end := off + nl + 1
		switch {
		case len(line) == 0:
			h.end, h.bodyStart, h.blank = off, end, true
			return h, true
		case off == h.start && local && bytes.HasPrefix(line, []byte("From ")):
			h.start = end
		case !isHeaderLine(line) && !(off > h.start && (line[0] == ' ' || line[0] == '\t')):
			h.end, h.bodyStart = off, off
			return h, true
		}
		off = end
	}
}

// ParseMessage splits a complete message text into its header fields and
// body, by the rules acceptance uses (local: drop a leading From_ line).
func ParseMessage(raw []byte, local bool) ([]queue.Header, []byte) {
	h, ok := scanEnd(raw, local)
	if !ok { // all header, no end of it
		return parseHeaders(headerText(raw[h.start:])), nil
	}
	return parseHeaders(headerText(raw[h.start:h.end])), raw[h.bodyStart:]
}

// scanEnd is scanHeader for a whole message: a last line without a line
// end that is not a header field starts the body (it is text, not a
// field to invent).
func scanEnd(buf []byte, local bool) (headerBlock, bool) {
	h, ok := scanHeader(buf, local)
	if ok || len(buf) == 0 || buf[len(buf)-1] == '\n' {
		return h, ok
	}
	h2, ok := scanHeader(append(buf[:len(buf):len(buf)], '\n'), local)
	switch {
	case !ok && h2.start > len(buf): // nothing but a From_ line
		n := len(buf)
		return headerBlock{start: n, end: n, bodyStart: n}, true
	case !ok:
		return h, false
	}
	if h2.bodyStart > len(buf) { // the last line is a lone CR: text, not the empty line
		h2.bodyStart, h2.blank = h2.end, false
	}
	return h2, true
}

func (m *Message) finishHeader(block []byte) {
	m.headers = parseHeaders(headerText(block))
	m.inBody = true
	m.hdr = nil
}

// isHeaderLine reports whether line starts with a field name and a colon
// (white space before the colon is tolerated, as sendmail does).
func isHeaderLine(line []byte) bool {
	i := 0
	for i < len(line) && line[i] > ' ' && line[i] < 127 && line[i] != ':' {
		i++
	}
	if i == 0 {
		return false
	}
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return i < len(line) && line[i] == ':'
}

func parseHeaders(block string) []queue.Header {
	var out []queue.Header
	for _, line := range strings.SplitAfter(block, "\n") {
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && len(out) > 0 {
			out[len(out)-1].Value += "\n" + line
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		out = append(out, queue.Header{HasCond: true, Name: strings.TrimRight(name, " \t"), Value: value})
	}
	return out
}

// writeBody writes body bytes to the df with LF line ends: each CRLF
// becomes LF, a lone CR stays. The runs between CRs go straight to the
// (buffered) data file, so LF-only input is not copied at all.
func (m *Message) writeBody(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	if m.pendCR {
		m.pendCR = false
		if p[0] != '\n' {
			if err := m.emit([]byte{'\r'}); err != nil {
				return err
			}
		}
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\r')
		if i < 0 {
			return m.emit(p)
		}
		if err := m.emit(p[:i]); err != nil {
			return err
		}
		switch {
		case i+1 == len(p):
			m.pendCR = true // decided by the next write, or kept at the end
		case p[i+1] != '\n':
			if err := m.emit([]byte{'\r'}); err != nil {
				return err
			}
		}
		p = p[i+1:]
	}
	return nil
}

// emit appends body bytes to the data file.
func (m *Message) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	m.bodySize += int64(len(b))
	_, err := m.txn.Write(b)
	return err
}

// Headers returns the message's own headers (after the whole header block
// has been written).
func (m *Message) Headers() []queue.Header { return m.headers }

// Hops counts the trace headers (Received, Via, Mail-From) for MaxHopCount.
func (m *Message) Hops() int {
	n := 0
	for _, h := range m.headers {
		switch strings.ToLower(h.Name) {
		case "received", "via", "mail-from":
			n++
		}
	}
	return n
}

// Size is the message size as sendmail counts it: the header lines as
// received, the empty line after them, and the body (LF line ends).
func (m *Message) Size() int64 {
	var n int64
	if m.blank {
		n++
	}
	for _, h := range m.headers {
		n += int64(len(h.Name) + 1 + len(h.Value) + 1)
	}
	return n + m.bodySize
}

// Abort drops the message.
func (m *Message) Abort() { m.txn.Abort() }

// Commit builds the job, expands its recipients and makes it durable. The
// returned job is what was written under the message's queue ID; the jobs
// of owner- lists, if any, are in Clones.
func (m *Message) Commit(env *Envelope) (*queue.Job, error) {
	jobs, err := m.build(env)
	if err != nil {
		m.Abort()
		return nil, err
	}
	if err := m.txn.Commit(jobs[0]); err != nil {
		return nil, writeError(err)
	}
	if err := m.commitClones(jobs[1:]); err != nil {
		return nil, err
	}
	return jobs[0], nil
}

// CommitLocked is Commit for background delivery: the job stays locked for
// the caller, who delivers it right away (and the Clones after it).
func (m *Message) CommitLocked(env *Envelope) (*queue.Locked, error) {
	jobs, err := m.build(env)
	if err != nil {
		m.Abort()
		return nil, err
	}
	l, err := m.txn.CommitLocked(jobs[0])
	if err != nil {
		return nil, writeError(err)
	}
	if err := m.commitClones(jobs[1:]); err != nil {
		l.Unlock()
		return nil, err
	}
	return l, nil
}

// Clones are the jobs committed for owner- lists, each under its own ID.
func (m *Message) Clones() []Clone { return m.clones }

// commitClones queues each owner- list's job with a copy of the data file.
// The message itself is already durable, so a failure here is reported
// (the client retries) without undoing it: at worst the list is delivered
// twice, never lost.
func (m *Message) commitClones(jobs []*queue.Job) error {
	for _, j := range jobs {
		t, err := m.a.Store.Begin()
		if err != nil {
			return status.Wrap(err, 451, "4.3.0", "Temporary failure: cannot create queue file")
		}
		if err := copyFile(t, m.txn.DataPath()); err != nil {
			t.Abort()
			return writeError(err)
		}
		if err := t.Commit(j); err != nil {
			return writeError(err)
		}
		m.clones = append(m.clones, Clone{Dir: t.Dir(), ID: j.ID})
		m.a.Log.Infof(m.ID(), "%s: clone: owner=%s", j.ID, strings.Trim(j.Sender, "<>"))
	}
	return nil
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func (m *Message) build(env *Envelope) ([]*queue.Job, error) {
	if m.err != nil {
		return nil, m.err
	}
	if !m.inBody { // the text ended in the header block
		if h, ok := scanEnd(m.hdr, m.local); ok { // on a last line that is text
			rest := m.hdr[h.bodyStart:]
			m.finishHeader(m.hdr[h.start:h.end])
			if err := m.writeBody(rest); err != nil {
				return nil, writeError(err)
			}
		} else { // all header and no blank line
			m.finishHeader(m.hdr)
		}
	}
	if m.pendCR { // a lone CR at the very end is data, not half a CRLF
		m.pendCR = false
		if err := m.emit([]byte{'\r'}); err != nil {
			return nil, writeError(err)
		}
	}
	groups, err := m.a.expandQueueing(env.Recipients, true)
	if err != nil {
		return nil, err
	}
	if len(groups) == 0 {
		return nil, status.New(554, "5.5.1", "No valid recipients")
	}
	own := m.headers
	if env.EditHeaders != nil {
		own = env.EditHeaders(own)
	}
	headers := m.jobHeaders(env, own)
	jobs := make([]*queue.Job, 0, len(groups))
	for _, g := range groups {
		j := m.newJob(env, headers, g.rcpts)
		j.SetFlag(queue.FlagDelBcc, j.HasFlag(queue.FlagDelBcc) || header.DeleteBcc(own))
		if g.owner != "" {
			j.Sender = "<" + m.a.qualify(g.owner) + ">"
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// newJob is the qf of the message for one set of recipients.
func (m *Message) newJob(env *Envelope, headers []queue.Header, rcpts []queue.Recipient) *queue.Job {
	j := &queue.Job{
		Version:    queue.Version,
		Created:    m.arrival,
		BodyType:   env.BodyType,
		Macros:     env.Macros,
		Sender:     env.Sender,
		EnvID:      env.EnvID,
		Auth:       env.Auth,
		Recipients: rcpts,
		Headers:    headers,
		Quarantine: env.Quarantine,
	}
	for _, f := range env.Flags {
		j.SetFlag(byte(f), true)
	}
	if env.BodyType == "8BITMIME" {
		j.SetFlag(queue.Flag8Bit, true)
	}
	switch strings.ToUpper(env.Ret) {
	case "HDRS":
		j.SetFlag(queue.FlagRetParam, true)
		j.SetFlag(queue.FlagRetHdrs, true)
	case "FULL":
		j.SetFlag(queue.FlagRetParam, true)
	}
	j.SetFlag(queue.FlagSplit, true)
	j.Priority = queue.InitialPriority(m.Size(), len(rcpts), precedenceClass(m.headers))
	return j
}

// jobHeaders puts sendmail's configured headers before the message's own
// (own: the message's fields as they are queued).
func (m *Message) jobHeaders(env *Envelope, own []queue.Header) []queue.Header {
	hs := []queue.Header{{Cond: "P", HasCond: true, Name: "Return-Path", Value: " <\x81g>"}}
	if env.Received != "" {
		hs = append(hs, queue.Header{HasCond: true, Name: "Received", Value: " " + env.Received})
	}
	fullName := env.FullName
	if fullName == "" {
		fullName = phraseOf(m.headers)
	}
	hs = append(hs, DefaultHeaders(own, Defaults{
		Date:      m.a.Date(m.arrival),
		FromAddr:  env.FromAddr,
		FullName:  fullName,
		MessageID: MessageID(m.arrival, m.ID(), m.a.Hostname),
		FullField: true,
	})...)
	hs = append(hs, env.Extra...)
	return append(hs, own...)
}

// Defaults are the values of the fields sendmail.cf's H lines add.
type Defaults struct {
	Date      string // the arrival date, as written in Date:
	FromAddr  string // the sender address for From:
	FullName  string // the sender's full name; "" for none
	MessageID string // "<...>" (MessageID)
	// FullField adds Full-Name: (H?x?: the qf keeps it for mailers with
	// F=x); the MSP's relay mailer has no x, so its hand-off leaves it out.
	FullField bool
}

// DefaultHeaders are the fields sendmail's configuration adds to a message
// (own: its fields) that lacks them, in sendmail.cf's order; the MTA's qf
// and the MSP's hand-off both take them from here. A resent message (one
// with any Resent- field) also gets Resent-Date, Resent-From and
// Resent-Message-Id, each before its plain counterpart. The values have
// sendmail's leading space; the qf conditions (D, F, x, M) are set.
func DefaultHeaders(own []queue.Header, d Defaults) []queue.Header {
	has := func(name string) bool { return header.Has(own, name) }
	resent := header.Resent(own)
	var hs []queue.Header
	add := func(cond, name, value string) {
		hs = append(hs, queue.Header{Cond: cond, HasCond: true, Name: name, Value: " " + value})
	}
	if resent && !has("Resent-Date") {
		add("D", "Resent-Date", d.Date)
	}
	if !has("Date") {
		add("D", "Date", d.Date)
	}
	from := d.FromAddr
	if d.FullName != "" {
		from = d.FullName + " <" + d.FromAddr + ">"
	}
	if resent && !has("Resent-From") {
		add("F", "Resent-From", from)
	}
	if !has("From") {
		add("F", "From", from)
	}
	if d.FullField && d.FullName != "" && !has("Full-Name") {
		add("x", "Full-Name", d.FullName)
	}
	if resent && !has("Resent-Message-Id") {
		add("M", "Resent-Message-Id", d.MessageID)
	}
	if !has("Message-Id") {
		add("M", "Message-Id", d.MessageID)
	}
	return hs
}

// MessageID is sendmail.cf's Message-Id value: <YYYYMMDDhhmm.ID@$j>.
func MessageID(t time.Time, id, hostname string) string {
	return fmt.Sprintf("<%s.%s@%s>", t.UTC().Format("200601021504"), id, hostname)
}

// phraseOf returns the display name of the From: header ("Alice Example"
// from "Alice Example <alice@host>"), which sendmail keeps as $x.
func phraseOf(headers []queue.Header) string {
	for _, h := range headers {
		if !strings.EqualFold(h.Name, "From") {
			continue
		}
		v := strings.TrimSpace(strings.ReplaceAll(h.Value, "\n", " "))
		if i := strings.IndexByte(v, '<'); i > 0 {
			return strings.Trim(strings.TrimSpace(v[:i]), `"`)
		}
		if i := strings.IndexByte(v, '('); i > 0 {
			if j := strings.IndexByte(v[i:], ')'); j > 0 {
				return strings.TrimSpace(v[i+1 : i+j])
			}
		}
		return ""
	}
	return ""
}

// precedenceClass is the class of the Precedence: header (0 without one).
func precedenceClass(headers []queue.Header) int {
	for _, h := range headers {
		if strings.EqualFold(h.Name, "Precedence") {
			return queue.PrecedenceClass(h.Value)
		}
	}
	return 0
}

// Recipients expands recipients into qf recipient lines as acceptance
// does (C lines, A flags, Final-Recipient, NOTIFY flags, duplicates
// once), for a job made outside a Message: the queue runner's reports.
// Owner- lists do not split such a job.
func (a *Acceptor) Recipients(in []Recipient) ([]queue.Recipient, error) {
	groups, err := a.expand(in)
	if err != nil {
		return nil, err
	}
	var out []queue.Recipient
	for _, g := range groups {
		out = append(out, g.rcpts...)
	}
	return out, nil
}

// rcptGroup is the recipients that share an envelope sender: the
// message's own (owner "") or an owner- list's.
type rcptGroup struct {
	owner string
	rcpts []queue.Recipient
}

// expand turns the envelope recipients into qf recipients, expanded and
// without duplicates, grouped by envelope sender: the message's own group
// first, then each owner- list in the order met.
func (a *Acceptor) expand(in []Recipient) ([]rcptGroup, error) {
	return a.expandQueueing(in, false)
}

// expandQueueing is expand; with queueTemp, a recipient whose expansion
// fails temporarily (the alias database unavailable) is queued as given,
// flagged queue.RcptUnexpanded for the queue run to expand, as sendmail
// queues such a recipient up rather than refuse the message.
func (a *Acceptor) expandQueueing(in []Recipient, queueTemp bool) ([]rcptGroup, error) {
	groups := []rcptGroup{{}}
	index := map[string]int{"": 0}
	seen := map[string]bool{}
	for _, r := range in {
		finals := []Final{{Addr: r.Addr}}
		unexpanded := false
		if a.Expander != nil {
			f, err := a.Expander.Expand(r.Addr)
			var se *status.Error
			if err != nil && queueTemp && errors.As(err, &se) && se.Temporary() {
				f = []Final{{Addr: r.Addr, Key: "unexpanded\x00" + strings.ToLower(r.Addr)}}
				unexpanded, err = true, nil
			}
			if err != nil {
				if errors.As(err, &se) {
					return nil, se
				}
				return nil, status.Wrap(err, 451, "4.3.0", "%s... Temporary failure in alias expansion", r.Addr)
			}
			finals = f
		}
		for _, f := range finals {
			key := f.Key
			if key == "" {
				key = dedupKey(f.Addr)
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			q := queue.Recipient{
				Ctl:       f.Ctl,
				ORcpt:     r.ORcpt,
				FinalRcpt: "RFC822; " + a.qualify(r.Addr),
				Flags:     "P" + notifyFlags(r.Notify),
				Addr:      f.Addr,
			}
			if f.Alias {
				q.Flags += "A"
			}
			if unexpanded {
				q.Flags += string(queue.RcptUnexpanded)
			}
			gi, ok := index[f.Owner]
			if !ok {
				gi = len(groups)
				index[f.Owner] = gi
				groups = append(groups, rcptGroup{owner: f.Owner})
			}
			groups[gi].rcpts = append(groups[gi].rcpts, q)
		}
	}
	if len(groups[0].rcpts) == 0 {
		groups = groups[1:] // every recipient belongs to a list owner
	}
	return groups, nil
}

// qualify strips angle brackets and adds $j to a bare local name, giving
// the DSN Final-Recipient address.
func (acc *Acceptor) qualify(addr string) string {
	a := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(addr), "<"), ">")
	if !strings.Contains(a, "@") && !strings.HasPrefix(a, "|") && !strings.HasPrefix(a, "/") {
		a += "@" + acc.Hostname
	}
	return a
}

// notifyFlags gives the R-line flags for a NOTIFY parameter: FD by
// default, N plus S/F/D when given, N alone for NEVER.
func notifyFlags(notify string) string {
	if notify == "" {
		return "FD"
	}
	flags := "N"
	up := strings.ToUpper(notify)
	for _, w := range []struct {
		word string
		flag string
	}{{"SUCCESS", "S"}, {"FAILURE", "F"}, {"DELAY", "D"}} {
		if strings.Contains(up, w.word) {
			flags += w.flag
		}
	}
	return flags
}

// dedupKey compares addresses as sendmail's sameaddr does: the user part
// exactly, the domain without case, angle brackets ignored.
func dedupKey(addr string) string {
	a := strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	if at := strings.LastIndexByte(a, '@'); at >= 0 {
		return a[:at] + "@" + strings.ToLower(a[at+1:])
	}
	return a
}
