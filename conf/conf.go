// Package conf is posthorn's configuration: the typed model of every option,
// the embedded defaults, and a reader for the subset of sendmail.cf that
// posthorn honours. A real sendmail 8 sendmail.cf (m4-generated) loads as is.
//
// # The sendmail.cf subset
//
// The file is read line by line. A line that starts with a space or a tab
// continues the previous line; a line that starts with '#' and a line of only
// white space are ignored. The first character says what a line is:
//
//	O Name=value      an option, long form (white space around '=' is ignored)
//	Oxvalue           an option, one-letter form (x from sendmail's short names)
//	Dxvalue           define macro x           D{name}value  a long macro name
//	Cxword word...    add words to class x     C{name}...    a long class name
//	Fx/path [fmt]     add the words of a file to class x; "Fx-o /path" makes
//	                  a missing file silent; fmt may be %[^\#] (up to '#') or %s
//	Tuser user...     trusted users, who may use -f without a warning
//	Xname, S=..., F=..., T=...
//	                  a mail filter (milter), kept as written for package
//	                  milter; InputMailFilters picks the ones in use
//	Mname, P=..., F=..., A=...
//	                  a mailer definition, kept as written (Mailer); the
//	                  local mailer's P=, F= and A= choose LMTP delivery
//	                  (package mta), everything else is not interpreted
//	R S K H P V E L Q
//	                  rules, rulesets, maps, headers, precedences,
//	                  the version, environment, queue groups: read,
//	                  counted and reported once as not interpreted
//
// Any other first character is an error ("unknown control line"). Option
// names are sendmail 8's, matched case-insensitively; a name posthorn does
// not implement is accepted and listed as not interpreted; a name that is no
// option at all is an error naming the file and the line (exit 78).
// Options given on the command line (-O Name=value, -o<letter><value>)
// override the file; an unknown name there is "readcf: unknown option name
// X" (exit 70, as sendmail). Macros are expanded when used ($j, ${name},
// $?x…$|…$.), not when read, because some (like $z or $b) change per use.
//
// posthorn's own options (ResolverServers, AccessFile, MailerTable,
// VirtUserTable, RelayHosts, AuthFile, SmrshDirectory, MailSpoolDirectory
// and AcceptUnresolvableDomains) are set like sendmail's. MailerTable and
// VirtUserTable name plain-text files in makemap's source format (see
// package route); a file-class K line (Kvirtuser hash -o
// /etc/mail/virtusertable.db, Kmailertable, Kaccess) names the file, without
// ".db", when the option is not set; the virtusertable applies to $=w and to class
// {VirtHost} (C{VirtHost}…, F{VirtHost}/path), sendmail's virtual domains. AcceptUnresolvableDomains
// (default False) stands for FEATURE(accept_unresolvable_domains), which
// sendmail builds into its rulesets rather than an option: when True, the
// SMTP server does not check that the MAIL FROM domain exists in DNS.
// Timeout.resolver.retrans (seconds unless a unit is given) and
// Timeout.resolver.retry (a count) set the DNS client's per-try timeout and
// rounds, overriding resolv.conf's timeout and attempts. The outbound TLS
// options (tls.go) are posthorn's TLSPolicyMap, TLSDefaultLevel, MTASTS,
// MTASTSCacheDirectory, TLSReports, TLSReportDirectory and TLSReportSender,
// and sendmail's DANE, CACertFile, CACertPath and ResolverOptions (of
// whose flags +TRUSTAD is acted on).
//
// When the default file /etc/mail/sendmail.cf does not exist, the embedded
// defaults apply, so a fresh host works without one; a file named with -C
// must exist (exit 72).
package conf

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/sysexits"
)

// DefaultPath is where sendmail keeps its configuration.
const DefaultPath = "/etc/mail/sendmail.cf"

// Version is posthorn's version: the $v and $Z macros, the greeting, the
// Received header and `-d0.1`. The Makefile sets it from the build
// (dist/version.sh: the VERSION file, plus the commit when the tree is not
// at the release tag) with -ldflags -X; a plain `go build` or `go test`
// gets the release in the VERSION file, which a test keeps equal to this.
var Version = "0.1.0"

