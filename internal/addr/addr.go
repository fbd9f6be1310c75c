// Package addr parses mail addresses the way sendmail 8 does: SMTP paths
// (RFC 5321 MAIL FROM/RCPT TO arguments), addresses given on the command
// line or in aliases, and RFC 5322 address lists in To/Cc/Bcc headers for
// "sendmail -t". It reports relay tricks as flags and fields and leaves the
// decision to policy.
//
// # Lexical rules (sendmail's prescan)
//
// An address is split into tokens: atoms, quoted strings ("..." with \
// escapes, kept with their quotes), and single-character operators
// @ , : ; . < > [ ] % ! ^ / +. White space separates tokens and is dropped;
// two atoms separated only by white space are joined with "." (sendmail.cf
// "O BlankSub=."), so "<a b@localhost>" is the address a.b@localhost.
// Comments "(...)" nest and are dropped (their text is kept as a display
// name). Errors, all "553" replies naming the address as written (cut to
// 100+"..."+100 bytes when 203 bytes or longer, see Shorten):
//
//	553 5.0.0 <addr... Unbalanced '<'      (also '>', '(', ')', '"')
//	553 5.1.0 <addr>... prescan: token too long    (a token over 256 bytes)
//	553 5.1.0 <addr>... prescan: too many tokens   (over 1000 tokens)
//	553 5.1.1 <addr>... Address too long           (over 2043 bytes)
//	553 5.0.0 <>... User address required          (an empty RCPT path)
//	553 5.1.3 <@x>... Invalid route address        (a route without ':'; posthorn's wording, not captured)
//	501 5.1.7 Syntax error in mailbox address "a?b@x" (non-printable character)
//	                                               (SMTP paths: a control character outside quotes; 5.1.3 for RCPT)
//
// # Structure
//
// When angle brackets are present, the address is what the first bracket
// pair holds, nested pairs unwrapped ("<<a@b>>" is a@b) and the text outside
// is the display name ("Alice <alice@x>"). Inside, an optional source route
// "@a,@b:" comes first, then the local part up to the last "@", then the
// domain. Earlier unquoted "@"s turn into "%" ("a@b@c" is a%b@c), as
// sendmail's canonify ruleset does. An empty address ("<>", "") is the null
// address. An address whose text starts with "|" or "/" is a program or a
// file and is kept verbatim.
//
// # Relay tricks
//
// The flags record what an address uses: a source route, the "%" hack
// (user%host@here), a bang path (host!user), a quoted local part holding
// "@", "%" or "!", a domain literal ([192.0.2.1]). Resolve follows them
// against the local names ($=w) the way sendmail's rulesets would and
// returns the effective destination, so that "alice%remote.example@localhost",
// "remote.example!alice@localhost" and "@localhost:alice@remote.example"
// are all seen as mail for alice@remote.example.
package addr

