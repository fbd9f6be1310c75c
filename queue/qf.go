package queue

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Version is the qf format version this package writes (sendmail 8.13+).
const Version = 8

// Job is the content of one qf file: the envelope, the recipients still to
// be delivered, and the headers. The body lives in the df file.
type Job struct {
	ID string // queue ID, from the file name (not stored in the file)

	Version    int       // V
	Created    time.Time // T; the zero Time is written as 0
	LastTry    time.Time // K; zero = never tried
	Attempts   int       // N
	Priority   int64     // P
	DataDir    string    // d: directory of the df when it differs
	DataInode  string    // I: "<major>/<minor>/<inode>" of the df, as written
	BodyType   string    // B: 7BIT, 8BITMIME, or empty
	Quarantine string    // q
	Message    string    // M before the sender: the envelope status message
	Flags      string    // F: envelope flags, see the Flag* constants
	Macros     []Macro   // $ lines, in order
	Sender     string    // S, as given (<a@b>, root, <>)
	EnvID      string    // Z: DSN ENVID
	Auth       string    // A: AUTH= parameter
	DeliverBy  string    // !: "<mode> <secs>"

	Recipients []Recipient
	Headers    []Header

	// Extra holds lines of unknown type met before the recipients, and
	// Trailer those met after the last recipient; both are written back
	// unchanged (Extra after the envelope, Trailer before the headers).
	Extra   []string
	Trailer []string

	// seen records which line types were present, for mailq's
	// "(no control file)" and for a missing sender.
	seen uint64
}

// Envelope flags (the F line), in the order sendmail writes them.
const (
	FlagWarned   = 'w' // a delay warning DSN was sent
	FlagResponse = 'r' // this message is itself a DSN
	Flag8Bit     = '8' // the body has 8-bit data
	FlagDelBcc   = 'b' // delete Bcc: headers
	FlagRetParam = 'd' // RET= was given
	FlagRetHdrs  = 'n' // RET=HDRS: do not return the body
	FlagSplit    = 's' // the envelope has been split
	FlagUTF8     = 'e' // SMTPUTF8
)

const flagOrder = "wr8bdnse"

// HasFlag reports whether the envelope flag c is set.
func (j *Job) HasFlag(c byte) bool { return strings.IndexByte(j.Flags, c) >= 0 }

// SetFlag sets or clears the envelope flag c, keeping sendmail's order.
func (j *Job) SetFlag(c byte, on bool) {
	if j.HasFlag(c) == on {
		return
	}
	if !on {
		j.Flags = strings.ReplaceAll(j.Flags, string(c), "")
		return
	}
	var b strings.Builder
	for i := 0; i < len(flagOrder); i++ {
		if f := flagOrder[i]; f == c || strings.IndexByte(j.Flags, f) >= 0 {
			b.WriteByte(f)
		}
	}
	// Flags this package does not know keep their place at the end.
	for i := 0; i < len(j.Flags); i++ {
		if strings.IndexByte(flagOrder, j.Flags[i]) < 0 {
			b.WriteByte(j.Flags[i])
		}
	}
	j.Flags = b.String()
}

// Macro is a persistent macro: Name is one character ("_", "r", "s") or a
// long name in braces ("{daemon_flags}").
type Macro struct {
	Name  string
	Value string
}

// Recipient is one address still to be delivered, with the lines that
// precede its R line.
type Recipient struct {
	Message   string   // M: status message for this recipient
	Ctl       string   // C: controlling user "user:uid:gid:alias" or ":alias"; "" = none
	ORcpt     string   // Q: DSN ORCPT
	FinalRcpt string   // r: DSN Final-Recipient
	Flags     string   // R flags before the colon: P N S F D A B
	Addr      string   // the address after the colon
	Extra     []string // unknown lines met before this recipient
}