// DeliveryMode is sendmail's DeliveryMode option.
type DeliveryMode byte

// Delivery modes.
const (
	DeliverBackground  DeliveryMode = 'b'
	DeliverInteractive DeliveryMode = 'i'
	DeliverQueueOnly   DeliveryMode = 'q'
	DeliverDeferred    DeliveryMode = 'd'
)

func (m DeliveryMode) String() string {
	return map[DeliveryMode]string{DeliverBackground: "background", DeliverInteractive: "interactive",
		DeliverQueueOnly: "queueonly", DeliverDeferred: "deferred"}[m]
}

// DaemonPort is one DaemonPortOptions listener.
type DaemonPort struct {
	Name      string // "MTA", "MSA", ...: ${daemon_name}
	Family    string // "inet" or "inet6"
	Addr      string // listen address; empty means any
	Port      int
	Modifiers string // M=: 'a' require AUTH, 'E' no ETRN, ...
	// InputMailFilters (I=) are this listener's mail filters, separated
	// by ';', instead of the InputMailFilters option's; "" uses those.
	InputMailFilters string
}

// Address is the host:port to listen on.
func (d DaemonPort) Address() string {
	host := d.Addr
	if host == "" {
		host = "0.0.0.0"
		if d.Family == "inet6" {
			host = "::"
		}
	}
	return fmt.Sprintf("[%s]:%d", host, d.Port)
}

// Network is the Go network name for the listener.
func (d DaemonPort) Network() string {
	if d.Family == "inet6" {
		return "tcp6"
	}
	return "tcp4"
}

// HasModifier reports whether the M= field contains c.
func (d DaemonPort) HasModifier(c byte) bool { return strings.IndexByte(d.Modifiers, c) >= 0 }

