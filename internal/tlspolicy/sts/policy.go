package sts

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is a policy's mode.
type Mode string

// The modes of RFC 8461 §3.2.
const (
	Enforce Mode = "enforce"
	Testing Mode = "testing"
	None    Mode = "none"
)

// MaxMaxAge is the largest max_age (about a year).
const MaxMaxAge = 31557600

// Policy is a parsed policy.
type Policy struct {
	Mode   Mode
	MX     []string // patterns, lower case, as written otherwise
	MaxAge time.Duration
	// Lines are the policy's lines as fetched, without line ends: the
	// policy-string of a TLS report (RFC 8460 §4.4).
	Lines []string
}

// ParseTXT reads the TXT records of _mta-sts.<domain> and returns the
// policy id. found is false when no record starts with "v=STSv1"; an
// error is a record that does, but is not valid, or more than one.
func ParseTXT(records []string) (id string, found bool, err error) {
	var sts []string
	for _, r := range records {
		if strings.HasPrefix(r, "v=STSv1") {
			sts = append(sts, r)
		}
	}
	switch len(sts) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, errors.New("more than one v=STSv1 TXT record")
	}
	fields := strings.Split(sts[0], ";")
	if strings.TrimRight(fields[0], " \t") != "v=STSv1" {
		return "", true, fmt.Errorf("TXT record %q: bad version field", sts[0])
	}
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-2 {
				break // the optional final ";"
			}
			return "", true, fmt.Errorf("TXT record %q: empty field", sts[0])
		}
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" || !isFieldName(name) {
			return "", true, fmt.Errorf("TXT record %q: bad field %q", sts[0], f)
		}
		if name == "id" && id == "" {
			if len(value) < 1 || len(value) > 32 || !isAlnum(value) {
				return "", true, fmt.Errorf("TXT record %q: bad id %q", sts[0], value)
			}
			id = value
		}
	}
	if id == "" {
		return "", true, fmt.Errorf("TXT record %q: no id", sts[0])
	}
	return id, true, nil
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// isFieldName is RFC 8461's sts-ext-name: letters and digits, then also
// '_', '-' and '.'.
func isFieldName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i > 0 {
			ok = ok || c == '_' || c == '-' || c == '.'
		}
		if !ok || i >= 32 {
			return false
		}
	}
	return s != ""
}

// Parse reads a policy body (see the package comment).
func Parse(body []byte) (*Policy, error) {
	p := &Policy{}
	seen := map[string]bool{}
	if bytes.IndexByte(body, 0) >= 0 {
		return nil, errors.New("policy contains NUL")
	}
	for n, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.Trim(line, " \t") == "" {
			continue // the final line end; blank lines are tolerated
		}
		p.Lines = append(p.Lines, line)
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" || !isFieldName(key) {
			return nil, fmt.Errorf("policy line %d %q: not \"key: value\"", n+1, line)
		}
		value = strings.Trim(value, " \t")
		if key != "mx" && seen[key] {
			continue
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, fmt.Errorf("policy version %q, want STSv1", value)
			}
		case "mode":
			switch Mode(value) {
			case Enforce, Testing, None:
				p.Mode = Mode(value)
			default:
				return nil, fmt.Errorf("policy mode %q", value)
			}
		case "max_age":
			if value == "" || len(value) > 10 || strings.TrimLeft(value, "0123456789") != "" {
				return nil, fmt.Errorf("policy max_age %q", value)
			}
			secs, _ := strconv.ParseInt(value, 10, 64)
			if secs > MaxMaxAge {
				return nil, fmt.Errorf("policy max_age %d above %d", secs, MaxMaxAge)
			}
			p.MaxAge = time.Duration(secs) * time.Second
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(value, "."))
			if !validPattern(pat) {
				return nil, fmt.Errorf("policy mx %q", value)
			}
			p.MX = append(p.MX, pat)
		}
	}
	switch {
	case !seen["version"]:
		return nil, errors.New("policy has no version")
	case p.Mode == "":
		return nil, errors.New("policy has no mode")
	case !seen["max_age"]:
		return nil, errors.New("policy has no max_age")
	case p.Mode != None && len(p.MX) == 0:
		return nil, errors.New("policy has no mx")
	}
	return p, nil
}

// validPattern accepts a host name, or "*." and a host name of at least
// two labels.
func validPattern(p string) bool {
	rest, wild := strings.CutPrefix(p, "*.")
	if wild && !strings.Contains(rest, ".") {
		return false
	}
	if rest == "" || len(rest) > 253 {
		return false
	}
	for _, label := range strings.Split(rest, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// Matches reports whether host (an MX name) matches one of the policy's
// mx patterns.
func (p *Policy) Matches(host string) bool {
	for _, pat := range p.MX {
		if MatchMX(pat, host) {
			return true
		}
	}
	return false
}

// MatchMX reports whether host matches one mx pattern (RFC 8461 §4.1).
func MatchMX(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, found := strings.Cut(host, ".")
		return found && label != "" && parent == rest
	}
	return pattern == host
}

// String is the policy as its lines, LF-terminated.
func (p *Policy) String() string {
	return strings.Join(p.Lines, "\n") + "\n"
}
