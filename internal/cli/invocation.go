package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/posthorn/posthorn/conf"
)

// Mode is what the invocation asks sendmail to do (-b<mode>, or the name the
// binary was called by).
type Mode string

// Operation modes, named after sendmail's -b letters.
const (
	ModeDeliver         Mode = "m" // -bm: read a message from stdin and deliver it (default)
	ModeDaemon          Mode = "d" // -bd: daemon, detached
	ModeDaemonFG        Mode = "D" // -bD: daemon in the foreground
	ModePrintQueue      Mode = "p" // -bp, mailq
	ModeInitAliases     Mode = "i" // -bi, newaliases
	ModeTest            Mode = "t" // -bt: address test mode
	ModeVerify          Mode = "v" // -bv: verify addresses
	ModeSMTP            Mode = "s" // -bs: one SMTP session on stdin/stdout
	ModeHostStatus      Mode = "h" // -bh, hoststat
	ModePurgeHostStatus Mode = "H" // -bH, purgestat
	ModeQueueRun        Mode = "q" // -q without -bd/-bD: run the queue
	ModeMailLocal       Mode = "mail.local"
)

// QueueFilter selects jobs for a queue run: -qI (queue ID), -qR (recipient),
// -qS (sender), each a substring match, `!` negates.
type QueueFilter struct {
	Kind   byte // 'I', 'R' or 'S'
	Negate bool
	Value  string
}

// OptionSetting is one -O Name=value or -o<letter><value> from the command
// line, in order; conf resolves the names and applies them over the file.
type OptionSetting struct {
	Name  string // long name for -O, one letter for -o
	Short bool   // true for -o
	Value string
}

// Invocation is a parsed sendmail command line.
type Invocation struct {
	Name string // base name of argv[0]
	Mode Mode
	Args []string // recipients (or users for mail.local, ignored for -bp)

	ConfigFile string // -C
	Options    []OptionSetting
	Macros     map[string]string // -M<x><value>, -oM<x><value>

	// Queue running.
	QueueRun        bool          // -q given
	QueueInterval   time.Duration // -q30m; 0 means once
	QueueForeground bool          // -qf
	QueuePersistent bool          // -qp
	QueueFilters    []QueueFilter
	// QueueQuarantined is -qQ: run the quarantined jobs (those a mail
	// filter held) instead of the others.
	QueueQuarantined bool
	// QueueLost is -qL: the "lost" jobs, those whose control file was
	// renamed to Qf after it could not be read (mailq -qL lists them).
	QueueLost bool

	// Message submission.
	Sender      string // -f / -r
	SenderSet   bool
	FullName    string // -F
	Hops        int    // -h
	DSNNotify   string // -N, validated: "never" or a list of success,failure,delay
	DSNRet      string // -R: "hdrs" or "full"
	EnvID       string // -V
	EnvIDSet    bool
	BodyType    string // -B: "7BIT" or "8BITMIME"
	Submission  byte   // -A: 'm' (MTA) or 'c' (submit); 0 when not given
	ReadHeaders bool   // -t
	IgnoreDots  bool   // -i (also -oi, resolved by conf)
	Verbose     bool   // -v
	NoAlias     bool   // -n
	LogTag      string // -L
	TraceFile   string // -X
	Debug       []string
	Protocol    string // -p

	// Warnings are errors sendmail reports but works past; the caller prints
	// them and exits 64 at the end, as sendmail does.
	Warnings []string
}

// flagSet binds one pflag flag per letter of optionLetters to inv, so pflag
// calls the typed setters below in command-line order.
func (inv *Invocation) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("sendmail", pflag.ContinueOnError)
	fs.SetOutput(discard{})
	fs.SortFlags = false
	for i := 0; i < len(optionLetters); i++ {
		c := optionLetters[i]
		if c == ':' {
			continue
		}
		takesArg := i+1 < len(optionLetters) && optionLetters[i+1] == ':'
		v := &letterValue{inv: inv, letter: c}
		f := fs.VarPF(v, string(c), "", "")
		if !takesArg {
			f.NoOptDefVal = "true"
		}
	}
	return fs
}

// letterValue is the pflag.Value for one sendmail flag letter.
type letterValue struct {
	inv    *Invocation
	letter byte
}

func (v *letterValue) String() string { return "" }
func (v *letterValue) Type() string   { return "string" }
func (v *letterValue) Set(s string) error {
	return v.inv.set(v.letter, s)
}