// Config is the effective configuration.
type Config struct {
	Path string // the file read; "" when the embedded defaults apply

	Macros       map[string]string   // $j, $w, $m, $k, $v, ${daemon_name}, ...
	Classes      map[string][]string // $=w, $=R, ... in order, without duplicates
	TrustedUsers []string            // T lines
	// MailFilters is the text of each X line after the X, in file order;
	// package milter parses them with InputMailFilters, Milter.LogLevel
	// and Milter.macros.* from Values.
	MailFilters []string
	// Mailers are the M lines by mailer name (see Mailer).
	Mailers map[string]*Mailer
	// Maps are the K lines by map name; package mta uses the ldap class
	// ones for the mailertable, virtuser, ldapmh and ldapmra.
	Maps map[string]*MapDef
	// LDAPRoutingBounce is FEATURE(ldap_routing)'s "bounce": the
	// LDAPExpand ruleset refuses addresses without an entry.
	LDAPRoutingBounce bool

	// Values holds the effective value of every option that was set, by
	// canonical name, as written: what -d0.1 prints.
	Values map[string]string
	// NotInterpreted lists, once each, the option names and line kinds
	// posthorn read but does not act on.
	NotInterpreted []string
	// Warnings are problems that do not stop posthorn (a missing class file).
	Warnings []string

	QueueDirectory      string
	AliasFiles          []string
	ForwardPath         []string
	HostStatusDirectory string
	// SingleThreadDelivery: at most one connection to a host at a time,
	// across processes, through locks on the host status files; only
	// with HostStatusDirectory (Load turns it off without, as sendmail).
	SingleThreadDelivery    bool
	PidFile                 string
	Daemons                 []DaemonPort
	SmtpGreetingMessage     string
	UnixFromLine            string
	MaxMessageSize          int64
	MaxRecipientsPerMessage int
	MinFreeBlocks           int64 // blocks of the queue file system kept free (MinFreeBlocks, short b)
	MaxDaemonChildren       int
	ConnectionRateThrottle  int
	// ConnectionRateWindowSize is the window of the access file's
	// ClientRate: limits (sendmail's default 60s).
	ConnectionRateWindowSize time.Duration
	MaxHopCount              int
	MaxHeadersLength         int // bytes of header per message (sendmail's default 32768; 0: posthorn's 1 MiB bound)
	MaxQueueChildren         int
	MaxRunnersPerQueue       int
	BadRcptThrottle          int
	MaxAliasRecursion        int
	LogLevel                 int
	DeliveryMode             DeliveryMode
	ErrorMode                byte
	MinQueueAge              time.Duration
	// The relay client's: idle connections kept (option k) and for how
	// long (K); EightBitMode (8: pass8, mimefy, strict) and the charset
	// of Content-Type headers it adds.
	ConnectionCacheSize    int
	ConnectionCacheTimeout time.Duration
	EightBitMode           string
	DefaultCharSet         string
	Timeouts               map[string]time.Duration // by name without "Timeout."
	PrivacyOptions         map[string]bool
	DefaultUser            string
	TrustedUser            string
	SafeFileEnvironment    string
	QueueFileMode          uint32
	MeToo                  bool
	IgnoreDots             bool
	DontProbeInterfaces    bool
	QueueSortOrder         string
	DoubleBounceAddress    string
	HelpFile               string
	ServerCertFile         string
	ServerKeyFile          string

	MailSpoolDirectory string
	ResolverServers    []string
	AccessFile         string
	MailerTable        string
	VirtUserTable      string
	RelayHosts         []netip.Prefix
	AuthFile           string
	SmrshDirectory     string
	// AcceptUnresolvableDomains skips the MAIL FROM domain check, as
	// sendmail's FEATURE(accept_unresolvable_domains).
	AcceptUnresolvableDomains bool
	// ResolverRetry is Timeout.resolver.retry (and .normal): rounds over
	// the DNS servers; 0 leaves resolv.conf's attempts.
	ResolverRetry      int
	MaxSessionTime     time.Duration // an SMTP session ends after this long (0: no limit)
	MaxSessionCommands int           // ... or after this many commands (0: no limit)
	// TLS is outbound TLS: the policy map, DANE, MTA-STS, reports (tls.go).
	TLS TLSOptions

	daemonsFromDefault bool
	reported           map[string]bool
	explicit           map[string]bool // options set by the file or the command line
}

// Timeout returns Timeout.<name>.
func (c *Config) Timeout(name string) time.Duration { return c.Timeouts[name] }

// Privacy reports whether PrivacyOptions contains flag.
func (c *Config) Privacy(flag string) bool { return c.PrivacyOptions[flag] }

// Class returns the members of class name ("w" for $=w).
func (c *Config) Class(name string) []string { return c.Classes[name] }

// InClass reports whether word is in class name, ignoring case as sendmail.
func (c *Config) InClass(name, word string) bool {
	for _, w := range c.Classes[name] {
		if strings.EqualFold(w, word) {
			return true
		}
	}
	return false
}

// Override is an option from the command line.
type Override struct {
	Name  string // long name, or one letter when Short
	Short bool
	Value string
}

// LoadOptions says where the configuration comes from.
type LoadOptions struct {
	Path      string            // -C; "" means DefaultPath
	Overrides []Override        // -O and -o, in order
	Macros    map[string]string // -M and -oM definitions
	// Environment hooks; nil means the real system. Tests use them to
	// read fixtures and to pin the host identity.
	ReadFile func(path string) ([]byte, error)
	Identity *Identity
}

// Error is a configuration error with sendmail's wording and exit code.
type Error struct {
	Msg  string
	Exit int
}

func (e *Error) Error() string { return e.Msg }

