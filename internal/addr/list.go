package addr

import (
	"errors"
	"strings"
)

// ListParser parses the address lists of recipient headers (To, Cc, Bcc,
// Resent-*) for "sendmail -t", keeping the one piece of state sendmail keeps
// per message: whether lists are still taken as old style.
//
// RFC 5322 lists are split at commas outside quotes, comments and angle
// brackets; groups ("friends: a@x, b@y;") give their members, each with
// Group set, and an empty group ("undisclosed-recipients:;") gives none.
// Display names and comments are allowed as in Parse.
//
// Old style (sendmail.cf "O OldStyleHeaders=True", the Debian default):
// a list holding none of , ; < ( is split at white space instead, so
// "To: alice bob" names two recipients. The first list that holds one of
// those characters ends old style for the rest of the message.
//
// Command-line recipients are lists too (sendmail splits "a,b" into two):
// parse each argument with a ListParser whose OldStyle is false.
type ListParser struct {
	OldStyle bool // OldStyleHeaders; cleared by the first new-style list
}

// Parse returns the addresses of one header value. A bad address does not
// stop the others: the good ones are returned with the errors joined (each
// a status error such as "553 5.0.0 <bad... Unbalanced '<'"), as sendmail
// reports each bad recipient and carries on.
func (p *ListParser) Parse(value string) ([]Address, error) {
	delims := ",;"
	if strings.ContainsAny(value, ",;<(") {
		p.OldStyle = false
	} else if p.OldStyle {
		delims = " \t\r\n"
	}
	var (
		out   []Address
		errs  []error
		group string
	)
	rest := value
	for {
		rest0 := rest
		r, err := scan(rest, delims)
		chunk := rest[:r.n]
		var end byte
		if r.n < len(rest) {
			end = rest[r.n]
			rest = rest[r.n+1:]
		} else {
			rest = ""
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			toks := r.toks
			// "name:" at the front, outside brackets and not a route, opens a group.
			src := rest0
			if c := groupColon(toks); c >= 0 {
				group = phrase(toks[:c])
				chunk = chunk[toks[c].pos+1:]
				src = src[toks[c].pos+1:]
				toks = toks[c+1:]
				for i := range toks {
					toks[i].pos -= len(rest0) - len(src)
				}
			}
			if len(toks) > 0 {
				r.toks = toks
				a, err := build(strings.TrimSpace(chunk), src, r)
				switch {
				case err != nil:
					errs = append(errs, err)
				case !a.Null:
					a.Group = group
					out = append(out, a)
				}
			}
		}
		if end == ';' {
			group = ""
		}
		if rest == "" {
			break
		}
	}
	return out, errors.Join(errs...)
}

// groupColon finds the colon of a group's display name: a ':' before any
// '<' and '@', not at the front (that would be a route or ":include:").
func groupColon(toks []token) int {
	for i, t := range toks {
		switch {
		case t.is('<'), t.is('@'), t.is('['):
			return -1
		case t.is(':'):
			if i == 0 {
				return -1
			}
			return i
		}
	}
	return -1
}
