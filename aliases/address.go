package aliases

import (
	"strings"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
)

// Mailer names as sendmail prints them in -bv output and logs.
const (
	MailerLocal = "local"
	MailerFile  = "*file*"
	MailerProg  = "prog"
	MailerESMTP = "esmtp"
	mailerIncl  = ":include:"
	mailerError = "error"
)

// parsedAddr is one element of a recipient list.
type parsedAddr struct {
	paddr string // as written (trimmed): what messages and -bv print
	addr  string // the address proper: inside <>, comments removed
	raw   bool   // a file, program, :include: or error: target taken verbatim
}

// splitList splits a recipient list on commas that are outside double
// quotes, <angle brackets> and (comments), as sendmail's sendtolist does.
// Empty elements are dropped.
func splitList(list string) []string {
	var out []string
	start, angle, comment := 0, 0, 0
	quote := false
	emit := func(end int) {
		if s := strings.TrimSpace(list[start:end]); s != "" {
			out = append(out, s)
		}
	}
	for i := 0; i < len(list); i++ {
		c := list[i]
		switch {
		case c == '\\':
			i++
		case quote:
			if c == '"' {
				quote = false
			}
		case comment > 0:
			if c == '(' {
				comment++
			} else if c == ')' {
				comment--
			}
		case c == '"':
			quote = true
		case c == '(':
			comment++
		case c == '<':
			angle++
		case c == '>':
			if angle > 0 {
				angle--
			}
		case c == ',' && angle == 0:
			emit(i)
			start = i + 1
		case c == '\n' || c == '\r':
			// newlines in a stored value are white space
		}
	}
	emit(len(list))
	return out
}

// isRawTarget reports whether s is a file, program, :include: or error:
// target, which sendmail does not tokenise as an address.
func isRawTarget(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '|' || s[0] == '/' {
		return true
	}
	l := strings.ToLower(s)
	return strings.HasPrefix(l, ":include:") || strings.HasPrefix(l, "error:")
}

// parseAddress parses one list element. A syntax problem is returned as a
// 553 error, but the address is still usable, repaired as sendmail repairs
// it (an unbalanced '<' is closed at the end), because -bv goes on to report
// what the repaired address resolves to.
func parseAddress(s string) (parsedAddr, *status.Error) {
	s = strings.TrimSpace(s)
	p := parsedAddr{paddr: s}
	if isRawTarget(s) {
		p.addr, p.raw = s, true
		return p, nil
	}
	var plain, angle strings.Builder
	quote, comment, depth, sawAngle := false, 0, 0, false
	var perr *status.Error
	bad := func(c byte) {
		if perr == nil {
			perr = status.New(553, "5.0.0", "%s... Unbalanced '%c'", s, c)
		}
	}
	cur := func() *strings.Builder {
		if depth > 0 {
			return &angle
		}
		return &plain
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case comment > 0:
			switch c {
			case '\\':
				i++
			case '(':
				comment++
			case ')':
				comment--
			}
		case c == '\\':
			b := cur()
			b.WriteByte(c)
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case quote:
			cur().WriteByte(c)
			if c == '"' {
				quote = false
			}
		case c == '"':
			quote = true
			cur().WriteByte(c)
		case c == '(':
			comment++
		case c == ')':
			bad(')')
		case c == '<':
			if depth == 0 {
				angle.Reset()
			}
			depth++
			sawAngle = true
		case c == '>':
			if depth == 0 {
				bad('>')
				continue
			}
			depth--
		default:
			cur().WriteByte(c)
		}
	}
	switch {
	case quote:
		bad('"')
		cur().WriteByte('"')
	case comment > 0:
		bad('(')
	case depth > 0:
		bad('<')
	}
	if sawAngle {
		p.addr = strings.TrimSpace(angle.String())
	} else {
		p.addr = strings.TrimSpace(plain.String())
	}
	return p, perr
}

// splitDomain splits local@domain at the last '@' outside quotes. The
// domain is lower-cased and loses a trailing dot.
func splitDomain(addr string) (local, domain string, ok bool) {
	at, quote := -1, false
	for i := 0; i < len(addr); i++ {
		switch c := addr[i]; {
		case c == '\\':
			i++
		case c == '"':
			quote = !quote
		case c == '@' && !quote:
			at = i
		}
	}
	if at < 0 {
		return addr, "", false
	}
	domain = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(addr[at+1:])), ".")
	return strings.TrimSpace(addr[:at]), domain, true
}

// stripQuotes removes double quotes and backslash escapes, as sendmail's
// stripquotes does before a user name is looked up.
func stripQuotes(s string) string {
	if !strings.ContainsAny(s, "\"\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// target is a classified address: which mailer gets it and with what.
type target struct {
	mailer string
	host   string // SMTP mailers: the host the router chose
	user   string // q_user: what -bv prints after "user"
	path   string // *file*: path; prog: command; :include:: file
	quoted bool   // \user: no alias or .forward lookup
	err    *status.Error
}

// classify decides the mailer for a parsed address: :include: is this
// package's own; everything else is the router's answer (route.Router),
// the same one the relay check and the queue runner get.
func classify(p parsedAddr, rt *route.Router) target {
	a := p.addr
	if p.raw {
		l := strings.ToLower(a)
		switch {
		case a[0] == '|':
			return target{mailer: MailerProg, user: a, path: strings.TrimSpace(a[1:])}
		case a[0] == '/':
			return target{mailer: MailerFile, user: a, path: a}
		case strings.HasPrefix(l, ":include:"):
			path := strings.TrimSpace(a[len(":include:"):])
			return target{mailer: mailerIncl, user: a, path: path}
		default:
			return target{mailer: mailerError, user: a, err: route.ParseErrorTarget(a[len("error:"):])}
		}
	}
	u := stripQuotes(a)
	if strings.HasPrefix(u, "|") {
		return target{mailer: MailerProg, user: a, path: strings.TrimSpace(u[1:])}
	}
	if strings.HasPrefix(u, "/") {
		return target{mailer: MailerFile, user: a, path: u}
	}
	t, err := rt.ResolveString(a)
	if err != nil {
		return target{mailer: mailerError, user: a, err: status.From(err)}
	}
	switch {
	case t.Mailer == route.Local:
		user := t.User
		if t.Tricks == 0 && strings.Contains(a, `"`) {
			// sendmail looks a quoted name up in the aliases with its
			// quotes ("quoted key" is stored so) and strips them only
			// for the password file.
			if pa, err := addr.Parse(a); err == nil {
				user = pa.Local
			}
		}
		return target{mailer: MailerLocal, user: user, quoted: t.NoAlias}
	case t.Mailer == route.Error:
		return target{mailer: mailerError, user: a, err: t.Err}
	case t.Mailer == route.Prog:
		return target{mailer: MailerProg, user: a, path: strings.TrimSpace(strings.TrimPrefix(t.User, "|"))}
	case t.Mailer == route.File:
		return target{mailer: MailerFile, user: a, path: t.User}
	}
	return target{mailer: t.Mailer, host: t.Host, user: t.User}
}