// Load builds the effective configuration: defaults, then the file, then the
// command line.
func Load(opts LoadOptions) (*Config, error) {
	readFile := opts.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	c := newDefault()
	id := opts.Identity
	if id == nil {
		id = SystemIdentity()
	}

	path := opts.Path
	explicit := path != ""
	if !explicit {
		path = DefaultPath
	}
	data, err := readFile(path)
	switch {
	case err == nil:
		c.Path = path
		if err := c.parse(path, data, readFile); err != nil {
			return nil, err
		}
	case explicit || !errors.Is(err, fs.ErrNotExist):
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = ErrnoText(pe.Err)
		}
		return nil, &Error{Msg: fmt.Sprintf("%s: line 0: cannot open: %s", path, msg), Exit: sysexits.OSFile}
	}

	for _, o := range opts.Overrides {
		name := o.Name
		if o.Short {
			if o.Name == "" {
				continue
			}
			long, ok := shortOptions[o.Name[0]]
			if !ok {
				return nil, &Error{Msg: fmt.Sprintf("readcf: unknown option name 0x%x", o.Name[0]), Exit: sysexits.Software}
			}
			name = long
		}
		if err := c.setOption(name, o.Value, "command line"); err != nil {
			var ce *Error
			if errors.As(err, &ce) {
				ce.Exit = sysexits.Software
				return nil, ce
			}
			return nil, &Error{Msg: err.Error(), Exit: sysexits.Usage}
		}
	}
	for k, v := range opts.Macros {
		c.Macros[k] = v
	}
	if err := c.tablesFromMaps(); err != nil {
		return nil, err
	}
	// sendmail's main.c, after the file and the command line: the locks
	// are the host status files.
	if c.SingleThreadDelivery && c.HostStatusDirectory == "" {
		c.SingleThreadDelivery = false
		c.Warnings = append(c.Warnings, "Warning: HostStatusDirectory required for SingleThreadDelivery")
	}
	c.settleIdentity(id)
	return c, nil
}

// tableMaps are the K lines that name the files of posthorn's table
// options: what FEATURE(access_db), FEATURE(mailertable) and
// FEATURE(virtusertable) write into sendmail.cf.
var tableMaps = [][2]string{{"access", "AccessFile"}, {"mailertable", "MailerTable"}, {"virtuser", "VirtUserTable"}}

// tablesFromMaps lets a file-class K line ("Kvirtuser hash -o
// /etc/mail/virtusertable.db", "Kaccess hash -T<TMPF> /etc/mail/access")
// name the table when its option is not set in the file or on the
// command line: posthorn reads the map's makemap source, the path without
// ".db". An ldap K line is used as the map itself (package mta).
func (c *Config) tablesFromMaps() error {
	for _, tm := range tableMaps {
		k := c.Maps[tm[0]]
		if k == nil || c.explicit[tm[1]] {
			continue
		}
		switch strings.ToLower(k.Class) {
		case "hash", "btree", "dbm", "text":
		default:
			continue
		}
		f := strings.Fields(k.Args)
		if len(f) == 0 || strings.HasPrefix(f[len(f)-1], "-") {
			continue
		}
		path := strings.TrimSuffix(f[len(f)-1], ".db")
		if err := c.setOption(tm[1], path, "K"+tm[0]); err != nil {
			return err
		}
	}
	return nil
}

func newDefault() *Config {
	c := &Config{
		Macros:   map[string]string{"v": Version, "Z": Version, "n": "MAILER-DAEMON"},
		Classes:  map[string][]string{},
		Values:   map[string]string{},
		Timeouts: map[string]time.Duration{},
		reported: map[string]bool{},
		explicit: map[string]bool{},
	}
	for _, d := range defaults {
		if err := c.setOption(d[0], d[1], "defaults"); err != nil {
			panic("conf: bad default " + d[0] + ": " + err.Error())
		}
	}
	c.daemonsFromDefault = true
	c.AddClass("w", "localhost")
	return c
}

