package smtpd

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/status"
)

// This file reads the arguments of MAIL and RCPT: the command keyword
// ("FROM:", "TO:") and the ESMTP parameters,
//
//	arg     = keyword ":" path [ SP params ]
//	params  = *( SP keyword [ "=" value ] )
//
// The path itself is parsed by addr.ParsePath, the one SMTP path parser,
// which also gives sendmail's replies for a bad one ("553 5.0.0 <a...
// Unbalanced '<'", "prescan: token too long", control characters).

// parseCommandPath reads "FROM:<path> params" (keyword "FROM") or
// "TO:<path> params".
func parseCommandPath(arg, keyword string) (Path, []param, error) {
	p := strings.TrimLeft(arg, " \t")
	i := strings.IndexAny(p, ": \t")
	if i < 0 {
		i = len(p)
	}
	word := p[:i]
	syntax := status.New(501, "5.5.2", "Syntax error in parameters scanning \"%s\"", addr.Shorten(word))
	rest := strings.TrimLeft(p[i:], " \t")
	if !strings.EqualFold(word, keyword) || !strings.HasPrefix(rest, ":") {
		return Path{}, nil, syntax
	}
	kind := addr.Sender
	if keyword == "TO" {
		kind = addr.Recipient
	}
	a, tail, err := addr.ParsePath(rest[1:], kind)
	switch {
	case errors.Is(err, addr.ErrNoPath):
		return Path{}, nil, syntax
	case err != nil:
		return Path{Raw: a.Raw}, nil, err
	}
	return pathOf(a), parseParams(tail), nil
}

// pathOf is the envelope address of a parsed path.
func pathOf(a addr.Address) Path {
	return Path{Raw: a.Raw, Addr: a.String(), Address: a}
}

// param is one ESMTP parameter.
type param struct {
	key   string // as given
	value string
	has   bool // "=" was present
}

func parseParams(s string) []param {
	var ps []param
	for _, f := range strings.Fields(s) {
		k, v, has := strings.Cut(f, "=")
		ps = append(ps, param{key: k, value: v, has: has})
	}
	return ps
}

// errSizeInvalid and friends are SIZE= failures.
var (
	errSizeInvalid = status.New(552, "5.2.3", "Message size invalid")
	errSizeMax     = status.New(552, "5.2.3", "Message size exceeds maximum value")
)

// mailParams applies MAIL parameters to env.
func mailParams(env *Envelope, ps []param) error {
	var gotRet, gotEnvID bool
	for _, p := range ps {
		switch strings.ToUpper(p.key) {
		case "SIZE":
			n, err := parseSize(p.value)
			if err != nil {
				return err
			}
			env.Size = n
		case "BODY":
			switch v := strings.ToUpper(p.value); v {
			case "7BIT", "8BITMIME":
				env.Body = v
			default:
				return status.New(501, "5.5.4", "Unknown BODY type %s", p.value)
			}
		case "RET":
			if gotRet {
				return status.New(501, "5.5.0", "Duplicate RET parameter")
			}
			gotRet = true
			switch v := strings.ToUpper(p.value); v {
			case "FULL", "HDRS":
				env.Ret = v
			default:
				return status.New(501, "5.5.2", "Bad argument \"%s\" to RET", p.value)
			}
		case "ENVID":
			if gotEnvID {
				return status.New(501, "5.5.0", "Duplicate ENVID parameter")
			}
			gotEnvID = true
			if !p.has || p.value == "" || len(p.value) > 100 || !isXtext(p.value) {
				return status.New(501, "5.5.4", "Syntax error in ENVID parameter value")
			}
			env.EnvID = p.value
		case "AUTH":
			if !p.has || !isXtext(p.value) {
				return status.New(501, "5.5.4", "Syntax error in AUTH parameter value")
			}
			if env.Client != nil && env.Client.AuthUser != "" {
				env.Auth = xtextDecode(p.value)
			}
		case "BY":
			if !p.has || p.value == "" {
				return status.New(501, "5.5.2", "BY requires a value")
			}
			env.DeliverBy = p.value
		default:
			return status.New(555, "5.5.4", "%s parameter unrecognized", p.key)
		}
	}
	return nil
}

// parseSize reads SIZE= as sendmail's strtol does: no digits is 0.
func parseSize(v string) (int64, error) {
	digits := v
	neg := false
	if strings.HasPrefix(digits, "-") {
		neg, digits = true, digits[1:]
	} else {
		digits = strings.TrimPrefix(digits, "+")
	}
	n := 0
	for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	x, err := strconv.ParseInt(digits[:n], 10, 64)
	if errors.Is(err, strconv.ErrRange) || x == math.MaxInt64 {
		return 0, errSizeMax
	}
	if neg && x != 0 {
		return 0, errSizeInvalid
	}
	return x, nil
}

// rcptParams applies RCPT parameters to r.
func rcptParams(r *Recipient, ps []param) error {
	var gotNotify, gotORcpt bool
	for _, p := range ps {
		switch strings.ToUpper(p.key) {
		case "NOTIFY":
			if gotNotify {
				return status.New(501, "5.5.0", "Duplicate NOTIFY parameter")
			}
			gotNotify = true
			v := strings.ToUpper(p.value)
			toks := strings.Split(v, ",")
			for _, t := range toks {
				switch t {
				case "NEVER", "SUCCESS", "FAILURE", "DELAY":
				default:
					return status.New(501, "5.5.4", "Bad argument \"%s\"  to NOTIFY", t)
				}
				if t == "NEVER" && len(toks) > 1 {
					return status.New(501, "5.5.4", "Bad argument \"%s\"  to NOTIFY", t)
				}
			}
			r.Notify = v
		case "ORCPT":
			if gotORcpt {
				return status.New(501, "5.5.0", "Duplicate ORCPT parameter")
			}
			gotORcpt = true
			typ, addr, ok := strings.Cut(p.value, ";")
			if !ok || typ == "" || addr == "" || !isXtext(addr) || !isAtom(typ) {
				return status.New(501, "5.5.4", "Syntax error in ORCPT parameter value")
			}
			r.ORcpt = p.value
		default:
			return status.New(555, "5.5.4", "%s parameter unrecognized", p.key)
		}
	}
	return nil
}

// isXtext checks RFC 3461 xtext: printable ASCII without '=', '+'
// followed by two upper-case hex digits.
func isXtext(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+2 >= len(s) || !isHexUpper(s[i+1]) || !isHexUpper(s[i+2]) {
				return false
			}
			i += 2
		case c < '!' || c > '~' || c == '=':
			return false
		}
	}
	return true
}

func isHexUpper(c byte) bool { return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' }

func isAtom(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return s != ""
}

func xtextDecode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