func (inv *Invocation) set(letter byte, val string) error {
	switch letter {
	case 'A':
		switch val {
		case "m", "c":
			inv.Submission = val[0]
		default:
			return usage("Invalid -A argument")
		}
	case 'B':
		switch strings.ToUpper(val) {
		case "7BIT", "8BITMIME":
			inv.BodyType = strings.ToUpper(val)
		default:
			inv.Warnings = append(inv.Warnings, "Illegal body type "+val)
		}
	case 'b':
		return inv.setMode(val)
	case 'C':
		inv.ConfigFile = val
	case 'd':
		inv.Debug = append(inv.Debug, val)
	case 'D', 'e', 'p':
		// -D file: debug output; -e x: same as -oe; -p proto: protocol.
		switch letter {
		case 'e':
			inv.Options = append(inv.Options, OptionSetting{Name: "e", Short: true, Value: val})
		case 'p':
			inv.Protocol = val
		}
	case 'F':
		inv.FullName = val
	case 'f', 'r':
		if inv.SenderSet {
			inv.Warnings = append(inv.Warnings, "More than one \"from\" person")
		}
		inv.Sender, inv.SenderSet = val, true
	case 'h':
		n, err := strconv.Atoi(val)
		if err != nil || n < 0 {
			return usage("Bad hop count (%s)", val)
		}
		inv.Hops = n
	case 'I':
		inv.Mode = ModeInitAliases
	case 'i':
		inv.IgnoreDots = true
	case 'L':
		inv.LogTag = val
	case 'M':
		inv.defineMacro(val)
	case 'm':
		inv.Options = append(inv.Options, OptionSetting{Name: "m", Short: true})
	case 'N':
		return inv.setNotify(val)
	case 'n':
		inv.NoAlias = true
	case 'O':
		name, value, _ := strings.Cut(val, "=")
		inv.Options = append(inv.Options, OptionSetting{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	case 'o':
		if val == "" {
			return usage("sendmail: option requires an argument -- o")
		}
		if val[0] == 'M' { // -oMx value: define macro x
			inv.defineMacro(val[1:])
			return nil
		}
		inv.Options = append(inv.Options, OptionSetting{Name: val[:1], Short: true, Value: val[1:]})
	case 'Q': // -Q[reason]: (un)quarantine jobs by hand; accepted, not implemented
	case 'q':
		return inv.setQueue(val)
	case 'R':
		switch strings.ToLower(val) {
		case "hdrs", "full":
			inv.DSNRet = strings.ToLower(val)
		default:
			inv.Warnings = append(inv.Warnings, "Invalid -R value")
		}
	case 'c', 'G', 's', 'T':
		// Obsolete or gateway flags sendmail still accepts (-c hold
		// expensive, -G gateway, -s save From lines, -T queue timeout).
	case 't':
		inv.ReadHeaders = true
	case 'V':
		inv.EnvID, inv.EnvIDSet = val, true
	case 'v':
		inv.Verbose = true
	case 'X':
		inv.TraceFile = val
	}
	return nil
}

func (inv *Invocation) defineMacro(val string) {
	if val == "" {
		return
	}
	if inv.Macros == nil {
		inv.Macros = map[string]string{}
	}
	name, rest := val[:1], val[1:]
	if val[0] == '{' {
		if end := strings.IndexByte(val, '}'); end > 0 {
			name, rest = val[1:end], val[end+1:]
		}
	}
	inv.Macros[name] = rest
}

func (inv *Invocation) setMode(val string) error {
	if val == "" {
		return usage("Invalid operation mode ")
	}
	switch Mode(val[:1]) {
	case ModeDeliver, ModeDaemon, ModeDaemonFG, ModePrintQueue, ModeInitAliases,
		ModeTest, ModeVerify, ModeSMTP, ModeHostStatus, ModePurgeHostStatus:
		inv.Mode = Mode(val[:1])
	case "a": // -ba: ARPANET mode, the same as an SMTP session for us
		inv.Mode = ModeSMTP
	case "z":
		return usage("Frozen configurations unsupported")
	case "P":
		return usage("Shared memory not available")
	default:
		return usage("Invalid operation mode %s", val[:1])
	}
	return nil
}

func (inv *Invocation) setNotify(val string) error {
	v := strings.ToLower(val)
	if v == "never" {
		inv.DSNNotify = v
		return nil
	}
	for _, w := range strings.Split(v, ",") {
		switch strings.TrimSpace(w) {
		case "success", "failure", "delay":
		default:
			inv.Warnings = append(inv.Warnings, "Invalid -N argument")
			return nil
		}
	}
	inv.DSNNotify = v
	return nil
}

// setQueue reads -q's argument: "" run once, a duration (default unit
// minutes), or f/p/I/R/S/G selectors, possibly several -q flags.
func (inv *Invocation) setQueue(val string) error {
	inv.QueueRun = true
	if val == "" {
		return nil
	}
	switch val[0] {
	case 'f':
		inv.QueueForeground = true
		return nil
	case 'p':
		inv.QueuePersistent = true
		if val[1:] == "" {
			return nil
		}
		d, err := ParseDuration(val[1:], 'm')
		if err != nil {
			return err
		}
		inv.QueueInterval = d
		return nil
	case 'Q':
		inv.QueueQuarantined = true
		return nil
	case 'L':
		inv.QueueLost = true
		return nil
	case 'G': // queue group: accepted, unused (one queue group)
		return nil
	}
	negate := false
	sel := val
	if sel[0] == '!' {
		negate, sel = true, sel[1:]
	}
	if sel != "" && strings.IndexByte("IRS", sel[0]) >= 0 {
		inv.QueueFilters = append(inv.QueueFilters, QueueFilter{Kind: sel[0], Negate: negate, Value: sel[1:]})
		return nil
	}
	d, err := ParseDuration(val, 'm')
	if err != nil {
		return err
	}
	inv.QueueInterval = d
	return nil
}

// ParseDuration reads -q's interval with sendmail's time syntax (minutes
// when no unit is given), answering a bad unit as sendmail does.
func ParseDuration(s string, defUnit byte) (time.Duration, error) {
	d, err := conf.ParseTime(s, defUnit)
	if err != nil {
		msg := err.Error()
		return 0, usage("%s", strings.ToUpper(msg[:1])+msg[1:])
	}
	return d, nil
}

// finish applies the rules that need the whole command line.
func (inv *Invocation) finish() error {
	if inv.QueueRun && inv.Mode == ModeDeliver {
		inv.Mode = ModeQueueRun
	}
	switch inv.Mode {
	case ModeVerify:
		if len(inv.Args) == 0 {
			return usage("Recipient names must be specified")
		}
	case ModeDeliver:
		if len(inv.Args) == 0 && !inv.ReadHeaders {
			return usage("Recipient names must be specified")
		}
	}
	return nil
}
