package conf

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// defaults are the effective values when neither the cf file nor the command
// line sets an option: sendmail 8's own defaults, except where the contract
// says otherwise (posthorn options, the greeting, the pid file location) and
// where posthorn is safer by design (MaxRecipientsPerMessage, MinFreeBlocks,
// Timeout.command; README "Security").
// They are applied through the same setters as the file, so there is exactly
// one parser per option.
var defaults = [][2]string{
	{"QueueDirectory", "/var/spool/mqueue"},
	{"AliasFile", "/etc/mail/aliases"},
	{"ForwardPath", "$z/.forward"},
	{"PidFile", "/run/sendmail/mta/sendmail.pid"},
	{"DaemonPortOptions", "Port=25,Addr=0.0.0.0,Name=MTA"},
	{"SmtpGreetingMessage", "$j ESMTP posthorn $v; $b"},
	{"UnixFromLine", "From $g $d"},
	{"MaxMessageSize", "0"},
	{"MaxRecipientsPerMessage", "1000"}, // sendmail: 0 (no limit); Postfix's smtpd_recipient_limit
	{"MinFreeBlocks", "100"},            // the sendmail binary: 0; every m4-built sendmail.cf: 100
	{"MaxDaemonChildren", "0"},
	{"ConnectionRateThrottle", "0"},
	{"ConnectionRateWindowSize", "60s"},
	{"MaxHopCount", "25"},
	{"MaxHeadersLength", "32768"}, // sendmail's MAXHDRSLEN
	{"DeliveryMode", "background"},
	{"MinQueueAge", "0"},
	{"ConnectionCacheSize", "2"},
	{"ConnectionCacheTimeout", "5m"},
	{"EightBitMode", "pass8"},
	{"DefaultCharSet", "unknown-8bit"},
	{"PrivacyOptions", "authwarnings"},
	{"DefaultUser", "mail:mail"},
	{"TrustedUser", "root"},
	{"LogLevel", "9"},
	{"QueueFileMode", "0600"},
	{"MaxQueueChildren", "0"},
	{"MaxRunnersPerQueue", "0"},
	{"BadRcptThrottle", "0"},
	{"MaxAliasRecursion", "10"},
	{"ErrorMode", "p"},
	{"MeToo", "True"},
	{"IgnoreDots", "False"},
	{"QueueSortOrder", "priority"},
	{"DoubleBounceAddress", "postmaster"},
	{"MailSpoolDirectory", "/var/mail"},
	{"AccessFile", "/etc/mail/access"},
	{"MailerTable", "/etc/mail/mailertable"},
	{"VirtUserTable", "/etc/mail/virtusertable"},
	{"RelayHosts", "127.0.0.0/8,::1"},
	{"AuthFile", "/etc/mail/auth"},
	{"SmrshDirectory", "/etc/mail/smrsh"},
	{"MaxSessionTime", "1h"},
	{"MaxSessionCommands", "10000"},
	{"Timeout.initial", "5m"},
	{"Timeout.helo", "5m"},
	{"Timeout.mail", "10m"},
	{"Timeout.rcpt", "1h"},
	{"Timeout.datainit", "5m"},
	{"Timeout.datablock", "1h"},
	{"Timeout.datafinal", "1h"},
	{"Timeout.rset", "5m"},
	{"Timeout.quit", "2m"},
	{"Timeout.misc", "2m"},
	{"Timeout.command", "5m"}, // RFC 5321 4.5.3.2.7; sendmail: 1h
	{"Timeout.connect", "5m"},
	{"Timeout.iconnect", "5m"},
	{"Timeout.hoststatus", "30m"},
	{"AcceptUnresolvableDomains", "False"},
	{"Timeout.queuewarn", "4h"},
	{"Timeout.queuereturn", "5d"},
	// Outbound TLS: DANE on (it needs a resolver marked validating,
	// without which nothing changes; sendmail's default is off), MTA-STS
	// on (testing policies never block, enforce ones only where the domain
	// asked for it), reports off (they are mail to third parties).
	{"TLSPolicyMap", "/etc/mail/tls_policy"},
	{"TLSDefaultLevel", "may"},
	{"DANE", "True"},
	{"MTASTS", "True"},
	{"MTASTSCacheDirectory", ".mta-sts"},
	{"TLSReports", "False"},
	{"TLSReportDirectory", ".tlsrpt"},
	{"TLSReportSender", "postmaster@$j"},
}

