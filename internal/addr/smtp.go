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
// long", and for a recipient "553 5.0.0 <>... User address required".
func ParsePath(arg string, kind PathKind) (a Address, params string, err error) {
	arg = strings.TrimLeft(arg, " \t")
	if arg == "" {
		return Address{}, "", ErrNoPath
	}
	r, err := scan(arg, " \t")
	raw := strings.TrimSpace(arg[:r.n])
	params = strings.TrimLeft(arg[r.n:], " \t")
	if err != nil {
		return Address{Raw: raw}, params, err
	}
	a, err = build(raw, arg, r)
	if err != nil {
		return a, params, err
	}
	if kind == Recipient && (a.Null || a.Local == "") {
		return a, params, status.New(553, "5.0.0", "%s... User address required", Shorten(raw))
	}
	return a, params, nil
}