// Recipient flags (before the colon of the R line).
const (
	RcptPrimary   = 'P' // given by the sender, not from alias expansion
	RcptHasNotify = 'N' // NOTIFY= was given
	RcptSuccess   = 'S' // NOTIFY=SUCCESS
	RcptFailure   = 'F' // NOTIFY=FAILURE (default)
	RcptDelay     = 'D' // NOTIFY=DELAY (default)
	RcptAlias     = 'A' // the controlling address is an alias
	RcptBcc       = 'B' // internal Bcc
	// RcptUnexpanded (posthorn's) marks a recipient queued as given
	// because its alias expansion failed temporarily (the alias database
	// unavailable, as an LDAP server down): the queue run expands it,
	// as sendmail's queue run does for a recipient it queued up.
	RcptUnexpanded = 'X'
)

// HasFlag reports whether the recipient flag c is set.
func (r *Recipient) HasFlag(c byte) bool { return strings.IndexByte(r.Flags, c) >= 0 }

// Header is one H line. Value keeps everything after the colon, including
// the leading space and folded continuation lines ("...\n\tmore").
type Header struct {
	Cond    string // between the question marks: "", "P", "$j", "${name}"
	HasCond bool   // false only for the old form without ?cond?
	Name    string
	Value   string
}

// Get returns the value of the first header named name (case-insensitive),
// without the leading space.
func (j *Job) Get(name string) (string, bool) {
	for _, h := range j.Headers {
		if strings.EqualFold(h.Name, name) {
			return strings.TrimLeft(h.Value, " \t"), true
		}
	}
	return "", false
}

// ParseError tells why a qf file could not be read; the store renames such
// a file to Qf.
type ParseError struct {
	Line   int
	Reason string
}

func (e *ParseError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return e.Reason
}

func seenBit(c byte) uint64 {
	switch {
	case c >= 'A' && c <= 'Z':
		return 1 << (c - 'A')
	case c >= 'a' && c <= 'z':
		return 1 << (26 + c - 'a')
	}
	return 1 << 63
}

// Parse reads a qf file. id is the queue ID from the file name.
func Parse(id string, data []byte) (*Job, error) {
	j, err := parse(id, data, false)
	if err != nil {
		return nil, err
	}
	return j, nil
}