// setter parses an option value into the typed Config.
type setter func(c *Config, v string) error

// honoured maps the canonical name of each option posthorn interprets to its
// parser. Every other name in knownOptions is accepted and reported as not
// interpreted.
var honoured = map[string]setter{
	"QueueDirectory":          func(c *Config, v string) error { c.QueueDirectory = v; return nil },
	"AliasFile":               func(c *Config, v string) error { c.AliasFiles = splitAliasFiles(v); return nil },
	"ForwardPath":             func(c *Config, v string) error { c.ForwardPath = splitList(v, ":"); return nil },
	"HostStatusDirectory":     func(c *Config, v string) error { c.HostStatusDirectory = v; return nil },
	"SingleThreadDelivery":    boolSetter(func(c *Config, b bool) { c.SingleThreadDelivery = b }),
	"PidFile":                 func(c *Config, v string) error { c.PidFile = v; return nil },
	"DaemonPortOptions":       setDaemonPort,
	"SmtpGreetingMessage":     func(c *Config, v string) error { c.SmtpGreetingMessage = v; return nil },
	"UnixFromLine":            func(c *Config, v string) error { c.UnixFromLine = v; return nil },
	"MaxMessageSize":          intSetter(func(c *Config, n int64) { c.MaxMessageSize = n }),
	"MaxRecipientsPerMessage": intSetter(func(c *Config, n int64) { c.MaxRecipientsPerMessage = int(n) }),
	"MinFreeBlocks":           setMinFreeBlocks,
	"MaxDaemonChildren":       intSetter(func(c *Config, n int64) { c.MaxDaemonChildren = int(n) }),
	"ConnectionRateThrottle":  intSetter(func(c *Config, n int64) { c.ConnectionRateThrottle = int(n) }),
	"MaxHopCount":             intSetter(func(c *Config, n int64) { c.MaxHopCount = int(n) }),
	"MaxHeadersLength":        intSetter(func(c *Config, n int64) { c.MaxHeadersLength = int(n) }),
	"MaxQueueChildren":        intSetter(func(c *Config, n int64) { c.MaxQueueChildren = int(n) }),
	"MaxRunnersPerQueue":      intSetter(func(c *Config, n int64) { c.MaxRunnersPerQueue = int(n) }),
	"BadRcptThrottle":         intSetter(func(c *Config, n int64) { c.BadRcptThrottle = int(n) }),
	"MaxAliasRecursion":       intSetter(func(c *Config, n int64) { c.MaxAliasRecursion = int(n) }),
	"LogLevel":                intSetter(func(c *Config, n int64) { c.LogLevel = int(n) }),
	"DeliveryMode":            setDeliveryMode,
	"MinQueueAge":             durationSetter(func(c *Config, d time.Duration) { c.MinQueueAge = d }),
	"ConnectionCacheSize":     intSetter(func(c *Config, n int64) { c.ConnectionCacheSize = int(n) }),
	"ConnectionCacheTimeout":  durationSetter(func(c *Config, d time.Duration) { c.ConnectionCacheTimeout = d }),
	"ConnectionRateWindowSize": func(c *Config, v string) error { // sendmail: convtime(val, 's')
		d, err := ParseTime(v, 's')
		c.ConnectionRateWindowSize = d
		return err
	},
	"EightBitMode":        eightBitSetter,
	"DefaultCharSet":      func(c *Config, v string) error { c.DefaultCharSet = v; return nil },
	"PrivacyOptions":      setPrivacy,
	"DefaultUser":         func(c *Config, v string) error { c.DefaultUser = v; return nil },
	"TrustedUser":         func(c *Config, v string) error { c.TrustedUser = v; return nil },
	"SafeFileEnvironment": func(c *Config, v string) error { c.SafeFileEnvironment = v; return nil },
	"QueueFileMode":       setQueueFileMode,
	"ErrorMode":           setErrorMode,
	"MeToo":               setMeToo,
	"IgnoreDots":          boolSetter(func(c *Config, b bool) { c.IgnoreDots = b }),
	"DontProbeInterfaces": boolSetter(func(c *Config, b bool) { c.DontProbeInterfaces = b }),
	"QueueSortOrder":      func(c *Config, v string) error { c.QueueSortOrder = strings.ToLower(v); return nil },
	"DoubleBounceAddress": func(c *Config, v string) error { c.DoubleBounceAddress = v; return nil },
	"HelpFile":            func(c *Config, v string) error { c.HelpFile = v; return nil },
	"ServerCertFile":      func(c *Config, v string) error { c.ServerCertFile = v; return nil },
	"ServerKeyFile":       func(c *Config, v string) error { c.ServerKeyFile = v; return nil },
	"Timeout":             setTimeoutList,
	// Read from Values by package mta for its LDAP maps.
	"LDAPDefaultSpec": inValues,
	// Read from Values by package milter, which checks them.
	"InputMailFilters":      inValues,
	"Milter.LogLevel":       inValues,
	"Milter.macros.connect": inValues,
	"Milter.macros.helo":    inValues,
	"Milter.macros.envfrom": inValues,
	"Milter.macros.envrcpt": inValues,
	"Milter.macros.data":    inValues,
	"Milter.macros.eoh":     inValues,
	"Milter.macros.eom":     inValues,
	// posthorn options.
	"MailSpoolDirectory":        func(c *Config, v string) error { c.MailSpoolDirectory = v; return nil },
	"ResolverServers":           func(c *Config, v string) error { c.ResolverServers = splitList(v, ","); return nil },
	"AccessFile":                func(c *Config, v string) error { c.AccessFile = v; return nil },
	"MailerTable":               func(c *Config, v string) error { c.MailerTable = v; return nil },
	"VirtUserTable":             func(c *Config, v string) error { c.VirtUserTable = v; return nil },
	"RelayHosts":                setRelayHosts,
	"AuthFile":                  func(c *Config, v string) error { c.AuthFile = v; return nil },
	"SmrshDirectory":            func(c *Config, v string) error { c.SmrshDirectory = v; return nil },
	"AcceptUnresolvableDomains": boolSetter(func(c *Config, b bool) { c.AcceptUnresolvableDomains = b }),
	"MaxSessionTime":            durationSetter(func(c *Config, d time.Duration) { c.MaxSessionTime = d }),
	"MaxSessionCommands":        intSetter(func(c *Config, n int64) { c.MaxSessionCommands = int(n) }),
	// Outbound TLS (tls.go).
	"TLSPolicyMap":         func(c *Config, v string) error { c.TLS.PolicyMap = v; return nil },
	"TLSDefaultLevel":      setTLSDefaultLevel,
	"DANE":                 boolSetter(func(c *Config, b bool) { c.TLS.DANE = b }),
	"MTASTS":               boolSetter(func(c *Config, b bool) { c.TLS.MTASTS = b }),
	"MTASTSCacheDirectory": func(c *Config, v string) error { c.TLS.MTASTSCacheDirectory = v; return nil },
	"TLSReports":           boolSetter(func(c *Config, b bool) { c.TLS.Reports = b }),
	"TLSReportDirectory":   func(c *Config, v string) error { c.TLS.ReportDirectory = v; return nil },
	"TLSReportSender":      func(c *Config, v string) error { c.TLS.ReportSender = v; return nil },
	"CACertFile":           func(c *Config, v string) error { c.TLS.CACertFile = v; return nil },
	"CACertPath":           func(c *Config, v string) error { c.TLS.CACertPath = v; return nil },
	"ResolverOptions":      setResolverOptions,
}

