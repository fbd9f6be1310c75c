package conf

import (
	"strings"
)

// Mailer is one mailer definition (an M line), as written:
//
//	Mlocal, P=[IPC], F=lsDFMAw5:/|@qPSXmnz9, S=EnvFromSMTP/HdrFromL,
//		R=EnvToL/HdrToL, T=DNS/RFC822/SMTP, A=TCP 127.0.0.1 24
//
// The name ends at the first comma or white space; the fields are
// "letter=value" separated by commas (sendmail looks only at the
// letter: "Path=" is P=). posthorn acts on the local mailer's P=, F= and
// A= (see package mta); the rest is kept for -d0 and reported as not
// interpreted with the other M lines.
type Mailer struct {
	Name   string
	Path   string          // P=: a program, or "[IPC]" for a socket
	Flags  string          // F=
	Args   []string        // A=, split at white space
	Fields map[byte]string // every field by its letter, as written
}

// HasFlag reports whether F= contains f.
func (m *Mailer) HasFlag(f byte) bool { return strings.IndexByte(m.Flags, f) >= 0 }

// parseMailer reads the text of an M line after the M. It returns nil
// for a line without a name.
func parseMailer(s string) *Mailer {
	s = strings.ReplaceAll(s, "\n", " ")
	end := strings.IndexAny(s, ", \t")
	if end < 0 {
		end = len(s)
	}
	m := &Mailer{Name: s[:end], Fields: map[byte]string{}}
	if m.Name == "" {
		return nil
	}
	for _, f := range strings.Split(s[end:], ",") {
		f = strings.TrimSpace(f)
		key, val, ok := strings.Cut(f, "=")
		if !ok || key == "" {
			continue
		}
		m.Fields[key[0]] = strings.TrimSpace(val)
	}
	m.Path = m.Fields['P']
	m.Flags = m.Fields['F']
	m.Args = strings.Fields(m.Fields['A'])
	return m
}

// MapDef is one map definition (a K line): "Kname class args".
type MapDef struct {
	Name, Class, Args string
}

// parseMap reads the text of a K line after the K.
func parseMap(s string) *MapDef {
	f := strings.Fields(strings.ReplaceAll(s, "\n", " "))
	if len(f) < 2 {
		return nil
	}
	return &MapDef{Name: f[0], Class: f[1], Args: strings.Join(f[2:], " ")}
}
