// Package addrtest is sendmail's address test mode (sendmail -bt) for
// posthorn. sendmail runs addresses through the rewriting rulesets of its
// sendmail.cf; posthorn has no rulesets (it decides with package route), so
// each command shows posthorn's own decision, laid out like sendmail's
// output where the two have the same meaning (04-sendmail-bt-session.txt
// of the reference) and saying so plainly where posthorn has no
// equivalent.
//
// # Commands
//
//	3,0 addr, 0 addr, any rules list + addr
//	                   the routing decision: one "route" line per step,
//	                   then "parse returns: $# mailer $@ host $: user"
//	/parse addr        "Cracked address = $g", the steps, then
//	                   "mailer esmtp, host remote.example, user u@remote.example"
//	/try mailer addr   the address as the mailer would be given it
//	/tryflags [HE][SR] header or envelope, sender or recipient, for /try
//	/mx host           "getmxrr(host) returns N value(s):" and the hosts, in
//	                   the order the relay client tries them
//	/canon host        "getcanonname(host) returns name"
//	/gethostbyname host
//	                   the host's addresses
//	/tls domain, /tls [host][:port]
//	                   the TLS policy the relay client applies to each
//	                   host of the destination (routed as its postmaster
//	                   would be), and why: "mx.example.com: policy=dane,
//	                   verify: 1 usable TLSA record(s) at ...", the TLSA
//	                   records, the MTA-STS policy in force
//	/tlsrpt [domain]   the sessions kept for TLS reports, per day, domain
//	                   and policy, with the failures
//	/map aliases key, /map mailertable key, /map access key
//	                   "map_lookup: map (key) returns value (0)" or
//	                   "no match (68)"
//	/expand string     macro expansion
//	/sender addr       the envelope sender as it is set
//	$x, ${name}        a macro; $=x a class
//	.Dxvalue, .Cxword  define a macro, add to a class (this session only)
//	=M                 the mailers posthorn has
//	=S ruleset         (no rulesets)
//	?                  help
//	/quit              leave (end of input does too)
//
// A prompt "> " is written before each command is read, also when the
// input is not a terminal, as sendmail does.
package addrtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
)

// Resolver is what /mx, /canon and /gethostbyname ask;
// *resolve.Resolver implements it.
type Resolver interface {
	Exchangers(ctx context.Context, domain string) ([]resolve.MX, error)
	Addrs(ctx context.Context, host string) ([]netip.Addr, error)
}

// Mailer is one line of =M.
type Mailer struct {
	Name  string
	Path  string // P=: how posthorn delivers
	Flags string // F=: the flags that decide headers
	Note  string // what it does, in words
}

// Env is everything the commands look at. Nil functions make their
// commands say the thing is not configured.
type Env struct {
	Router   *route.Router
	Macros   map[string]string   // copied: .D changes only this session
	Classes  map[string][]string // copied likewise
	Expand   func(s string, macros map[string]string) string
	Aliases  func(key string) (value string, ok bool, err error)
	Mailer   func(key string) (value string, ok bool) // mailertable
	Access   func(key string) (value string, ok bool)
	Resolver Resolver
	Mailers  []Mailer
	Timeout  time.Duration // per DNS question; 0: 10s
	// TLS decides /tls (the configuration's tlspolicy.Engine);
	// TLSSettings are lines /tls prints first (the options in force).
	// TLSReports lists the TLS report data for /tlsrpt.
	TLS         TLSDecider
	TLSSettings []string
	TLSReports  func(w io.Writer, domain string) error
}

// Run reads commands from in until end of input or /quit and writes the
// answers to out.
func Run(in io.Reader, out io.Writer, env Env) {
	s := &session{env: env, w: out, flags: "ER"}
	s.macros = map[string]string{}
	for k, v := range env.Macros {
		s.macros[k] = v
	}
	s.classes = map[string][]string{}
	for k, v := range env.Classes {
		s.classes[k] = append([]string(nil), v...)
	}
	fmt.Fprintln(out, "ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)")
	fmt.Fprintln(out, "Enter <ruleset> <address>")
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for {
		fmt.Fprint(out, "> ")
		if !sc.Scan() {
			fmt.Fprintln(out)
			return
		}
		line := strings.TrimSpace(sc.Text())
		if line == "/quit" {
			return
		}
		s.command(line)
	}
}