// inValues honours an option whose value its user reads from Values.
func inValues(*Config, string) error { return nil }

// posthornOptions are the names posthorn adds to sendmail's.
var posthornOptions = []string{"MailSpoolDirectory", "ResolverServers", "AccessFile", "MailerTable", "VirtUserTable", "RelayHosts", "AuthFile", "SmrshDirectory", "AcceptUnresolvableDomains",
	"MaxSessionTime", "MaxSessionCommands",
	"TLSPolicyMap", "TLSDefaultLevel", "MTASTS", "MTASTSCacheDirectory", "TLSReports", "TLSReportDirectory", "TLSReportSender"}

// knownOptions is every option name sendmail 8.17 knows (readcf.c's table).
// Names are matched case-insensitively, as sendmail does.
var knownOptions = strings.Fields(`
AliasFile AliasWait AllowBogusHELO AuthMaxBits AuthMechanisms AuthOptions AuthRealm
AutoRebuildAliases BadRcptThrottle BadRcptThrottleDelay BlankSub CACertFile CACertPath
CRLFile CRLPath CertFingerprintAlgorithm CheckAliases CheckpointInterval CipherList
ClassFactor ClientCertFile ClientKeyFile ClientPortOptions ClientSSLOptions ColonOkInAddr
ConnectOnlyTo ConnectionCacheSize ConnectionCacheTimeout ConnectionRateThrottle
ConnectionRateWindowSize ControlSocketName CopyErrorsTo DANE DHParameters DaemonPortOptions
DataFileBufferSize DeadLetterDrop DefaultAuthInfo DefaultCharSet DefaultUser DelayLA
DeliverByMin DeliveryMode DialDelay DirectSubmissionModifiers DontBlameSendmail
DontExpandCnames DontInitGroups DontProbeInterfaces DontPruneRoutes DoubleBounceAddress
EightBitMode ErrorHeader ErrorMode FallBackSmartHost FallbackMXhost FastSplit ForkEachJob
ForwardPath HeloName HelpFile HoldExpensive HostStatusDirectory HostsFile IgnoreDots
InputMailFilters LDAPDefaultSpec LogLevel MailboxDatabase MatchGECOS MaxAliasRecursion
MaxDaemonChildren MaxHeadersLength MaxHopCount MaxMessageSize MaxMimeHeaderLength
MaxNOOPCommands MaxQueueChildren MaxQueueRunSize MaxRecipientsPerMessage MaxRunnersPerQueue
MeToo Milter.LogLevel Milter.macros.connect Milter.macros.data Milter.macros.envfrom
Milter.macros.envrcpt Milter.macros.eoh Milter.macros.eom Milter.macros.helo MinFreeBlocks
MinQueueAge MaxQueueAge MustQuoteChars NiceQueueRun NoRecipientAction OldStyleHeaders
OperatorChars PidFile PostmasterCopy PrivacyOptions ProcessTitlePrefix QueueDirectory
QueueFactor QueueFileMode QueueLA QueueSortOrder QueueTimeout RandFile RecipientFactor
RefuseLA RejectLogInterval RejectNUL RequiresDirfsync ResolverOptions RetryFactor RrtImpliesDsn
RunAsUser SMTPUTF8 SSLEngine SSLEnginePath SafeFileEnvironment SaveFromLine SendMimeErrors
ServerCertFile ServerKeyFile ServerSSLOptions ServiceSwitchFile SetCertAltnames SevenBitInput
SharedMemoryKey SharedMemoryKeyFile SingleThreadDelivery SmtpGreetingMessage SoftBounce
StatusFile SuperSafe TLSFallbacktoClear TempFileMode Timeout TimeZoneSpec TrustedUser
TryNullMXList UnixFromLine UnsafeGroupWrites UseErrorsTo UseMSP UserDatabaseSpec Verbose
XscriptFileBufferSize
`)