import (
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// Flags describe the form an address was written in.
type Flags uint16

// Address forms.
const (
	Bracketed     Flags = 1 << iota // written inside <...>
	SourceRoute                     // "@a,@b:user@domain"
	PercentHack                     // unquoted '%' in the local part: user%host@domain
	BangPath                        // unquoted '!' in the local part: host!user
	QuotedLocal                     // the local part has a quoted string
	QuotedSpecial                   // a quoted local part holds '@', '%' or '!'
	DomainLiteral                   // the domain is a literal: [192.0.2.1]
	Program                         // "|command"
	File                            // "/path"
)

// Address is one parsed address.
type Address struct {
	Raw    string   // the address as written (outer white space trimmed), for echoes
	Name   string   // display name: the phrase before <...>, or else the first comment
	Route  []string // source-route hops without the '@': "@a,@b:u@d" gives ["a", "b"]
	Local  string   // local part as written, quotes kept; the whole text for programs and files
	Domain string   // domain after the last '@' ("" when unqualified), literals with brackets
	Group  string   // the RFC 5322 group the address was listed in, if any
	Null   bool     // the null address "<>"
	Flags  Flags
}

// Has reports whether all of f are set.
func (a Address) Has(f Flags) bool { return a.Flags&f == f }

// String is the address without display name and brackets: "" for the null
// address, "local@domain", "local" when unqualified, "@a,@b:local@domain"
// with a source route.
func (a Address) String() string {
	if a.Null {
		return ""
	}
	var b strings.Builder
	for i, h := range a.Route {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('@')
		b.WriteString(h)
	}
	if len(a.Route) > 0 {
		b.WriteByte(':')
	}
	b.WriteString(a.Local)
	if a.Domain != "" {
		b.WriteByte('@')
		b.WriteString(a.Domain)
	}
	return b.String()
}

// Path is the address in SMTP form: "<local@domain>", "<>" for null.
func (a Address) Path() string { return "<" + a.String() + ">" }

// LocalUnquoted is the local part with quotes and backslash escapes removed.
func (a Address) LocalUnquoted() string { return unquote(a.Local) }

// Parse parses one address as sendmail's parseaddr does for the command
// line, aliases and -bv: display names and comments are allowed
// ("Alice Example <alice@localhost>", "alice@localhost (Alice)"). The empty
// string parses as the null address; callers that need a user say so.
func Parse(s string) (Address, error) {
	r, err := scan(s, "")
	if err != nil {
		return Address{Raw: strings.TrimSpace(s)}, err
	}
	return build(strings.TrimSpace(s), s, r)
}

// build turns the tokens of one address into an Address; src is the
// string the tokens were scanned from, raw the text to echo.
func build(raw, src string, r scanResult) (Address, error) {
	a := Address{Raw: raw}
	toks := r.toks
	// Angle brackets: take the first pair, unwrap nested pairs.
	if i := indexSpecial(toks, '<'); i >= 0 {
		j := matchAngle(toks, i)
		a.Name = phrase(toks[:i])
		if a.Name == "" {
			a.Name = phrase(toks[j+1:])
		}
		toks = toks[i+1 : j]
		a.Flags |= Bracketed
		for {
			k := indexSpecial(toks, '<')
			if k < 0 {
				break
			}
			toks = toks[k+1 : matchAngle(toks, k)]
		}
	}
	if a.Name == "" && len(r.comments) > 0 {
		a.Name = strings.TrimSpace(r.comments[0])
	}
	if len(toks) == 0 {
		a.Null = true
		return a, nil
	}
	if first := strings.TrimPrefix(toks[0].text, `"`); strings.HasPrefix(first, "|") || strings.HasPrefix(first, "/") {
		last := toks[len(toks)-1]
		a.Local = src[toks[0].pos : last.pos+len(last.text)]
		if first[0] == '|' {
			a.Flags |= Program
		} else {
			a.Flags |= File
		}
		return a, nil
	}
	// Source route: "@a,@b:" before the mailbox.
	if toks[0].is('@') {
		k := 0
		for k < len(toks) && toks[k].is('@') {
			end := k + 1
			for end < len(toks) && !toks[end].is(',') && !toks[end].is(':') {
				end++
			}
			if end >= len(toks) {
				return a, status.New(553, "5.1.3", "%s... Invalid route address", Shorten(raw))
			}
			a.Route = append(a.Route, join(toks[k+1:end], false))
			k = end + 1
			if toks[end].is(':') {
				break
			}
		}
		a.Flags |= SourceRoute
		toks = toks[k:]
	}
	at := -1
	for i, t := range toks {
		if t.is('@') {
			at = i
		}
	}
	local, domain := toks, []token(nil)
	if at >= 0 {
		local, domain = toks[:at], toks[at+1:]
	}
	for _, t := range local {
		switch {
		case t.is('@'), t.is('%'):
			a.Flags |= PercentHack
		case t.is('!'):
			a.Flags |= BangPath
		case t.kind == tQuoted:
			a.Flags |= QuotedLocal
			if strings.ContainsAny(t.text, "@%!") {
				a.Flags |= QuotedSpecial
			}
		}
	}
	for i, t := range local {
		if t.is('@') { // canonify's "undo all but the last @"
			local[i].text = "%"
		}
	}
	a.Local = join(local, true)
	if at >= 0 {
		a.Domain = join(domain, false)
		if strings.HasPrefix(a.Domain, "[") {
			a.Flags |= DomainLiteral
		}
	}
	return a, nil
}

func indexSpecial(toks []token, c byte) int {
	for i, t := range toks {
		if t.is(c) {
			return i
		}
	}
	return -1
}

// matchAngle returns the index of the '>' closing the '<' at i (scan has
// checked the balance, so there is one).
func matchAngle(toks []token, i int) int {
	depth := 0
	for j := i; j < len(toks); j++ {
		switch {
		case toks[j].is('<'):
			depth++
		case toks[j].is('>'):
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return len(toks) - 1
}

// join concatenates tokens. With blankSub, two words that white space
// separated are joined with "." as sendmail's BlankSub option does.
func join(toks []token, blankSub bool) string {
	var b strings.Builder
	for i, t := range toks {
		if blankSub && i > 0 && t.space && t.kind != tSpecial && toks[i-1].kind != tSpecial {
			b.WriteByte('.')
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// phrase renders display-name tokens: words separated by single spaces,
// quotes removed.
func phrase(toks []token) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 && t.space {
			b.WriteByte(' ')
		}
		if t.kind == tQuoted {
			b.WriteString(unquote(t.text))
		} else {
			b.WriteString(t.text)
		}
	}
	return b.String()
}

// unquote removes double quotes and backslash escapes.
func unquote(s string) string {
	if !strings.ContainsAny(s, "\"\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
