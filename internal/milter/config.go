package milter

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// OnError is what a filter's F= flag makes of a filter that cannot be
// reached, times out or answers garbage.
type OnError byte

// The F= flags.
const (
	Continue OnError = 0   // no flag: go on as if the filter were not there
	Reject   OnError = 'R' // F=R: 550 5.7.1 Command rejected
	TempFail OnError = 'T' // F=T: 451 4.3.2 Please try again later
	TempDrop OnError = '4' // F=4: 421 4.3.0 closing connection (and close it)
)

// Timeouts are a filter's T= values (sendmail's defaults: C:5m;S:10s;R:10s;E:5m).
type Timeouts struct {
	Connect time.Duration // C: connecting to the filter
	Send    time.Duration // S: writing one packet
	Read    time.Duration // R: waiting for one reply
	EOM     time.Duration // E: the whole end-of-message exchange
}

// DefaultTimeouts are sendmail's.
var DefaultTimeouts = Timeouts{Connect: 5 * time.Minute, Send: 10 * time.Second, Read: 10 * time.Second, EOM: 5 * time.Minute}

// Filter is one X line.
type Filter struct {
	Name     string
	Socket   string // S= as written
	Network  string // "tcp", "tcp6" or "unix"
	Address  string // "127.0.0.1:8891", "[::1]:8891" or "/run/opendkim.sock"
	OnError  OnError
	Timeouts Timeouts
}

// ParseFilter reads the text of an X line after the X:
//
//	opendkim, S=inet:8891@127.0.0.1, F=T, T=C:10s;S:10s;R:10s;E:5m
//
// S= is inet:port@host, inet6:port@host, unix:/path or local:/path (a
// missing host is localhost); F= holds R, T or 4; T= lists C, S, R and E with
// sendmail time values (a bare number is seconds).
func ParseFilter(line string) (Filter, error) {
	name, rest, _ := strings.Cut(line, ",")
	f := Filter{Name: strings.TrimSpace(name), Timeouts: DefaultTimeouts}
	if f.Name == "" {
		return f, fmt.Errorf("milter: missing filter name")
	}
	for _, field := range splitFields(rest) {
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return f, fmt.Errorf("milter %s: bad equate %q", f.Name, field)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch strings.ToUpper(k) {
		case "S":
			if err := f.setSocket(v); err != nil {
				return f, err
			}
		case "F":
			for _, c := range v {
				switch c {
				case 'R', 'r':
					f.OnError = Reject
				case 'T', 't':
					f.OnError = TempFail
				case '4':
					f.OnError = TempDrop
				case ' ', '\t':
				default:
					return f, fmt.Errorf("milter %s: unknown flag %q", f.Name, c)
				}
			}
		case "T":
			if err := f.setTimeouts(v); err != nil {
				return f, err
			}
		default:
			return f, fmt.Errorf("milter %s: unknown filter equate %s", f.Name, k)
		}
	}
	if f.Socket == "" {
		return f, fmt.Errorf("milter %s: missing socket (S=)", f.Name)
	}
	return f, nil
}

// splitFields splits the equates at commas. A comma inside T= (sendmail
// allows "T=C:2m;S:10s") is not special, so a plain split is enough.
func splitFields(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func (f *Filter) setSocket(v string) error {
	f.Socket = v
	proto, spec, ok := strings.Cut(v, ":")
	if !ok {
		proto, spec = "unix", v // sendmail: a bare path is a local socket
	}
	switch strings.ToLower(proto) {
	case "unix", "local":
		if !strings.HasPrefix(spec, "/") {
			return fmt.Errorf("milter %s: local socket name %s must be an absolute path", f.Name, spec)
		}
		f.Network, f.Address = "unix", spec
	case "inet", "inet6":
		port, host, _ := strings.Cut(spec, "@")
		if host == "" {
			host = "localhost"
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || port == "" {
			return fmt.Errorf("milter %s: invalid port number %q", f.Name, port)
		}
		f.Network = "tcp4"
		if strings.EqualFold(proto, "inet6") {
			f.Network = "tcp6"
		}
		f.Address = net.JoinHostPort(strings.Trim(host, "[]"), port)
	default:
		return fmt.Errorf("milter %s: unknown socket type %s", f.Name, proto)
	}
	return nil
}

func (f *Filter) setTimeouts(v string) error {
	for _, t := range strings.Split(v, ";") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		k, val, ok := strings.Cut(t, ":")
		if !ok || len(strings.TrimSpace(k)) != 1 {
			return fmt.Errorf("milter %s: bad timeout %q", f.Name, t)
		}
		d, err := parseTime(strings.TrimSpace(val))
		if err != nil {
			return fmt.Errorf("milter %s: timeout %s: %v", f.Name, k, err)
		}
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "C":
			f.Timeouts.Connect = d
		case "S":
			f.Timeouts.Send = d
		case "R":
			f.Timeouts.Read = d
		case "E":
			f.Timeouts.EOM = d
		default:
			return fmt.Errorf("milter %s: unknown timeout %s", f.Name, k)
		}
	}
	return nil
}