type session struct {
	env     Env
	w       io.Writer
	flags   string // /tryflags: E or H, then S or R
	macros  map[string]string
	classes map[string][]string
}

func (s *session) printf(format string, args ...any) { fmt.Fprintf(s.w, format, args...) }

func (s *session) command(line string) {
	word, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	switch {
	case line == "" || line[0] == '#':
	case line == "?":
		s.help()
	case word == "/parse":
		s.parse(rest)
	case word == "/try":
		m, a, _ := strings.Cut(rest, " ")
		s.try(m, strings.TrimSpace(a))
	case word == "/tryflags":
		s.tryflags(rest)
	case word == "/mx":
		s.mx(rest)
	case word == "/canon":
		s.canon(rest)
	case word == "/gethostbyname":
		s.hostbyname(rest)
	case word == "/tls":
		s.tlsPolicy(rest)
	case word == "/tlsrpt":
		s.tlsReports(rest)
	case word == "/map":
		m, k, _ := strings.Cut(rest, " ")
		s.mapLookup(m, strings.TrimSpace(k))
	case word == "/expand":
		s.printf("%s\n", s.expand(rest))
	case word == "/sender":
		s.sender(rest)
	case strings.HasPrefix(line, "$="):
		for _, w := range s.classes[strings.Trim(line[2:], "{}")] {
			s.printf("%s\n", w)
		}
	case line[0] == '$':
		s.printf("%s\n", s.macros[strings.Trim(line[1:], "{}")])
	case strings.HasPrefix(line, ".D") && len(line) > 2:
		name, value := macroDef(line[2:])
		s.macros[name] = value
	case strings.HasPrefix(line, ".C") && len(line) > 2:
		name, value := macroDef(line[2:])
		s.classes[name] = append(s.classes[name], strings.Fields(value)...)
	case line == "=M":
		s.mailers()
	case strings.HasPrefix(line, "=S"):
		s.printf("posthorn has no rewriting rulesets (sendmail.cf S and R lines are read and not interpreted)\n")
	case strings.HasPrefix(line, "-d"):
		s.printf("posthorn: debug flags are not changed in address test mode\n")
	case line[0] == '/':
		s.printf("Unknown \"/\" command %s\n", word)
	default:
		s.rules(word, rest)
	}
}

// macroDef splits "xvalue" or "{name}value".
func macroDef(s string) (name, value string) {
	if strings.HasPrefix(s, "{") {
		if i := strings.IndexByte(s, '}'); i > 0 {
			return s[1:i], s[i+1:]
		}
	}
	return s[:1], s[1:]
}

func (s *session) expand(str string) string {
	if s.env.Expand == nil {
		return str
	}
	return s.env.Expand(str, s.macros)
}

// resolve parses and routes an address, printing a syntax error.
func (s *session) resolve(a string) (route.Triple, bool) {
	if s.env.Router == nil {
		s.printf("posthorn: no router configured\n")
		return route.Triple{}, false
	}
	t, err := s.env.Router.ResolveString(a)
	if err != nil {
		s.printf("%s\n", status.From(err).Text)
		return t, false
	}
	return t, true
}

func (s *session) steps(t route.Triple) {
	for _, st := range t.Steps {
		s.printf("route              : %s\n", st)
	}
}

// rules answers "3,0 addr": posthorn's decision instead of rulesets.
func (s *session) rules(rules, a string) {
	if a == "" {
		s.printf("Usage: <ruleset> <address>\n")
		return
	}
	t, ok := s.resolve(a)
	if !ok {
		return
	}
	if rules != "0" && !strings.HasSuffix(rules, ",0") {
		s.printf("posthorn has no ruleset %s; showing how the address is routed (ruleset 0)\n", rules)
	}
	s.steps(t)
	s.printf("parse            returns: %s\n", tripleText(t))
}

// tripleText is the triple in ruleset-0 form: "$# esmtp $@ host $: user".
func tripleText(t route.Triple) string {
	switch {
	case t.Mailer == route.Error:
		return fmt.Sprintf("$# error $@ %s $: %q", t.Err.Enhanced, fmt.Sprintf("%d %s", t.Err.Code, t.Err.Text))
	case t.Host != "":
		return fmt.Sprintf("$# %s $@ %s $: %s", t.Mailer, t.Host, t.User)
	}
	return fmt.Sprintf("$# %s $: %s", t.Mailer, t.User)
}

