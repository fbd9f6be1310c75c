package aliases

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Entry is one alias as it is stored in the database.
type Entry struct {
	Name  string // lower-cased key
	Value string // right-hand side, continuation lines joined
	Line  int    // line number of the entry's last line
}

// Diag is a message about the aliases file, printed by newaliases as
// "<file>: line <n>: <text>".
type Diag struct {
	Line    int
	Text    string
	Warning bool // a warning does not change newaliases' exit status
}

// Format renders d as sendmail prints it.
func (d Diag) Format(file string) string {
	return fmt.Sprintf("%s: line %d: %s", file, d.Line, d.Text)
}

// Parsed is the result of reading an aliases file.
type Parsed struct {
	Entries []Entry // in file order; a later duplicate overrides an earlier one
	Diags   []Diag  // errors and warnings in file order
}

// Errors reports whether any diagnostic is an error (not a warning).
func (p *Parsed) Errors() bool {
	for _, d := range p.Diags {
		if !d.Warning {
			return true
		}
	}
	return false
}

// Map returns the entries as a lookup table (last value wins).
func (p *Parsed) Map() StaticMap {
	m := make(StaticMap, len(p.Entries))
	for _, e := range p.Entries {
		m[e.Name] = e.Value
	}
	return m
}

// maxLine bounds one logical line (an entry with its continuations), so a
// hostile or broken file cannot make newaliases hold it all in memory.
const maxLine = 64 * 1024

// Parse reads an aliases file. isLocal reports whether a domain is one of
// this host's names ($=w); nil means none is. The returned error is only an
// I/O error; syntax problems are in Parsed.Diags.
func Parse(r io.Reader, isLocal func(domain string) bool) (*Parsed, error) {
	lr := newLineReader(r)
	p := &Parsed{}
	seen := make(map[string]bool)
	skipping := false
	for {
		line, ok, err := lr.logical()
		if err != nil {
			return p, err
		}
		if !ok {
			return p, nil
		}
		errf := func(format string, args ...any) {
			p.Diags = append(p.Diags, Diag{Line: lr.n, Text: fmt.Sprintf(format, args...)})
		}
		if len(line) > maxLine {
			errf("alias line too long")
			skipping = true
			continue
		}
		switch {
		case line == "" || line[0] == '#':
			skipping = false
			continue
		case line[0] == ' ' || line[0] == '\t':
			if !skipping {
				errf("Non-continuation line starts with space")
			}
			skipping = true
			continue
		}
		skipping = false
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			errf("missing colon")
			continue
		}
		lhs := strings.TrimSpace(line[:colon])
		rhs := line[colon+1:]
		full := line // sendmail's messages quote the entry as read
		tooLong := false
		for lr.continues() {
			more, _, err := lr.logical()
			if err != nil {
				return p, err
			}
			if len(rhs)+len(more) > maxLine {
				tooLong = true
				continue
			}
			rhs += more
			full += more
		}
		if tooLong {
			errf("alias too long")
			continue
		}
		rhs = strings.TrimLeft(rhs, " \t\r\n\v\f")
		key, kerr := aliasKey(lhs, full, isLocal)
		if kerr != "" {
			errf("%s", kerr)
			continue
		}
		if strings.TrimSpace(rhs) == "" {
			errf("%.40s... missing value for alias", full)
			continue
		}
		if seen[key] {
			p.Diags = append(p.Diags, Diag{Line: lr.n, Warning: true,
				Text: fmt.Sprintf("%s... Warning: duplicate alias name %s", key, key)})
		}
		seen[key] = true
		p.Entries = append(p.Entries, Entry{Name: key, Value: rhs, Line: lr.n})
	}
}

// aliasKey turns the left-hand side into the stored key, or returns the
// error text.
func aliasKey(lhs, full string, isLocal func(string) bool) (key, errText string) {
	a, perr := parseAddress(lhs)
	if perr != nil || a.addr == "" {
		return "", fmt.Sprintf("%.40s... illegal alias name", full)
	}
	local, domain, hasDomain := splitDomain(a.addr)
	if hasDomain {
		if isLocal == nil || !isLocal(domain) {
			return "", fmt.Sprintf("%s... cannot alias non-local names", lhs)
		}
		if local == "" {
			return "", fmt.Sprintf("%.40s... illegal alias name", full)
		}
		return strings.ToLower(local), ""
	}
	return strings.ToLower(a.addr), ""
}

// lineReader yields physical lines joined by backslash-newline, counting
// line numbers as sendmail does, and can peek at the next line's first byte.
type lineReader struct {
	br *bufio.Reader
	n  int // number of the last line read
}

func newLineReader(r io.Reader) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 8192)}
}

// physical reads one line without its newline. ok is false at EOF.
func (lr *lineReader) physical() (string, bool, error) {
	var b strings.Builder
	for {
		chunk, err := lr.br.ReadSlice('\n')
		if b.Len() <= maxLine+1 {
			b.Write(chunk)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if b.Len() == 0 {
				return "", false, nil
			}
			lr.n++
			return b.String(), true, nil
		}
		if err != nil {
			return "", false, err
		}
		lr.n++
		// A CRLF file (edited on another system) must not leave a CR in
		// every value: it would become part of the last address.
		s := strings.TrimSuffix(b.String()[:b.Len()-1], "\r")
		return s, true, nil
	}
}

// logical reads a line, joining the next one when it ends in a backslash.
func (lr *lineReader) logical() (string, bool, error) {
	line, ok, err := lr.physical()
	if !ok || err != nil {
		return line, ok, err
	}
	for strings.HasSuffix(line, "\\") && len(line) <= maxLine {
		more, ok, err := lr.physical()
		if err != nil {
			return "", false, err
		}
		if !ok {
			break
		}
		line = line[:len(line)-1] + more
	}
	return line, true, nil
}

// continues reports whether the next line starts with a space or TAB.
func (lr *lineReader) continues() bool {
	b, err := lr.br.Peek(1)
	return err == nil && (b[0] == ' ' || b[0] == '\t')
}
