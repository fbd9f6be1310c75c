package addr

import "strings"

// Qualify returns a header value (From, To, Cc, Reply-To, ...) with "@domain"
// added to every unqualified address and every other byte kept, as
// sendmail's header rewriting for SMTP mailers does before mail leaves the
// host: "root <root>" becomes "root <root@refhost.example.org>",
// "alice (Alice)" becomes "alice@refhost.example.org (Alice)". Qualified
// addresses, the null address, routes, programs, files, empty groups and
// addresses that do not parse are left as they are. Words separated by
// white space outside brackets ("alice bob") are ambiguous (an old-style
// list or a phrase) and also left alone.
func Qualify(value, domain string) string {
	if domain == "" {
		return value
	}
	var at []int // insertion offsets in value
	rest := value
	for rest != "" {
		base := len(value) - len(rest)
		r, err := scan(rest, ",;")
		if err == nil {
			if p, ok := qualifyPoint(r.toks); ok {
				at = append(at, base+p)
			}
		}
		if r.n >= len(rest) {
			break
		}
		rest = rest[r.n+1:]
	}
	if len(at) == 0 {
		return value
	}
	var b strings.Builder
	prev := 0
	for _, p := range at {
		b.WriteString(value[prev:p])
		b.WriteString("@" + domain)
		prev = p
	}
	b.WriteString(value[prev:])
	return b.String()
}

// qualifyPoint finds where "@domain" goes in one address's tokens: after
// the last token of an unqualified local part.
func qualifyPoint(toks []token) (int, bool) {
	if c := groupColon(toks); c >= 0 {
		toks = toks[c+1:]
	}
	bracketed := false
	if i := indexSpecial(toks, '<'); i >= 0 {
		bracketed = true
		toks = toks[i+1 : matchAngle(toks, i)]
		for {
			k := indexSpecial(toks, '<')
			if k < 0 {
				break
			}
			toks = toks[k+1 : matchAngle(toks, k)]
		}
	}
	if len(toks) == 0 || indexSpecial(toks, '@') >= 0 {
		return 0, false
	}
	if first := strings.TrimPrefix(toks[0].text, `"`); strings.HasPrefix(first, "|") || strings.HasPrefix(first, "/") {
		return 0, false
	}
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