// timeoutNames are the Timeout.<name> keywords sendmail knows.
var timeoutNames = strings.Fields(`
initial connect aconnect iconnect helo mail rcpt datainit datablock datafinal rset quit misc
command ident fileopen control lhlo auth starttls hoststatus resolver.retrans
resolver.retrans.first resolver.retrans.normal resolver.retry resolver.retry.first
resolver.retry.normal queuereturn queuereturn.urgent queuereturn.normal queuereturn.non-urgent
queuereturn.dsn queuewarn queuewarn.urgent queuewarn.normal queuewarn.non-urgent queuewarn.dsn
`)

// shortOptions maps sendmail's one-letter option names (`O<letter>value` in
// old cf files, `-o<letter>value` on the command line) to long names.
var shortOptions = map[byte]string{
	'7': "SevenBitInput", '8': "EightBitMode", 'A': "AliasFile", 'a': "AliasWait",
	'B': "BlankSub", 'b': "MinFreeBlocks", 'C': "CheckpointInterval", 'c': "HoldExpensive",
	'd': "DeliveryMode", 'E': "ErrorHeader", 'e': "ErrorMode", 'f': "SaveFromLine",
	'F': "TempFileMode", 'G': "MatchGECOS", 'H': "HelpFile", 'h': "MaxHopCount",
	'i': "IgnoreDots", 'I': "ResolverOptions", 'J': "ForwardPath", 'j': "SendMimeErrors",
	'k': "ConnectionCacheSize", 'K': "ConnectionCacheTimeout", 'L': "LogLevel",
	'l': "UseErrorsTo", 'm': "MeToo", 'n': "CheckAliases", 'O': "DaemonPortOptions",
	'o': "OldStyleHeaders", 'p': "PrivacyOptions", 'P': "PostmasterCopy",
	'Q': "QueueDirectory", 'q': "QueueFactor", 'R': "DontPruneRoutes", 'r': "Timeout",
	'S': "StatusFile", 's': "SuperSafe", 'T': "QueueTimeout", 't': "TimeZoneSpec",
	'U': "UserDatabaseSpec", 'u': "DefaultUser", 'V': "FallbackMXhost", 'v': "Verbose",
	'w': "TryNullMXList", 'x': "QueueLA", 'X': "RefuseLA", 'Y': "ForkEachJob",
	'y': "RecipientFactor", 'z': "ClassFactor", 'Z': "RetryFactor",
}