func (s *session) parse(a string) {
	if a == "" {
		s.printf("Usage: /parse address\n")
		return
	}
	s.printf("Cracked address = %s\n", cracked(a))
	s.printf("Parsing envelope recipient address\n")
	t, ok := s.resolve(a)
	if !ok {
		return
	}
	s.steps(t)
	switch {
	case t.Mailer == route.Error:
		s.printf("%s... %s\n", a, t.Err.Text)
		s.printf("mailer error, user %s\n", t.User)
	case t.Host != "":
		s.printf("mailer %s, host %s, user %s\n", t.Mailer, t.Host, t.User)
	default:
		s.printf("mailer %s, user %s\n", t.Mailer, t.User)
	}
}

// cracked is sendmail's crackaddr: the address in its text, replaced by
// $g ("Alice <a@b>" is "Alice <$g>").
func cracked(a string) string {
	p, err := addr.Parse(a)
	if err != nil || p.Null {
		return "$g"
	}
	if i := strings.IndexByte(a, '<'); i >= 0 {
		if j := strings.LastIndexByte(a, '>'); j > i {
			return a[:i+1] + "$g" + a[j:]
		}
	}
	if p.Name != "" {
		return "$g (" + p.Name + ")"
	}
	return "$g"
}

func (s *session) tryflags(f string) {
	f = strings.ToUpper(f)
	if f == "" {
		s.printf("Usage: /tryflags [Hh|Ee][Ss|Rr]\n")
		return
	}
	he, sr := s.flags[:1], s.flags[1:]
	for _, c := range f {
		switch c {
		case 'H', 'E':
			he = string(c)
		case 'S', 'R':
			sr = string(c)
		}
	}
	s.flags = he + sr
}

// try shows an address as mailer m would be given it: a sender, or an
// SMTP mailer's recipient, unqualified gets @$j; our own names become $j;
// the local mailer's recipient is the user.
func (s *session) try(m, a string) {
	if m == "" || a == "" {
		s.printf("Usage: /try mailer address\n")
		return
	}
	known := false
	for _, x := range s.env.Mailers {
		known = known || x.Name == m
	}
	if !known {
		s.printf("Unknown mailer %s\n", m)
		return
	}
	kind := map[string]string{"E": "envelope", "H": "header"}[s.flags[:1]]
	role := map[string]string{"S": "sender", "R": "recipient"}[s.flags[1:]]
	s.printf("Trying %s %s address %s for mailer %s\n", kind, role, a, m)
	p, err := addr.Parse(a)
	if err != nil {
		s.printf("%s\n", status.From(err).Text)
		return
	}
	j := s.macros["j"]
	out := p.String()
	local := p.Domain == "" || (s.env.Router != nil && s.env.Router.IsLocal(p.Domain))
	switch {
	case m == route.Local && role == "recipient" && local:
		out = p.LocalUnquoted()
	case local && j != "":
		out = p.Local + "@" + j
	}
	s.printf("Rcode = 0, addr = %s\n", out)
}

func (s *session) sender(a string) {
	p, err := addr.Parse(a)
	if err != nil {
		s.printf("%s\n", status.From(err).Text)
		return
	}
	out := p.String()
	if p.Domain == "" && !p.Null && s.macros["j"] != "" {
		out += "@" + s.macros["j"]
	}
	s.printf("addr=%s\n", out)
}

func (s *session) ctx() (context.Context, context.CancelFunc) {
	d := s.env.Timeout
	if d <= 0 {
		d = 10 * time.Second
	}
	return context.WithTimeout(context.Background(), d)
}

// mx lists the exchangers in the order the relay client tries them.
func (s *session) mx(host string) {
	if host == "" {
		s.printf("Usage: /mx address\n")
		return
	}
	if s.env.Resolver == nil {
		s.printf("posthorn: no resolver configured\n")
		return
	}
	ctx, cancel := s.ctx()
	defer cancel()
	mxs, err := s.env.Resolver.Exchangers(ctx, host)
	s.printf("getmxrr(%s) returns %d value(s):\n", host, len(mxs))
	for _, m := range mxs {
		s.printf("\t%s.\n", strings.TrimSuffix(m.Host, "."))
	}
	// A name that does not exist is just "returns 0 value(s):", as
	// sendmail prints it; other failures (temporary, null MX, a list
	// that leads back to us) are said, which sendmail does not.
	var se *status.Error
	if err != nil && !(errors.As(err, &se) && se.Enhanced == "5.1.2") {
		s.printf("\t(%s)\n", errText(err))
	}
}

