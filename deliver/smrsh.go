package deliver

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// smrsh's rules, as posthorn applies them to programs from a ~/.forward:
//
//   - The characters < > ^ ( ) ; $ ` { } \ CR LF are refused anywhere, and
//     & and | unless doubled: a command is a list of simple commands joined
//     by && and ||.
//   - In each simple command, a leading "exec" and leading NAME=value
//     assignments are allowed; the builtin "exit N" is allowed.
//   - The program's directory is dropped and its name looked up in the smrsh
//     directory: "/usr/bin/procmail -f-" runs "<dir>/procmail -f-". It must
//     be there (a symlink placed there by the administrator is fine) and be
//     executable; otherwise "<name> not available for sendmail programs".
//
// So the classic procmail line
//
//	"|IFS=' ' && exec /usr/bin/procmail -f- || exit 75 #user"
//
// is accepted (the # comment included), while "|/bin/sh -c ..." is not,
// unless the administrator put sh into the directory.

// smrshRewrite checks command against the rules and returns it with every
// program replaced by its path in dir.
func smrshRewrite(command, dir string) (string, error) {
	for i := 0; i < len(command); i++ {
		c := command[i]
		switch {
		case strings.IndexByte("<>^();$`{}\\\r\n", c) >= 0:
			return "", fmt.Errorf("cannot use %c in command", c)
		case c == '&' || c == '|':
			if i+1 < len(command) && command[i+1] == c {
				i++
				continue
			}
			return "", fmt.Errorf("cannot use %c in command", c)
		}
	}
	var out strings.Builder
	rest := command
	for {
		seg, op, tail := cutOperator(rest)
		fixed, err := smrshSimple(seg, dir)
		if err != nil {
			return "", err
		}
		out.WriteString(fixed)
		if op == "" {
			return out.String(), nil
		}
		out.WriteString(op)
		rest = tail
	}
}

// cutOperator splits at the first && or || outside quotes.
func cutOperator(s string) (seg, op, rest string) {
	var quote byte
	for i := 0; i+1 < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return s, "", "" // the rest is a comment
		case (c == '&' || c == '|') && s[i+1] == c:
			return s[:i], s[i : i+2], s[i+2:]
		}
	}
	return s, "", ""
}

// word is one shell word of a simple command, as a byte range.
type word struct{ start, end int }

// splitWords splits a simple command into words, honouring quotes and
// stopping at a # comment.
func splitWords(s string) ([]word, error) {
	var words []word
	i := 0
	for i < len(s) {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i >= len(s) || s[i] == '#' {
			break
		}
		start := i
		for i < len(s) && s[i] != ' ' && s[i] != '\t' {
			if q := s[i]; q == '\'' || q == '"' {
				j := strings.IndexByte(s[i+1:], q)
				if j < 0 {
					return nil, errors.New("unbalanced quote in command")
				}
				i += j + 2
				continue
			}
			i++
		}
		words = append(words, word{start, i})
	}
	return words, nil
}

func unquote(w string) string {
	return strings.NewReplacer(`'`, "", `"`, "").Replace(w)
}

// smrshSimple checks one simple command and rewrites its program word.
func smrshSimple(seg, dir string) (string, error) {
	words, err := splitWords(seg)
	if err != nil {
		return "", err
	}
	if len(words) == 0 {
		return "", errors.New("no program in command")
	}
	for _, w := range words {
		text := unquote(seg[w.start:w.end])
		if text == "exec" || isAssignment(seg[w.start:w.end]) {
			continue
		}
		if text == "exit" {
			return seg, nil
		}
		name := path.Base(text)
		if name == "/" || name == "." || name == ".." || name == "" {
			return "", fmt.Errorf("%s not available for sendmail programs", text)
		}
		full := filepath.Join(dir, name)
		fi, err := os.Stat(full)
		if err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%s not available for sendmail programs", name)
		}
		if needsShellQuoting(full) {
			full = "'" + strings.ReplaceAll(full, "'", `'\''`) + "'"
		}
		return seg[:w.start] + full + seg[w.end:], nil
	}
	return seg, nil // only assignments, such as procmail's IFS=' '
}

// isAssignment reports whether a word is NAME=value.
func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func needsShellQuoting(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-_./,:@+%=", c) >= 0) {
			return true
		}
	}
	return false
}
