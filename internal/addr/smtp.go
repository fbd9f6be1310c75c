package addr

import (
	"errors"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// PathKind says which SMTP command a path argument belongs to.
type PathKind uint8

// Path kinds.
const (
	Sender    PathKind = iota // MAIL FROM: the null path <> is allowed
	Recipient                 // RCPT TO: the null path is refused
)

// ErrNoPath is returned by ParsePath for an argument with no address at all
// ("MAIL FROM:"). The SMTP server answers it with its own syntax error
// (501 5.5.2 Syntax error in parameters scanning "FROM"), which names the
// command word that this package does not see.
var ErrNoPath = errors.New("addr: no address in path argument")

// ErrNoUser is the cause (errors.Is) of the "553 5.0.0 <>... User address
// required" that ParsePath gives a recipient path without a user: the SMTP
// server logs that one as its check_rcpt ruleset would.
var ErrNoUser = errors.New("addr: recipient path without a user")

// ParsePath parses the argument of MAIL FROM: or RCPT TO: (the text after
// the colon) as sendmail does: white space before the address is skipped,
// and the address ends at the first space outside quotes, comments and
// angle brackets, so "<a b@localhost>" is one address and "<alice@localhost
// SIZE=10" is an unbalanced one. Sendmail's lenient forms are accepted:
// no brackets (alice@localhost), nested brackets (<<alice@localhost>>),
// source routes (<@a,@b:u@d>, flagged SourceRoute), quoted local parts.
//
// params is the rest of the argument (the ESMTP parameters), with leading
// white space removed. Errors are status errors in sendmail's wording:
// "553 5.0.0 <x... Unbalanced '<'", "553 5.1.0 <...>... prescan: token too
// long", for a recipient "553 5.0.0 <>... User address required", and for a
// control character outside quotes (sendmail's hasctrlchar)
//
//	501 5.1.7 Syntax error in mailbox address "a?b@x" (non-printable character)   MAIL
//	501 5.1.3 Syntax error in mailbox address "a?b@x" (non-printable character)   RCPT
//
// naming the address (String) with each such character shown as '?'. A CR,
// LF or NUL is refused so even inside quotes or after a backslash.
func ParsePath(arg string, kind PathKind) (a Address, params string, err error) {
	arg = strings.TrimLeft(arg, " \t")
	if arg == "" {
		return Address{}, "", ErrNoPath
	}
	r, err := scan(arg, " \t")
	raw := strings.TrimSpace(arg[:r.n])
	params = strings.TrimLeft(arg[r.n:], " \t")
	if _, bad := lineBreaks(arg); bad {
		// anywhere in the argument: TrimSpace would hide a trailing CR
		shown, inPath := lineBreaks(arg[:r.n])
		if inPath {
			shown = strings.TrimSuffix(strings.TrimPrefix(shown, "<"), ">")
		} else { // in the parameters: show them all
			shown, _ = lineBreaks(arg)
		}
		return Address{Raw: shown}, params, ctrlError(kind, shown)
	}
	if err != nil {
		return Address{Raw: raw}, params, err
	}
	a, err = build(raw, arg, r)
	if err != nil {
		return a, params, err
	}
	if kind == Recipient && (a.Null || a.Local == "") {
		return a, params, status.Wrap(ErrNoUser, 553, "5.0.0", "%s... User address required", Shorten(raw))
	}
	if shown, bad := controlChars(a.String()); bad {
		return a, params, ctrlError(kind, shown)
	}
	return a, params, nil
}

func ctrlError(kind PathKind, shown string) error {
	enh := "5.1.7"
	if kind == Recipient {
		enh = "5.1.3"
	}
	return status.New(501, enh, "Syntax error in mailbox address \"%s\" (non-printable character)", shown)
}

// lineBreaks reports whether s has a CR, LF or NUL anywhere, quoted and
// escaped ones included, and returns s with every control character
// shown as '?'. Beyond
// sendmail, which takes a bare CR in a command line for white space
// ("<a\rb@x>" is a.b@x, echoed with its CR) and keeps quoted ones: such
// a byte has no use in an address, and one that reached a reply, a queue
// file or the next hop's MAIL command could end a line there (SMTP
// smuggling).
func lineBreaks(s string) (string, bool) {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s, false
	}
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b), true
}

// controlChars reports whether s has a control character (below space, or
// DEL) outside double quotes, and returns s with each one replaced by '?',
// as sendmail shows it. White space never gets here: scan separates tokens
// at it.
func controlChars(s string) (string, bool) {
	var b []byte
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			continue
		case c == '"':
			quoted = !quoted
		case !quoted && (c < ' ' || c == 0x7f):
			if b == nil {
				b = []byte(s)
			}
			b[i] = '?'
		}
	}
	if b == nil {
		return s, false
	}
	return string(b), true
}
