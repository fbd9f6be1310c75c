package addr

import "strings"

// HeaderRewrite says how RewriteHeader changes the addresses of one
// header field value.
type HeaderRewrite struct {
	// Domain is $j, the host's canonical name.
	Domain string
	// Qualify adds "@Domain" to every unqualified address, as sendmail's
	// SMTP and relay mailers do (rulesets MasqSMTP, HdrFromSMTP), so
	// "root <root>" becomes "root <root@refhost.example.org>".
	Qualify bool
	// Self reports whether a domain names this host itself (localhost,
	// the short host name, its address literals); the domain of such an
	// address is replaced by Domain, as sendmail's canonify ruleset does
	// at every delivery ("staff@localhost" becomes
	// "staff@refhost.example.org"). Nil replaces nothing.
	Self func(domain string) bool
}

// RewriteHeader returns an address-list header value (From, To, Cc,
// Reply-To, ...) with its addresses rewritten as rw says and every other
// byte kept: display names, comments, quoted strings, groups, white space
// and folding. Left as they are: the null address, source routes,
// programs, files, empty groups, addresses that do not parse, a domain
// with a comment inside it, and (for Qualify) words separated by white
// space outside brackets ("alice bob"), which are ambiguous (an old-style
// list or a phrase).
func RewriteHeader(value string, rw HeaderRewrite) string {
	if rw.Domain == "" || (!rw.Qualify && (rw.Self == nil || strings.IndexByte(value, '@') < 0)) {
		return value
	}
	type edit struct {
		start, end int // the bytes of value replaced by text (start == end inserts)
		text       string
	}
	var edits []edit
	rest := value
	for rest != "" {
		base := len(value) - len(rest)
		r, err := scan(rest, ",;")
		if err == nil {
			toks, bracketed := addressTokens(r.toks)
			switch at := lastSpecial(toks, '@'); {
			case len(toks) == 0 || toks[0].is('@') || isProgOrFile(toks):
			case at >= 0:
				if s, e, ok := selfDomain(rest, toks[at+1:], rw); ok {
					edits = append(edits, edit{base + s, base + e, rw.Domain})
				}
			case rw.Qualify:
				if p, ok := qualifyPoint(toks, bracketed); ok {
					edits = append(edits, edit{base + p, base + p, "@" + rw.Domain})
				}
			}
		}
		if r.n >= len(rest) {
			break
		}
		rest = rest[r.n+1:]
	}
	if len(edits) == 0 {
		return value
	}
	var b strings.Builder
	prev := 0
	for _, e := range edits {
		b.WriteString(value[prev:e.start])
		b.WriteString(e.text)
		prev = e.end
	}
	b.WriteString(value[prev:])
	return b.String()
}

// addressTokens narrows one list member's tokens to its address: after a
// group's "name:", inside the innermost angle brackets when there are any.
func addressTokens(toks []token) (addr []token, bracketed bool) {
	if c := groupColon(toks); c >= 0 {
		toks = toks[c+1:]
	}
	for {
		i := indexSpecial(toks, '<')
		if i < 0 {
			return toks, bracketed
		}
		bracketed = true
		toks = toks[i+1 : matchAngle(toks, i)]
	}
}

func lastSpecial(toks []token, c byte) int {
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].is(c) {
			return i
		}
	}
	return -1
}

func isProgOrFile(toks []token) bool {
	first := strings.TrimPrefix(toks[0].text, `"`)
	return strings.HasPrefix(first, "|") || strings.HasPrefix(first, "/")
}

// selfDomain finds the span of s holding a domain that rw.Self says is
// this host's and that is not already written as rw.Domain.
func selfDomain(s string, dom []token, rw HeaderRewrite) (start, end int, ok bool) {
	if len(dom) == 0 || rw.Self == nil {
		return 0, 0, false
	}
	var name strings.Builder
	for _, t := range dom {
		name.WriteString(t.text)
	}
	last := dom[len(dom)-1]
	start, end = dom[0].pos, last.pos+len(last.text)
	if strings.Join(strings.Fields(s[start:end]), "") != name.String() {
		return 0, 0, false // a comment inside the domain: keep it all
	}
	if name.String() == rw.Domain || !rw.Self(name.String()) {
		return 0, 0, false
	}
	return start, end, true
}

// qualifyPoint finds where "@domain" goes in an unqualified address's
// tokens: after the last token of the local part.
func qualifyPoint(toks []token, bracketed bool) (int, bool) {
	for i := 1; i < len(toks) && !bracketed; i++ {
		if toks[i].space && toks[i].kind != tSpecial && toks[i-1].kind != tSpecial {
			return 0, false
		}
	}
	last := toks[len(toks)-1]
	if strings.HasSuffix(last.text, "\\") { // "@" would be escaped
		return 0, false
	}
	return last.pos + len(last.text), true
}