// parseTime reads a sendmail time ("10s", "2m", "1h30m"; a bare number
// is seconds, as in milter.c).
func parseTime(s string) (time.Duration, error) {
	var total time.Duration
	if s == "" {
		return 0, fmt.Errorf("empty time")
	}
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("bad time %q", s)
		}
		n, _ := strconv.Atoi(s[:i])
		unit := time.Second
		if i < len(s) {
			switch s[i] {
			case 's':
			case 'm':
				unit = time.Minute
			case 'h':
				unit = time.Hour
			case 'd':
				unit = 24 * time.Hour
			case 'w':
				unit = 7 * 24 * time.Hour
			default:
				return 0, fmt.Errorf("bad time unit %q", s[i])
			}
			i++
		}
		total += time.Duration(n) * unit
		s = s[i:]
	}
	return total, nil
}

// Stage names a point of the SMTP dialogue at which macros are sent.
type Stage int

// Stages, in the order of the Milter.macros.* options.
const (
	StageConnect Stage = iota
	StageHelo
	StageEnvFrom
	StageEnvRcpt
	StageData
	StageEOH
	StageEOM
	numStages
)

var stageNames = [numStages]string{"connect", "helo", "envfrom", "envrcpt", "data", "eoh", "eom"}

// DefaultMacros are the Milter.macros.* values sendmail's m4 writes into
// every sendmail.cf that defines a filter (cf/m4/proto.m4).
var DefaultMacros = [numStages][]string{
	StageConnect: {"j", "_", "{daemon_name}", "{if_name}", "{if_addr}"},
	StageHelo:    {"{tls_version}", "{cipher}", "{cipher_bits}", "{cert_subject}", "{cert_issuer}"},
	StageEnvFrom: {"i", "{auth_type}", "{auth_authen}", "{auth_ssf}", "{auth_author}", "{mail_mailer}", "{mail_host}", "{mail_addr}"},
	StageEnvRcpt: {"{rcpt_mailer}", "{rcpt_host}", "{rcpt_addr}"},
	StageEOM:     {"{msg_id}"},
}

// Config is the filters an SMTP server uses and how it talks to them.
type Config struct {
	Filters  []Filter // in InputMailFilters order
	Macros   [numStages][]string
	LogLevel int // Milter.LogLevel (sendmail: defaults to LogLevel)
}

// Options are the raw configuration values Configure reads.
type Options struct {
	XLines           []string          // the text of each X line, without the X
	InputMailFilters string            // the option's value (or a listener's I=, ';'-separated); "" uses no filter
	LogLevel         string            // Milter.LogLevel; "" means DefaultLogLevel
	Macros           map[string]string // "connect" -> "j, _, {daemon_name}" (Milter.macros.connect)
	DefaultLogLevel  int               // the LogLevel option
}

// Configure builds the filter list from the X lines and the options, as
// sendmail's readcf and milter_set_option do: only the filters named in
// InputMailFilters are used, in that order. It returns nil when no
// filter is in use.
func Configure(o Options) (*Config, error) {
	defs := map[string]Filter{}
	for _, x := range o.XLines {
		f, err := ParseFilter(x)
		if err != nil {
			return nil, err
		}
		defs[strings.ToLower(f.Name)] = f
	}
	c := &Config{Macros: DefaultMacros, LogLevel: o.DefaultLogLevel}
	for _, name := range strings.FieldsFunc(o.InputMailFilters, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '\t' }) {
		f, ok := defs[strings.ToLower(name)]
		if !ok {
			return nil, fmt.Errorf("InputFilters: filter %s not defined", name)
		}
		c.Filters = append(c.Filters, f)
	}
	if o.LogLevel != "" {
		n, err := strconv.Atoi(strings.TrimSpace(o.LogLevel))
		if err != nil {
			return nil, fmt.Errorf("Milter.LogLevel: %q is not a number", o.LogLevel)
		}
		c.LogLevel = n
	}
	for i, name := range stageNames {
		if v, ok := o.Macros[name]; ok {
			c.Macros[i] = ParseMacroList(v)
		}
	}
	if len(c.Filters) == 0 {
		return nil, nil
	}
	return c, nil
}

// ParseMacroList splits a Milter.macros value: "j, _, {daemon_name}".
func ParseMacroList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}
