package queue

import (
	"strconv"
	"strings"
	"time"
)

// Marshal returns the qf file for j, in the order sendmail writes it. A job
// read with Parse from a file sendmail wrote comes back byte for byte.
// Newlines inside envelope values that would start a new line are turned
// into spaces (inside headers into a folded TAB continuation), so a value
// can never inject a line of its own.
func Marshal(j *Job) []byte {
	b := make([]byte, 0, 1024)
	v := j.Version
	if v == 0 {
		v = Version
	}
	b = append(b, 'V')
	b = strconv.AppendInt(b, int64(v), 10)
	b = append(b, '\n', 'T')
	b = strconv.AppendInt(b, epoch(j.Created), 10)
	b = append(b, '\n', 'K')
	b = strconv.AppendInt(b, epoch(j.LastTry), 10)
	b = append(b, '\n', 'N')
	b = strconv.AppendInt(b, int64(j.Attempts), 10)
	b = append(b, '\n', 'P')
	b = strconv.AppendInt(b, j.Priority, 10)
	b = append(b, '\n')
	b = line(b, 'd', j.DataDir, false)
	b = line(b, 'I', j.DataInode, false)
	b = line(b, 'B', j.BodyType, false)
	b = line(b, 'q', j.Quarantine, false)
	b = line(b, 'M', j.Message, false)
	b = line(b, 'F', j.Flags, false)
	for _, m := range j.Macros {
		b = append(b, '$')
		b = appendClean(b, m.Name+m.Value, false)
		b = append(b, '\n')
	}
	b = append(b, 'S')
	b = appendClean(b, j.Sender, false)
	b = append(b, '\n')
	b = line(b, 'Z', j.EnvID, false)
	b = line(b, 'A', j.Auth, false)
	b = line(b, '!', j.DeliverBy, false)
	for _, e := range j.Extra {
		b = appendClean(b, e, false)
		b = append(b, '\n')
	}
	ctl := ""
	for i := range j.Recipients {
		r := &j.Recipients[i]
		for _, e := range r.Extra {
			b = appendClean(b, e, false)
			b = append(b, '\n')
		}
		b = line(b, 'M', r.Message, false)
		if r.Ctl != ctl {
			b = append(b, 'C')
			b = appendClean(b, r.Ctl, false)
			b = append(b, '\n')
			ctl = r.Ctl
		}
		b = line(b, 'Q', r.ORcpt, false)
		b = line(b, 'r', r.FinalRcpt, false)
		b = append(b, 'R')
		if v >= 1 {
			b = appendClean(b, strings.ReplaceAll(r.Flags, ":", ""), false)
			b = append(b, ':')
		}
		b = appendClean(b, r.Addr, false)
		b = append(b, '\n')
	}
	for _, e := range j.Trailer {
		b = appendClean(b, e, false)
		b = append(b, '\n')
	}
	for _, h := range j.Headers {
		b = append(b, 'H')
		if h.HasCond {
			b = append(b, '?')
			b = appendClean(b, strings.ReplaceAll(h.Cond, "?", ""), false)
			b = append(b, '?')
		}
		b = appendClean(b, strings.ReplaceAll(h.Name, ":", ""), false)
		b = append(b, ':')
		b = appendClean(b, h.Value, true)
		b = append(b, '\n')
	}
	return append(b, '.', '\n')
}

// line appends "<c><value>\n" when value is not empty.
func line(b []byte, c byte, value string, header bool) []byte {
	if value == "" {
		return b
	}
	b = append(b, c)
	b = appendClean(b, value, header)
	return append(b, '\n')
}

// appendClean appends s, keeping "\n" only where it starts a continuation
// line (followed by a space or TAB). Elsewhere a newline becomes a space
// (envelope) or "\n\t" (header), so the result is always one logical line.
func appendClean(b []byte, s string, header bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\n' {
			b = append(b, c)
			continue
		}
		if i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t') {
			b = append(b, '\n')
		} else if header && i+1 < len(s) {
			b = append(b, '\n', '\t')
		} else {
			b = append(b, ' ')
		}
	}
	return b
}

// epoch gives the seconds written for t; only the zero Time (never set) is
// written as 0, so every time read from a file is written back the same.
func epoch(t time.Time) int64 {
	if t == (time.Time{}) {
		return 0
	}
	return t.Unix()
}
