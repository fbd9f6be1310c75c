package conf

import (
	"fmt"
	"strings"

	"github.com/posthorn/posthorn/internal/sysexits"
)

// cfLine is one logical line of a cf file: continuation lines joined with
// a newline, as sendmail keeps them (multi-line header definitions).
type cfLine struct {
	num  int
	text string
}

func splitLines(data []byte) []cfLine {
	var out []cfLine
	for i, raw := range strings.Split(string(data), "\n") {
		raw = strings.TrimSuffix(raw, "\r")
		if raw != "" && (raw[0] == ' ' || raw[0] == '\t') {
			if strings.TrimSpace(raw) == "" {
				continue
			}
			if n := len(out); n > 0 && !strings.HasPrefix(out[n-1].text, "#") {
				out[n-1].text += "\n" + raw
				continue
			}
			continue // a continuation of a comment or of nothing
		}
		out = append(out, cfLine{num: i + 1, text: raw})
	}
	return out
}

// lineKinds names the cf line kinds posthorn reads but does not interpret.
var lineKinds = map[byte]string{
	'R': "rewriting rules (R)", 'S': "rulesets (S)", 'M': "mailer definitions (M)",
	'K': "map definitions (K)", 'H': "header definitions (H)", 'P': "precedences (P)",
	'V': "version level (V)", 'E': "environment (E)", 'L': "L lines", 'Q': "queue groups (Q)",
}

func (c *Config) parse(path string, data []byte, readFile func(string) ([]byte, error)) error {
	counts := map[byte]int{}
	ruleset := "" // the S line the R lines belong to
	for _, l := range splitLines(data) {
		if l.text == "" || l.text[0] == '#' {
			continue
		}
		where := fmt.Sprintf("%s: line %d", path, l.num)
		kind, rest := l.text[0], l.text[1:]
		switch kind {
		case 'O':
			if err := c.parseOptionLine(rest, where); err != nil {
				return err
			}
		case 'D':
			name, value := macroName(rest)
			if name == "" {
				return &Error{Msg: where + ": invalid macro definition", Exit: sysexits.Config}
			}
			c.Macros[name] = value
		case 'C':
			name, value := macroName(rest)
			if name == "" {
				return &Error{Msg: where + ": invalid class definition", Exit: sysexits.Config}
			}
			c.AddClass(name, strings.Fields(value)...)
		case 'F':
			if err := c.parseFileClass(rest, where, readFile); err != nil {
				return err
			}
		case 'T':
			c.TrustedUsers = append(c.TrustedUsers, strings.Fields(rest)...)
		case 'M':
			if m := parseMailer(rest); m != nil {
				if c.Mailers == nil {
					c.Mailers = map[string]*Mailer{}
				}
				c.Mailers[m.Name] = m
			}
			counts[kind]++
		case 'K':
			if m := parseMap(rest); m != nil {
				if c.Maps == nil {
					c.Maps = map[string]*MapDef{}
				}
				c.Maps[m.Name] = m
			}
			counts[kind]++
		case 'S':
			ruleset, _, _ = strings.Cut(strings.TrimSpace(rest), "=")
			counts[kind]++
		case 'R':
			// FEATURE(ldap_routing)'s "bounce" argument exists only as a
			// rule of the LDAPExpand ruleset.
			if ruleset == "LDAPExpand" && strings.Contains(rest, "nouser") {
				c.LDAPRoutingBounce = true
			}
			counts[kind]++
		case 'X':
			c.MailFilters = append(c.MailFilters, strings.TrimSpace(strings.ReplaceAll(rest, "\n", " ")))
		default:
			if _, ok := lineKinds[kind]; !ok {
				return &Error{Msg: fmt.Sprintf("%s: unknown control line \"%s\"", where, firstLine(l.text)), Exit: sysexits.Config}
			}
			counts[kind]++
		}
	}
	for _, k := range "RSMKHPVELQ" {
		if n := counts[byte(k)]; n > 0 {
			c.noteNotInterpreted(fmt.Sprintf("%d %s", n, lineKinds[byte(k)]))
		}
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (c *Config) parseOptionLine(rest, where string) error {
	if rest == "" {
		return &Error{Msg: where + ": readcf: null option name", Exit: sysexits.Config}
	}
	if rest[0] != ' ' && rest[0] != '\t' {
		// One-letter form: Oxvalue.
		long, ok := shortOptions[rest[0]]
		if !ok {
			return &Error{Msg: fmt.Sprintf("%s: readcf: unknown option name 0x%x", where, rest[0]), Exit: sysexits.Config}
		}
		return c.setOption(long, strings.TrimSpace(rest[1:]), where)
	}
	name, value, _ := strings.Cut(strings.TrimSpace(rest), "=")
	name = strings.TrimSpace(name)
	// Continuation lines of an option value are joined with a space.
	value = strings.TrimSpace(strings.ReplaceAll(value, "\n", " "))
	return c.setOption(name, value, where)
}

// macroName splits "x value" or "{name}value" after a D or C.
func macroName(s string) (name, value string) {
	if s == "" {
		return "", ""
	}
	if s[0] == '{' {
		end := strings.IndexByte(s, '}')
		if end < 2 {
			return "", ""
		}
		return s[1:end], s[end+1:]
	}
	return s[:1], s[1:]
}

// parseFileClass reads "Fx[-o] /path [scanf]".
func (c *Config) parseFileClass(rest, where string, readFile func(string) ([]byte, error)) error {
	name, spec := macroName(rest)
	if name == "" {
		return &Error{Msg: where + ": invalid file class definition", Exit: sysexits.Config}
	}
	fields := strings.Fields(spec)
	optional := false
	if len(fields) > 0 && fields[0] == "-o" {
		optional, fields = true, fields[1:]
	}
	if len(fields) == 0 {
		return &Error{Msg: where + ": file class without a file name", Exit: sysexits.Config}
	}
	path, format := fields[0], strings.Join(fields[1:], " ")
	if strings.HasPrefix(path, "|") || strings.HasPrefix(path, "@") {
		c.noteNotInterpreted("program or map file classes (F" + name + ")")
		return nil
	}
	data, err := readFile(path)
	if err != nil {
		if !optional {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: fileclass: cannot open '%s': %s", where, path, ErrnoText(err)))
		}
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch format {
		case "%[^\\#]", "%[^#]":
			line, _, _ = strings.Cut(line, "#")
		case "%s":
			if f := strings.Fields(line); len(f) > 0 {
				line = f[0]
			}
		default:
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				continue
			}
		}
		c.AddClass(name, strings.Fields(line)...)
	}
	return nil
}
