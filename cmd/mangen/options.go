package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/posthorn/posthorn/conf"
)

// optionEntry is one entry of man/options.txt: the names it documents and
// its description in scdoc markup.
type optionEntry struct {
	heading string // "## ..." subsection that starts before this entry
	names   []string
	text    []string
	line    int
}

// parseOptionDocs reads man/options.txt: '#' comment lines, "## Title"
// subsection headings, and entries made of a line of option names
// (separated by spaces) at the start of a line followed by their
// description, each line indented by one tab.
func parseOptionDocs(src string) ([]optionEntry, error) {
	var out []optionEntry
	heading := ""
	for n, l := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(l, "## "):
			heading = l
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "\t"):
			if len(out) == 0 {
				return nil, fmt.Errorf("options.txt:%d: description before any option name", n+1)
			}
			e := &out[len(out)-1]
			e.text = append(e.text, l)
		default:
			out = append(out, optionEntry{heading: heading, names: strings.Fields(l), line: n + 1})
			heading = ""
		}
	}
	return out, nil
}

// renderOptions writes the entries with what conf says about each option:
// its one-letter name, its default and whether it is posthorn's own. It
// fails unless the entries name every option conf honours exactly once and
// nothing else, so the page cannot drift from the table.
func renderOptions(entries []optionEntry, honoured []conf.OptionDoc) (string, error) {
	byName := map[string]conf.OptionDoc{}
	for _, o := range honoured {
		byName[o.Name] = o
	}
	seen := map[string]bool{}
	var b strings.Builder
	for _, e := range entries {
		if e.heading != "" {
			fmt.Fprintf(&b, "%s\n\n", e.heading)
		}
		if len(e.text) == 0 {
			return "", fmt.Errorf("options.txt:%d: %v has no description", e.line, e.names)
		}
		var terms, defs []string
		posthorn := false
		for _, n := range e.names {
			o, ok := byName[n]
			if !ok {
				return "", fmt.Errorf("options.txt:%d: %s is not an option posthorn interprets (conf.HonouredOptions)", e.line, n)
			}
			if seen[n] {
				return "", fmt.Errorf("options.txt:%d: %s documented twice", e.line, n)
			}
			seen[n] = true
			t := "*" + escape(n) + "*"
			if o.Short != 0 {
				t += " (*O" + escape(string(o.Short)) + "*)"
			}
			terms = append(terms, t)
			posthorn = posthorn || o.Posthorn
			switch {
			case o.Default == "" && len(e.names) == 1:
				defs = append(defs, "Not set by default.")
			case o.Default == "":
			case len(e.names) == 1:
				defs = append(defs, "Default: *"+escape(o.Default)+"*.")
			default:
				defs = append(defs, escape(strings.TrimPrefix(n, commonPrefix(e.names)))+" *"+escape(o.Default)+"*")
			}
		}
		fmt.Fprintf(&b, "%s\n", strings.Join(terms, ", "))
		for _, l := range e.text {
			fmt.Fprintf(&b, "%s\n", l)
		}
		tail := strings.Join(defs, ", ")
		if len(e.names) > 1 && tail != "" {
			tail = "Defaults: " + tail + "."
		}
		if posthorn {
			tail = strings.TrimSpace(tail + " A posthorn option: sendmail 8 does not know it.")
		}
		if tail != "" {
			fmt.Fprintf(&b, "\t%s\n", tail)
		}
		b.WriteString("\n")
	}
	var missing []string
	for _, o := range honoured {
		if !seen[o.Name] {
			missing = append(missing, o.Name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return "", fmt.Errorf("options.txt documents no entry for %s (honoured in conf/options.go)", strings.Join(missing, ", "))
	}
	return b.String(), nil
}

// commonPrefix is the part up to the last '.' that all names share
// ("Timeout."), so a group lists "queuewarn 4h" rather than the whole name.
func commonPrefix(names []string) string {
	p := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, p) {
			p = p[:len(p)-1]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i+1]
	}
	return ""
}

// renderIgnored lists the sendmail options posthorn accepts and ignores.
func renderIgnored(names []string) string {
	esc := make([]string, len(names))
	for i, n := range names {
		esc[i] = escape(n)
	}
	return strings.Join(esc, ", ") + "."
}