func errText(err error) string {
	var se *status.Error
	if errors.As(err, &se) {
		return se.Error()
	}
	return err.Error()
}

// canon is the host's canonical name: the target of a CNAME, or the name
// itself when it has addresses.
func (s *session) canon(host string) {
	if host == "" {
		s.printf("Usage: /canon address\n")
		return
	}
	name := host
	if s.env.Resolver != nil {
		ctx, cancel := s.ctx()
		defer cancel()
		if mxs, err := s.env.Resolver.Exchangers(ctx, host); err == nil && len(mxs) == 1 && mxs[0].Implicit {
			name = mxs[0].Host
		}
	}
	s.printf("getcanonname(%s) returns %s\n", host, name)
}

func (s *session) hostbyname(host string) {
	if s.env.Resolver == nil {
		s.printf("posthorn: no resolver configured\n")
		return
	}
	ctx, cancel := s.ctx()
	defer cancel()
	ips, err := s.env.Resolver.Addrs(ctx, strings.Fields(host + " x")[0])
	if err != nil {
		s.printf("getipnodebyname(%s) failed: %s\n", host, errText(err))
		return
	}
	s.printf("getipnodebyname(%s) returns %d address(es):\n", host, len(ips))
	for _, ip := range ips {
		s.printf("\t%s\n", ip)
	}
}

func (s *session) mapLookup(name, key string) {
	if name == "" || key == "" {
		s.printf("Usage: /map mapname key\n")
		return
	}
	var (
		v   string
		ok  bool
		err error
	)
	switch name {
	case "aliases":
		if s.env.Aliases == nil {
			s.printf("Map named \"%s\" not found\n", name)
			return
		}
		v, ok, err = s.env.Aliases(strings.ToLower(key))
	case "mailertable":
		if s.env.Mailer == nil {
			s.printf("Map named \"%s\" not found\n", name)
			return
		}
		v, ok = s.env.Mailer(key)
	case "access":
		if s.env.Access == nil {
			s.printf("Map named \"%s\" not found\n", name)
			return
		}
		v, ok = s.env.Access(key)
	default:
		s.printf("Map named \"%s\" not found\n", name)
		return
	}
	switch {
	case err != nil:
		s.printf("map_lookup: %s (%s) deferred (75): %v\n", name, key, err)
	case ok:
		s.printf("map_lookup: %s (%s) returns %s (0)\n", name, key, v)
	default:
		s.printf("map_lookup: %s (%s) no match (68)\n", name, key)
	}
}

func (s *session) mailers() {
	for i, m := range s.env.Mailers {
		s.printf("mailer %d (%s): P=%s F=%s (%s)\n", i, m.Name, m.Path, m.Flags, m.Note)
	}
}

func (s *session) help() {
	s.printf(`Help for test mode (posthorn: no rulesets; addresses are routed by posthorn's one routing function):
?		 :this help message.
.Dmvalue	 :define macro ` + "`m' to `value'" + `.
.Ccvalue	 :add ` + "`value' to class `c'" + `.
=M		 :display the known mailers.
$m		 :print the value of macro $m.
$=c		 :print the contents of class $=c.
/mx host	 :returns the MX records for ` + "`host'" + `, in the order they are tried.
/gethostbyname host :the addresses of ` + "`host'" + `.
/parse address	 :parse address, returning the value of crackaddr, and
		  the parsed address (mailer, host, user) with each step that chose it.
/sender address	 :parse sender address, returning the value of
		  setsender.
/expand string	 :expands string, returning the value of expand.
/try mailer addr :the address in the form it will have when
		  presented to the indicated mailer.
/tryflags flags	 :set flags used by /try.  The flags can be ` + "`H' for" + `
		  Header or ` + "`E' for Envelope, and `S' for Sender or `R'" + `
		  for Recipient.  These can be combined, ` + "`HR' sets" + `
		  flags for header recipients.
/canon hostname	 :try to canonify hostname.
/map mapname key :look up ` + "`key' in `aliases', `mailertable' or `access'" + `.
/tls domain	 :the TLS policy (map, DANE, MTA-STS) for each host of ` + "`domain'" + `.
/tlsrpt [domain] :the sessions kept for TLS reports.
/quit		 :quit address test mode.
rules addr	 :show how addr is routed (posthorn has no rulesets to run).
End of HELP info
`)
}