// setOption applies one option by long name. source is "defaults", "command
// line" or "file: line N" and appears in errors.
func (c *Config) setOption(name, value, source string) error {
	canon := canonicalOption(name)
	if canon == "" {
		if strings.HasPrefix(source, "command") || source == "defaults" {
			return &Error{Msg: "readcf: unknown option name " + name, Exit: sysexits.Software}
		}
		return &Error{Msg: fmt.Sprintf("%s: readcf: unknown option name %s", source, name), Exit: sysexits.Config}
	}
	var set setter
	if t, ok := strings.CutPrefix(canon, "Timeout."); ok {
		unit := byte('m')
		switch {
		case strings.HasPrefix(t, "queuereturn"):
			unit = 'd'
		case strings.HasPrefix(t, "queuewarn"):
			unit = 'h'
		case strings.HasPrefix(t, "resolver.retrans"):
			unit = 's'
		case strings.HasPrefix(t, "resolver.retry"):
			unit = 0 // a count, not a time
		}
		set = func(c *Config, v string) error {
			if unit == 0 {
				// .first applies to a message's first attempt, which
				// posthorn does not treat apart; it is accepted only.
				if t == "resolver.retry.first" {
					return nil
				}
				n, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || n < 0 {
					return fmt.Errorf("invalid number %q", v)
				}
				c.ResolverRetry = n
				return nil
			}
			d, err := ParseTime(v, unit)
			if err != nil {
				return err
			}
			c.Timeouts[t] = d
			return nil
		}
	} else {
		set = honoured[canon]
	}
	if source != "defaults" {
		c.explicit[canon] = true
	}
	if set == nil {
		c.noteNotInterpreted("option " + canon)
		c.Values[canon] = value
		return nil
	}
	if canon == "DaemonPortOptions" && c.daemonsFromDefault && source != "defaults" {
		c.Daemons = nil
		c.daemonsFromDefault = false
		delete(c.Values, canon)
	}
	if err := set(c, value); err != nil {
		prefix := ""
		if source != "command line" {
			prefix = source + ": "
		}
		return &Error{Msg: fmt.Sprintf("%s%s: %v", prefix, canon, err), Exit: sysexits.Config}
	}
	if canon == "DaemonPortOptions" && c.Values[canon] != "" {
		c.Values[canon] += "; " + value
	} else {
		c.Values[canon] = value
	}
	return nil
}

func (c *Config) noteNotInterpreted(what string) {
	if !c.reported[what] {
		c.reported[what] = true
		c.NotInterpreted = append(c.NotInterpreted, what)
	}
}

// AddClass adds words to class name, keeping the first spelling of each.
func (c *Config) AddClass(name string, words ...string) {
	for _, w := range words {
		if w == "" || c.InClass(name, w) {
			continue
		}
		c.Classes[name] = append(c.Classes[name], w)
	}
}

func setDaemonPort(c *Config, v string) error {
	d := DaemonPort{Family: "inet", Port: 25}
	for _, f := range splitList(v, ",") {
		key, val, ok := strings.Cut(f, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			return fmt.Errorf("invalid field %q", f)
		}
		// sendmail looks only at the first letter of each key.
		switch key[0] {
		case 'A', 'a':
			d.Addr = val
		case 'F', 'f':
			d.Family = strings.ToLower(val)
			if d.Family != "inet" && d.Family != "inet6" {
				return fmt.Errorf("unsupported family %q", val)
			}
		case 'N', 'n':
			d.Name = val
		case 'P', 'p':
			port, err := servicePort(val)
			if err != nil {
				return err
			}
			d.Port = port
		case 'M', 'm':
			d.Modifiers = val
		case 'I', 'i':
			d.InputMailFilters = val
		default:
			// Listen, SendBufSize, ReceiveSize, children...: tuning we
			// leave to the kernel.
		}
	}
	if d.Name == "" {
		d.Name = "Daemon" + fmt.Sprint(len(c.Daemons))
	}
	c.Daemons = append(c.Daemons, d)
	return nil
}

func servicePort(v string) (int, error) {
	switch strings.ToLower(v) {
	case "smtp":
		return 25, nil
	case "submission":
		return 587, nil
	case "smtps":
		return 465, nil
	}
	var n int
	if _, err := fmt.Sscanf(v, "%d", &n); err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("invalid port %q", v)
	}
	return n, nil
}

// ErrnoText words a file error as sendmail does ("No such file or
// directory", "Permission denied").
func ErrnoText(err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "No such file or directory"
	}
	if errors.Is(err, fs.ErrPermission) {
		return "Permission denied"
	}
	return err.Error()
}