// canonicalOption returns the canonical spelling of a long option name, or ""
// when sendmail and posthorn know no such option.
func canonicalOption(name string) string {
	if t, ok := strings.CutPrefix(strings.ToLower(name), "timeout."); ok {
		for _, n := range timeoutNames {
			if n == t {
				return "Timeout." + n
			}
		}
		return ""
	}
	for _, list := range [][]string{knownOptions, posthornOptions} {
		for _, n := range list {
			if strings.EqualFold(n, name) {
				return n
			}
		}
	}
	return ""
}

// splitAliasFiles splits AliasFile as sendmail's setalias does: at
// commas outside parentheses, so that an LDAP filter stays whole
// ("ldap: -k (&(a=b)(c=%0)) -v x, /etc/mail/aliases").
func splitAliasFiles(v string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i <= len(v); i++ {
		if i < len(v) {
			switch v[i] {
			case '(':
				depth++
				continue
			case ')':
				depth = max(0, depth-1)
				continue
			case ',':
				if depth > 0 {
					continue
				}
			default:
				continue
			}
		}
		if f := strings.TrimSpace(v[start:i]); f != "" {
			out = append(out, f)
		}
		start = i + 1
	}
	return out
}

func splitList(v, sep string) []string {
	var out []string
	for _, f := range strings.Split(v, sep) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func intSetter(set func(*Config, int64)) setter {
	return func(c *Config, v string) error {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", v)
		}
		set(c, n)
		return nil
	}
}

func boolSetter(set func(*Config, bool)) setter {
	return func(c *Config, v string) error {
		// sendmail's atobool: empty, or a word starting with t/T/y/Y is true.
		v = strings.TrimSpace(v)
		set(c, v == "" || strings.IndexByte("tTyY", v[0]) >= 0)
		return nil
	}
}

// setMeToo: posthorn always delivers to a sender who is in an alias list
// they mail to, as sendmail does with MeToo=True (its default, and -om).
// The expander sees one recipient at a time without the envelope, so
// MeToo=False is accepted but reported as not interpreted.
func setMeToo(c *Config, v string) error {
	boolSetter(func(c *Config, b bool) { c.MeToo = b })(c, v)
	if !c.MeToo {
		c.noteNotInterpreted("option MeToo=False")
	}
	return nil
}

func durationSetter(set func(*Config, time.Duration)) setter {
	return func(c *Config, v string) error {
		d, err := ParseTime(v, 'm')
		if err != nil {
			return err
		}
		set(c, d)
		return nil
	}
}

// ParseTime reads sendmail's time syntax (convtime): numbers followed by
// s, m, h, d or w, concatenated ("1h30m", "5d"); a number without a unit
// takes defUnit, and a unit without a number counts as zero, as sendmail's
// strtol does. The command line (-q30m) and the Timeout options share it.
func ParseTime(s string, defUnit byte) (time.Duration, error) {
	s = strings.TrimSpace(s)
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		n, _ := strconv.ParseInt(s[:i], 10, 64)
		unit := defUnit
		if i < len(s) {
			unit = s[i]
			i++
		}
		u, ok := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[unit]
		if !ok {
			return 0, fmt.Errorf("invalid time unit `%c'", unit)
		}
		total += time.Duration(n) * u
		s = s[i:]
	}
	return total, nil
}

