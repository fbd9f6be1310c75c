package deliver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// smrsh's rules (sendmail 8's smrsh.c), as posthorn applies them to
// programs from a ~/.forward:
//
//   - The characters < > ^ ( ) ; $ ` CR LF, and the same bytes with the high
//     bit set (some shells strip it), are refused anywhere, and & and |
//     unless doubled: a command is a list of simple commands joined by &&
//     and ||. posthorn also refuses the backslash: it reads quotes as the
//     shell does, and a backslash would let the shell read them otherwise.
//   - The first word of each simple command is its program; a leading
//     "exec" is kept and the next word is the program ("exec" alone is
//     refused); the builtins "exit" and "echo" are allowed with any
//     arguments.
//   - The program word is reduced to its last path component and looked up
//     in the smrsh directory: "/usr/bin/procmail -f-" runs
//     "<dir>/procmail -f-". It must exist (a symlink placed there by the
//     administrator is fine), be a regular file and be executable.
//
// A word NAME=value is not an assignment to smrsh: it is the program word
// and reduced like any other, so "LD_PRELOAD=~/x.so prog" names the program
// "x.so" and is refused. A ~/.forward therefore cannot set its program's
// environment; the classic procmail line "|IFS=' ' && exec procmail" is
// refused too, as sendmail's smrsh refuses it ("|exec procmail" is the
// smrsh form).
//
// The refusals are smrsh's messages (smrsh: "x" not available for sendmail
// programs (stat failed), smrsh: cannot use ; in command, ...), and smrsh
// exits EX_UNAVAILABLE: the recipient fails permanently.

// smrshSpecials are refused anywhere (& and | only when single).
const smrshSpecials = "<|>^();&`$\r\n"

// smrshRewrite checks command against the rules and returns it with every
// program replaced by its path in dir. The error's text is smrsh's message.
func smrshRewrite(command, dir string) (string, error) {
	for i := 0; i < len(command); i++ {
		c := command[i]
		switch {
		case c&0x7f == '\\':
			return "", fmt.Errorf("smrsh: cannot use %c in command", c)
		case (c&0x7f == '&' || c&0x7f == '|') && c < 0x80:
			if i+1 < len(command) && command[i+1] == c {
				i++
				continue
			}
			return "", fmt.Errorf("smrsh: cannot use %c in command", c)
		case strings.IndexByte(smrshSpecials, c&0x7f) >= 0:
			return "", fmt.Errorf("smrsh: cannot use %c in command", c)
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
					return nil, errors.New("smrsh: unbalanced quote in command")
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
		return "", errors.New("smrsh: no program in command")
	}
	i := 0
	if unquote(seg[words[0].start:words[0].end]) == "exec" {
		if len(words) == 1 {
			return "", errors.New("smrsh: missing command to exec")
		}
		i = 1
	}
	w := words[i]
	text := unquote(seg[w.start:w.end])
	if text == "exit" || text == "echo" {
		return seg, nil
	}
	full, err := smrshProgram(text, dir)
	if err != nil {
		return "", err
	}
	if needsShellQuoting(full) {
		full = "'" + strings.ReplaceAll(full, "'", `'\''`) + "'"
	}
	return seg[:w.start] + full + seg[w.end:], nil
}

// smrshProgram finds the program word's last component in dir, with
// smrsh's checks and messages.
func smrshProgram(text, dir string) (string, error) {
	name := text
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	if name == "" || name == "." || name == ".." {
		return "", fmt.Errorf("smrsh: %q not available for sendmail programs (not a file)", name)
	}
	full := filepath.Join(dir, name)
	fi, err := os.Stat(full)
	switch {
	case err != nil:
		return "", fmt.Errorf("smrsh: %q not available for sendmail programs (stat failed)", name)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("smrsh: %q not available for sendmail programs (not a file)", name)
	case unix.Access(full, unix.X_OK) != nil || fi.Mode()&0o111 == 0:
		return "", fmt.Errorf("smrsh: %q not available for sendmail programs", name)
	}
	return full, nil
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
