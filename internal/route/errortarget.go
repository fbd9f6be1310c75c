package route

import (
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// ParseErrorTarget reads the part after "error:" of an error target, as
// sendmail's error mailer takes it from aliases, the mailertable and the
// qf:
//
//	5.1.1:550 text     enhanced code, reply code, text
//	550 text           reply code and text: enhanced code <class>.0.0
//	4.2.2:text         enhanced code and text: reply 450 (4.x.x) or 550
//	text               550 5.0.0 text
//	nouser 550 text    a sysexits name first (sendmail's cf/README:
//	                   "error:nouser 550 No such user here"): its
//	                   enhanced code (nouser 5.1.1, nohost 5.1.2,
//	                   unavailable 5.0.0, tempfail 4.0.0) and, without a
//	                   reply code, 550 (tempfail: 451)
//
// A reply code decides temporary (4xx) or permanent (5xx); without one the
// enhanced code's class does. An empty text is "Unknown error".
func ParseErrorTarget(s string) *status.Error {
	s = strings.TrimSpace(s)
	enh := ""
	if i := strings.IndexByte(s, ':'); i > 0 && isDSN(s[:i]) {
		enh, s = s[:i], strings.TrimSpace(s[i+1:])
	}
	code := 0
	if enh == "" {
		word, rest, _ := strings.Cut(s, " ")
		if e, ok := exitNames[strings.ToLower(word)]; ok {
			enh, s = e.enh, strings.TrimSpace(rest)
			if i := strings.IndexByte(s, ':'); i > 0 && isDSN(s[:i]) {
				enh, s = s[:i], strings.TrimSpace(s[i+1:])
			}
			code = e.code
		}
	}
	if len(s) >= 3 && (s[0] == '4' || s[0] == '5') && isDigits(s[:3]) && (len(s) == 3 || s[3] == ' ') {
		code, _ = strconv.Atoi(s[:3])
		s = strings.TrimSpace(s[3:])
	}
	if code == 0 {
		code = 550
		if enh != "" && enh[0] == '4' {
			code = 450
		}
	}
	if enh == "" {
		enh = strconv.Itoa(code/100) + ".0.0"
	}
	if s == "" {
		s = "Unknown error"
	}
	return status.New(code, enh, "%s", s)
}

// FormatErrorTarget is the address that carries e through the queue: an
// "error:" target that ParseErrorTarget reads back as e (code, enhanced
// code and text kept, temporary stays temporary).
func FormatErrorTarget(e *status.Error) string {
	enh := e.Enhanced
	if !isDSN(enh) {
		enh = strconv.Itoa(e.Code/100) + ".0.0"
	}
	text := strings.ReplaceAll(strings.ReplaceAll(e.Text, "\r", " "), "\n", " ")
	return "error:" + enh + ":" + strconv.Itoa(e.Code) + " " + text
}

// exitNames are the sysexits names sendmail's error mailer takes as its
// host ($@ nouser): the reply and enhanced codes they stand for.
var exitNames = map[string]struct {
	code int
	enh  string
}{
	"nouser":      {550, "5.1.1"},
	"nohost":      {550, "5.1.2"},
	"unavailable": {550, "5.0.0"},
	"tempfail":    {451, "4.0.0"},
}

func isDSN(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	return isDigits(parts[1]) && isDigits(parts[2]) && len(parts[1]) <= 3 && len(parts[2]) <= 3
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