func setDeliveryMode(c *Config, v string) error {
	if v == "" {
		v = "i"
	}
	switch v[0] {
	case 'b', 'B':
		c.DeliveryMode = DeliverBackground
	case 'i', 'I':
		c.DeliveryMode = DeliverInteractive
	case 'q', 'Q':
		c.DeliveryMode = DeliverQueueOnly
	case 'd', 'D':
		c.DeliveryMode = DeliverDeferred
	default:
		return fmt.Errorf("invalid delivery mode %q", v)
	}
	return nil
}

func setErrorMode(c *Config, v string) error {
	if v == "" || strings.IndexByte("pqmwe", v[0]) < 0 {
		return fmt.Errorf("invalid error mode %q", v)
	}
	c.ErrorMode = v[0]
	return nil
}

func setQueueFileMode(c *Config, v string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
	if err != nil || n > 0o777 {
		return fmt.Errorf("invalid file mode %q", v)
	}
	c.QueueFileMode = uint32(n)
	return nil
}

// privacyGoaway is what PrivacyOptions=goaway stands for.
var privacyGoaway = []string{"needmailhelo", "needexpnhelo", "needvrfyhelo", "noexpn", "novrfy",
	"noverb", "noetrn", "authwarnings", "noreceipts", "nobodyreturn"}

var privacyWords = strings.Fields(`public needmailhelo needexpnhelo needvrfyhelo noexpn novrfy
restrictexpand restrictmailq restrictqrun noreceipts nobodyreturn goaway authwarnings noverb
noetrn noactualrecipient`)

func setPrivacy(c *Config, v string) error {
	c.PrivacyOptions = map[string]bool{}
	for _, w := range strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		known := false
		for _, k := range privacyWords {
			known = known || k == w
		}
		if !known {
			return fmt.Errorf("unknown PrivacyOptions flag %q", w)
		}
		switch w {
		case "public":
		case "goaway":
			for _, g := range privacyGoaway {
				c.PrivacyOptions[g] = true
			}
		default:
			c.PrivacyOptions[w] = true
		}
	}
	return nil
}

// setMinFreeBlocks reads MinFreeBlocks (short option b): "minblocks", or
// "minblocks/maxmsgsize", which also sets MaxMessageSize, as sendmail's
// readcf does for both spellings.
func setMinFreeBlocks(c *Config, v string) error {
	blocks, size, hasSize := strings.Cut(v, "/")
	if hasSize {
		n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", size)
		}
		c.MaxMessageSize = n
	}
	n, err := strconv.ParseInt(strings.TrimSpace(blocks), 10, 64)
	if err != nil {
		return fmt.Errorf("invalid number %q", blocks)
	}
	c.MinFreeBlocks = n
	return nil
}

func setRelayHosts(c *Config, v string) error {
	c.RelayHosts = nil
	for _, f := range splitList(v, ",") {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("invalid network %q", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.RelayHosts = append(c.RelayHosts, p.Masked())
	}
	return nil
}

// setTimeoutList handles the old `Timeout` option (`-or`): either one
// duration for every SMTP read timeout or a list of name=value pairs.
func setTimeoutList(c *Config, v string) error {
	for _, item := range splitList(v, ",") {
		name, val, found := strings.Cut(item, "=")
		if !found {
			d, err := ParseTime(item, 'm')
			if err != nil {
				return err
			}
			for _, n := range []string{"initial", "helo", "mail", "rcpt", "datainit", "datablock", "datafinal", "rset", "quit", "misc", "command"} {
				c.Timeouts[n] = d
			}
			continue
		}
		canon := canonicalOption("Timeout." + name)
		if canon == "" {
			return fmt.Errorf("invalid timeout %q", name)
		}
		d, err := ParseTime(val, 'm')
		if err != nil {
			return err
		}
		c.Timeouts[strings.TrimPrefix(canon, "Timeout.")] = d
	}
	return nil
}

// eightBitSetter takes sendmail's EightBitMode values (option 8): pass8,
// mimefy, strict, or their first letters.
func eightBitSetter(c *Config, v string) error {
	switch strings.ToLower(strings.TrimSpace(v) + " ")[0] {
	case 'p':
		c.EightBitMode = "pass8"
	case 'm':
		c.EightBitMode = "mimefy"
	case 's':
		c.EightBitMode = "strict"
	default:
		return fmt.Errorf("unknown 8-bit mode %s", v)
	}
	return nil
}
