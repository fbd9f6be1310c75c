package addr

import (
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// Limits of sendmail's prescan (conf.h). A single token longer than MaxToken
// is refused with "prescan: token too long"; more than MaxTokens tokens with
// "prescan: too many tokens"; an address longer than MaxAddress bytes with
// "Address too long".
const (
	MaxToken   = 256  // MAXNAME
	MaxTokens  = 1000 // MAXATOM (8.17's conf.h; older versions had 100)
	MaxAddress = 2043 // the prescan buffer less its reserve
)

// maxShort is sendmail's MAXSHORTSTR: the longest address echoed whole in
// a reply or a DSN line.
const maxShort = 203

// Shorten abbreviates s the way sendmail's shortenstring does before an
// address is echoed in a reply, a log line or a DSN: strings of 203 bytes or
// more keep their first and last 100 bytes around "...".
func Shorten(s string) string {
	if len(s) < maxShort {
		return s
	}
	m := (maxShort - 3) / 2
	return s[:m] + "..." + s[len(s)-m:]
}

type tokKind uint8

const (
	tWord    tokKind = iota // an atom
	tQuoted                 // a quoted string, quotes included
	tSpecial                // one operator or delimiter character
)

// token is one lexical unit of an address, as prescan splits it.
type token struct {
	kind  tokKind
	text  string
	pos   int  // byte offset of text in the scanned string
	space bool // white space or a comment came before it
}

func (t token) is(c byte) bool { return t.kind == tSpecial && t.text[0] == c }

// specials are the characters that stand alone as tokens: RFC 5322
// specials plus sendmail's operator class $o (".:%@!^/[]+").
const specials = "@,:;.<>[]%!^/+"

// scanResult is what scan found in one address.
type scanResult struct {
	toks     []token
	comments []string
	n        int // bytes of input consumed, delimiter excluded
}

// scan splits s into tokens up to the first byte from delims found outside
// quotes, comments and angle brackets (delims "" scans everything). The
// error, if any, is a 553 reply naming the address as written.
func scan(s, delims string) (scanResult, error) {
	var (
		r        scanResult
		word     strings.Builder
		inWord   bool
		wordPos  int
		space    bool
		angle    int
		firstErr string
	)
	fail := func(msg string) {
		if firstErr == "" {
			firstErr = msg
		}
	}
	flush := func() {
		if inWord {
			r.toks = append(r.toks, token{kind: tWord, text: word.String(), pos: wordPos, space: space})
			word.Reset()
			inWord, space = false, false
		}
	}
	i := 0
	for i < len(s) {
		c := s[i]
		if angle == 0 && strings.IndexByte(delims, c) >= 0 {
			break
		}
		switch {
		case c == '\\':
			if !inWord {
				inWord, wordPos = true, i
			}
			word.WriteByte(c)
			if i+1 < len(s) {
				i++
				word.WriteByte(s[i])
			}
			i++
		case c == '"':
			flush()
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' && j+1 < len(s) {
					j++
				}
				j++
			}
			if j >= len(s) {
				fail("Unbalanced '\"'")
				r.toks = append(r.toks, token{kind: tQuoted, text: s[i:], pos: i, space: space})
				i = len(s)
			} else {
				r.toks = append(r.toks, token{kind: tQuoted, text: s[i : j+1], pos: i, space: space})
				i = j + 1
			}
			space = false
		case c == '(':
			flush()
			depth, j := 1, i+1
			for j < len(s) && depth > 0 {
				switch s[j] {
				case '\\':
					j++
				case '(':
					depth++
				case ')':
					depth--
				}
				j++
			}
			if depth > 0 {
				fail("Unbalanced '('")
				j = len(s)
				r.comments = append(r.comments, s[i+1:])
			} else {
				r.comments = append(r.comments, s[i+1:j-1])
			}
			i = j
			space = true
		case c == ')':
			fail("Unbalanced ')'")
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f':
			flush()
			space = true
			i++
		case strings.IndexByte(specials, c) >= 0:
			flush()
			if c == '<' {
				angle++
			} else if c == '>' {
				if angle == 0 {
					fail("Unbalanced '>'")
					i++
					continue
				}
				angle--
			}
			r.toks = append(r.toks, token{kind: tSpecial, text: s[i : i+1], pos: i, space: space})
			space = false
			i++
		default:
			if !inWord {
				inWord, wordPos = true, i
			}
			word.WriteByte(c)
			i++
		}
	}
	flush()
	r.n = i
	raw := strings.TrimSpace(s[:i])
	if angle > 0 {
		fail("Unbalanced '<'")
	}
	if firstErr != "" {
		return r, status.New(553, "5.0.0", "%s... %s", Shorten(raw), firstErr)
	}
	if len(raw) > MaxAddress {
		return r, status.New(553, "5.1.1", "%s... Address too long", Shorten(raw))
	}
	if len(r.toks) > MaxTokens {
		return r, status.New(553, "5.1.0", "%s... prescan: too many tokens", Shorten(raw))
	}
	for _, t := range r.toks {
		if len(t.text) > MaxToken {
			return r, status.New(553, "5.1.0", "%s... prescan: token too long", Shorten(raw))
		}
	}
	return r, nil
}
