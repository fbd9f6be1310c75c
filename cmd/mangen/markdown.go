package main

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// readmeSection returns the body of the level-two section titled title
// ("## title" up to the next "## " heading) of a Markdown document.
func readmeSection(md, title string) (string, error) {
	lines := strings.Split(md, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "## "+title {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return "", fmt.Errorf("README has no section %q", title)
	}
	end := len(lines)
	for i := start; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "## ") {
			end = i
			break
		}
	}
	return strings.Join(lines[start:end], "\n"), nil
}

// markdownToScdoc converts the Markdown the README uses into scdoc:
// paragraphs (joined into one line each), pipe tables (each row becomes a
// term in bold with its other cells, indented, below it), fenced code
// blocks and "- " lists. Inline `code` becomes bold; scdoc's markup
// characters in the text are escaped. Any other block is an error, so a
// README change the page could not carry fails the build instead of
// garbling the page.
func markdownToScdoc(body string) (string, error) {
	var out []string
	lines := strings.Split(body, "\n")
	for i := 0; i < len(lines); {
		l := strings.TrimRight(lines[i], " \t")
		switch {
		case l == "":
			i++
		case strings.HasPrefix(l, "```"):
			out = append(out, "```")
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				out = append(out, "  "+lines[i]) // scdoc wants literal lines indented like the fence
			}
			out = append(out, "```", "")
			i++
		case strings.HasPrefix(l, "|"):
			var rows [][]string
			for ; i < len(lines) && strings.HasPrefix(strings.TrimSpace(lines[i]), "|"); i++ {
				rows = append(rows, tableCells(lines[i]))
			}
			items, err := tableToScdoc(rows)
			if err != nil {
				return "", err
			}
			out = append(out, items...)
		case strings.HasPrefix(l, "#"):
			return "", fmt.Errorf("a heading inside the section cannot go into a man page: %q", l)
		case strings.HasPrefix(l, "- "):
			for ; i < len(lines) && strings.HasPrefix(lines[i], "- "); i++ {
				item := strings.TrimPrefix(lines[i], "- ")
				for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "  ") {
					i++
					item += " " + strings.TrimSpace(lines[i])
				}
				out = append(out, "- "+inline(item))
			}
			out = append(out, "")
		default:
			var para []string
			for ; i < len(lines) && strings.TrimSpace(lines[i]) != "" && !strings.HasPrefix(lines[i], "|") && !strings.HasPrefix(lines[i], "```"); i++ {
				para = append(para, strings.TrimSpace(lines[i]))
			}
			out = append(out, inline(strings.Join(para, " ")), "")
		}
	}
	for _, l := range out {
		// scdoc passes a line starting with '.' to troff as a request,
		// which drops it.
		if strings.HasPrefix(l, ".") {
			return "", fmt.Errorf("a line would start with '.': %q", l)
		}
	}
	return strings.Join(out, "\n"), nil
}

// tableCells splits one row of a pipe table; `\|` is a literal bar.
func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			cur.WriteString(`\|`) // resolved by inline
			i++
		case row[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(row[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// tableToScdoc renders a table whose first row names the columns: the
// first cell of each row is the term, the second its description, and
// each further cell is appended as "<Column>: <cell>." unless it only says
// the thing works.
func tableToScdoc(rows [][]string) ([]string, error) {
	if len(rows) < 2 || !isSeparator(rows[1]) {
		return nil, fmt.Errorf("a table without a header row: %q", rows)
	}
	header := rows[0]
	var out []string
	for _, r := range rows[2:] {
		if len(r) != len(header) {
			return nil, fmt.Errorf("table row with %d cells, header has %d: %q", len(r), len(header), r)
		}
		desc := sentence(r[1])
		for c := 2; c < len(r); c++ {
			if v := strings.TrimSpace(r[c]); v != "" && v != "works" && v != "work" {
				desc += " " + sentence(capitalize(header[c])+": "+v)
			}
		}
		out = append(out, inline(r[0]), "\t"+inline(desc), "")
	}
	return out, nil
}

func isSeparator(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, "-: ") != "" {
			return false
		}
	}
	return true
}

// sentence capitalises s and ends it with a full stop.
func sentence(s string) string {
	s = capitalize(strings.TrimSpace(s))
	if s != "" && !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

func capitalize(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || s[0] == '`' {
		return s
	}
	return string(unicode.ToUpper(r)) + s[n:]
}

// inline converts Markdown inline markup to scdoc: `code` and **strong**
// become bold, Markdown's backslash escapes are resolved, and the
// characters scdoc treats as markup are escaped everywhere else.
func inline(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '`':
			end := strings.IndexByte(s[i+1:], '`')
			if end < 0 {
				b.WriteString(escape(s[i:]))
				return b.String()
			}
			code := strings.ReplaceAll(s[i+1:i+1+end], `\|`, "|")
			b.WriteString("*" + escape(code) + "*")
			i += end + 1
		case c == '*' && strings.HasPrefix(s[i:], "**"):
			end := strings.Index(s[i+2:], "**")
			if end < 0 {
				b.WriteString(escape(s[i:]))
				return b.String()
			}
			b.WriteString("*" + escape(s[i+2:i+2+end]) + "*")
			i += end + 3
		case c == '\\' && i+1 < len(s) && strings.IndexByte("|*_`\\[]()#", s[i+1]) >= 0:
			b.WriteString(escape(s[i+1 : i+2]))
			i++
		default:
			b.WriteString(escape(s[i : i+1]))
		}
	}
	return b.String()
}

// escape makes text literal for scdoc.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `*`, `\*`, `_`, `\_`).Replace(s)
}
