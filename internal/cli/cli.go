// Package cli turns sendmail 8's command line into a typed Invocation.
//
// sendmail's syntax predates GNU conventions: single-letter flags whose
// arguments may be attached or separate (`-fuser@host`, `-f user@host`),
// modes spelled as a flag plus a letter (`-bd`, `-bp`), options that take an
// optional argument only when attached (`-q`, `-q30m`, `-d`, `-d0.1`), and
// flags combined in one word (`-ti`). Parsing stops at the first argument
// that is not a flag: everything after it is a recipient. The option string
// is sendmail 8.17's:
//
//	A:B:b:C:cD:d:e:F:f:Gh:IiL:M:mN:nO:o:p:Q:q:R:r:sTtV:vX:
//
// A getopt-style pre-pass tokenises argv with exactly those rules (including
// sendmail's own fix-ups: a lone `-q` means "run once", a lone `-d` means
// `-d0-99.1`, and `-q`'s argument may be the next word when that word does
// not start with '-'). It then hands pflag a normalised argv of long flags
// named after the letters (`--b=d`, `--O=Timeout.queuewarn=1h`), so value
// typing and repetition are pflag's job. The result is validated into an
// Invocation; usage errors carry sendmail's wording and exit 64.
package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/posthorn/posthorn/internal/sysexits"
)

// optionLetters is sendmail 8.17's getopt string; a colon marks a letter that
// takes an argument.
const optionLetters = "A:B:b:C:cD:d:e:F:f:Gh:IiL:M:mN:nO:o:p:Q:q:R:r:sTtV:vX:"

// UsageError is a command-line error with the message sendmail prints and the
// sysexits code it exits with.
type UsageError struct {
	Msg  string
	Exit int
}

func (e *UsageError) Error() string { return e.Msg }

func usage(format string, args ...any) *UsageError {
	return &UsageError{Msg: fmt.Sprintf(format, args...), Exit: sysexits.Usage}
}

type token struct {
	letter byte
	value  string
	hasArg bool
}

// tokenize applies getopt's rules for optionLetters to args (without argv[0])
// and returns the flags in order and the remaining operands.
func tokenize(progname string, args []string) ([]token, []string, error) {
	var toks []token
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if a[1] == '-' {
			// "--help" and friends: sendmail's getopt treats the word as
			// consumed and ignored, so `sendmail --help` ends up asking
			// for recipients. Keep that.
			continue
		}
		for j := 1; j < len(a); j++ {
			c := a[j]
			k := strings.IndexByte(optionLetters, c)
			if c == ':' || k < 0 {
				return nil, nil, usage("%s: illegal option -- %c", progname, c)
			}
			takesArg := k+1 < len(optionLetters) && optionLetters[k+1] == ':'
			if !takesArg {
				toks = append(toks, token{letter: c})
				continue
			}
			if j+1 < len(a) {
				toks = append(toks, token{letter: c, value: a[j+1:], hasArg: true})
				break
			}
			// The argument is the next word, with sendmail's exceptions
			// for the letters whose argument is optional.
			next := ""
			haveNext := i+1 < len(args)
			if haveNext {
				next = args[i+1]
			}
			switch {
			case c == 'q' && (!haveNext || strings.HasPrefix(next, "-")):
				toks = append(toks, token{letter: c, value: "", hasArg: true})
			case c == 'd':
				toks = append(toks, token{letter: c, value: "0-99.1", hasArg: true})
			case !haveNext:
				return nil, nil, usage("%s: option requires an argument -- %c", progname, c)
			default:
				toks = append(toks, token{letter: c, value: next, hasArg: true})
				i++
			}
			break
		}
	}
	return toks, args[i:], nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Parse reads argv (argv[0] included) into an Invocation. A non-nil error is
// a *UsageError: print its message on stderr and exit with its code.
// Invocation.Warnings holds the errors sendmail reports but works past (a bad
// -B, -N or -R value): the caller prints them, carries on, and exits 64.
func Parse(argv []string) (*Invocation, error) {
	if len(argv) == 0 {
		argv = []string{"sendmail"}
	}
	inv := &Invocation{Name: filepath.Base(argv[0]), Mode: ModeDeliver}
	progname := "sendmail"
	switch inv.Name {
	case "mailq":
		inv.Mode = ModePrintQueue
	case "newaliases":
		inv.Mode = ModeInitAliases
	case "hoststat":
		inv.Mode = ModeHostStatus
	case "purgestat":
		inv.Mode = ModePurgeHostStatus
	case "mail.local":
		return parseMailLocal(inv, argv[1:])
	}

	toks, operands, err := tokenize(progname, argv[1:])
	if err != nil {
		return nil, err
	}
	fs := inv.flagSet()
	norm := make([]string, 0, len(toks))
	for _, t := range toks {
		if t.hasArg {
			norm = append(norm, "--"+string(t.letter)+"="+t.value)
		} else {
			norm = append(norm, "--"+string(t.letter))
		}
	}
	if err := fs.Parse(norm); err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			return nil, ue
		}
		return nil, usage("%s: %v", progname, err)
	}
	inv.Args = operands
	return inv, inv.finish()
}

// parseMailLocal handles `mail.local [-C cf] [-O opt=val] [-f from] user…`:
// it takes out -C and -O, which configure posthorn, and leaves every other
// argument to the delivery agent, which knows its own flags.
func parseMailLocal(inv *Invocation, args []string) (*Invocation, error) {
	inv.Mode = ModeMailLocal
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || len(a) < 2 || a[0] != '-' {
			inv.Args = append(inv.Args, args[i:]...)
			break
		}
		if a[1] != 'C' && a[1] != 'O' {
			inv.Args = append(inv.Args, a)
			continue
		}
		v := a[2:]
		if v == "" {
			if i+1 >= len(args) {
				return nil, usage("mail.local: option requires an argument -- %c", a[1])
			}
			i++
			v = args[i]
		}
		if a[1] == 'C' {
			inv.ConfigFile = v
			continue
		}
		name, val, _ := strings.Cut(v, "=")
		inv.Options = append(inv.Options, OptionSetting{Name: name, Value: val})
	}
	return inv, nil
}