// parse does the work of Parse; envelopeOnly stops at the first header,
// which is all a listing or an index needs.
func parse(id string, data []byte, envelopeOnly bool) (*Job, error) {
	j := &Job{ID: id}
	var (
		pending Recipient // lines met since the last R
		ctl     string    // effective controlling user
		inRcpts bool      // an M/C/Q/r/R line has been met after S
		done    bool      // "." seen
		lineNo  int
	)
	// On error the job read so far is returned too: mailq shows what it
	// can of a file that sendmail is still writing.
	bad := func(format string, args ...any) (*Job, error) {
		return j, &ParseError{Line: lineNo, Reason: fmt.Sprintf(format, args...)}
	}
	for len(data) > 0 {
		lineNo++
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return bad("incomplete last line")
		}
		// A logical line runs on over the continuation lines (starting
		// with a space or TAB) that follow; it is taken in one piece, so
		// the value keeps its "\n\t" folds without repeated copying.
		end := i
		for end+1 < len(data) && (data[end+1] == ' ' || data[end+1] == '\t') {
			k := bytes.IndexByte(data[end+1:], '\n')
			if k < 0 {
				return bad("incomplete last line")
			}
			end += 1 + k
			lineNo++
		}
		line := data[:end]
		data = data[end+1:]
		if done {
			return bad("data after end of file marker")
		}
		if len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
			return bad("continuation line without a line to continue")
		}
		if len(line) == 0 {
			j.addUnknown(&pending, "")
			continue
		}
		c, rest := line[0], string(line[1:])
		if c == 'H' && envelopeOnly {
			j.seen |= seenBit('H')
			return j, nil
		}
		j.seen |= seenBit(c)
		switch c {
		case 'V':
			n, err := strconv.Atoi(rest)
			if err != nil || n < 0 {
				return bad("bad version %q", rest)
			}
			if n > Version {
				return bad("Version number in queue file (%d) greater than max (%d)", n, Version)
			}
			j.Version = n
		case 'T', 'K':
			n, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				return bad("bad time %q", rest)
			}
			var t time.Time
			if n != 0 {
				t = time.Unix(n, 0)
			}
			if c == 'T' {
				j.Created = t
			} else {
				j.LastTry = t
			}
		case 'N':
			n, err := strconv.Atoi(rest)
			if err != nil {
				return bad("bad attempt count %q", rest)
			}
			j.Attempts = n
		case 'P':
			n, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				return bad("bad priority %q", rest)
			}
			j.Priority = n
		case 'd':
			j.DataDir = rest
		case 'I':
			j.DataInode = rest
		case 'B':
			j.BodyType = rest
		case 'q':
			j.Quarantine = rest
		case 'F':
			j.Flags = rest
		case '$':
			if envelopeOnly {
				break // a listing or an index has no use for macros
			}
			name, value := splitMacro(rest)
			j.Macros = append(j.Macros, Macro{Name: name, Value: value})
		case 'S':
			j.Sender = rest
		case 'Z':
			j.EnvID = rest
		case 'A':
			j.Auth = rest
		case '!':
			j.DeliverBy = rest
		case 'M':
			if j.seen&seenBit('S') == 0 && !inRcpts {
				j.Message = rest
			} else {
				inRcpts = true
				pending.Message = rest
			}
		case 'C':
			inRcpts = true
			ctl = rest
		case 'Q':
			inRcpts = true
			pending.ORcpt = rest
		case 'r':
			inRcpts = true
			pending.FinalRcpt = rest
		case 'R':
			inRcpts = true
			r := pending
			r.Ctl = ctl
			if j.Version >= 1 {
				i := strings.IndexByte(rest, ':')
				if i < 0 {
					return bad("recipient without flags separator: %q", rest)
				}
				r.Flags, r.Addr = rest[:i], rest[i+1:]
			} else {
				r.Addr = rest
			}
			j.Recipients = append(j.Recipients, r)
			pending = Recipient{}
		case 'H':
			h, err := parseHeader(rest)
			if err != nil {
				return bad("%v", err)
			}
			j.Headers = append(j.Headers, h)
		case '.':
			if rest != "" {
				j.addUnknown(&pending, string(line))
				break
			}
			done = true
		default:
			j.addUnknown(&pending, string(line))
		}
	}
	if !done {
		return bad("incomplete queue file (no \".\" line)")
	}
	// Unknown lines after the last recipient stay in Trailer.
	j.Trailer = append(j.Trailer, pending.Extra...)
	return j, nil
}

// addUnknown keeps a line of unknown type with the recipient that follows
// it, or with the envelope when no R line has been met yet.
func (j *Job) addUnknown(pending *Recipient, line string) {
	if len(j.Recipients) > 0 {
		pending.Extra = append(pending.Extra, line)
		return
	}
	j.Extra = append(j.Extra, line)
}

// splitMacro splits "$" line content into the macro name and its value.
func splitMacro(s string) (name, value string) {
	if s == "" {
		return "", ""
	}
	if s[0] == '{' {
		if i := strings.IndexByte(s, '}'); i >= 0 {
			return s[:i+1], s[i+1:]
		}
		return s, ""
	}
	return s[:1], s[1:]
}

func parseHeader(s string) (Header, error) {
	var h Header
	if strings.HasPrefix(s, "?") {
		if i := strings.IndexByte(s[1:], '?'); i >= 0 {
			h.Cond, h.HasCond = s[1:i+1], true
			s = s[i+2:]
		}
	}
	i := strings.IndexByte(s, ':')
	if i < 0 {
		return h, errors.New("header without colon")
	}
	h.Name, h.Value = s[:i], s[i+1:]
	return h, nil
}
