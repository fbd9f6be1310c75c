// Package ldapmap is sendmail's "ldap" map class: a key looked up in an
// LDAP directory (OpenLDAP, replicated or not) with sendmail's map
// arguments and schema, for aliases (AliasFile=ldap:), the mailertable,
// the virtusertable and LDAP routing. The client is go-ldap.
//
// # Map specification
//
// A spec is what follows the class in sendmail.cf ("O AliasFile=ldap:
// SPEC", "Kmailertable ldap SPEC", "O LDAPDefaultSpec=SPEC"): flags
// "-x value" (white space after the letter optional; a value in double
// quotes may hold spaces):
//
//	-k filter     search filter; %0 is the key (escaped as RFC 4515 wants), %% a '%'
//	-v attrs      attributes returned: "name[:type[:objectclass]],...";
//	              type normal (the default); attributes of type dn, filter
//	              and url (sendmail's recursion) are not followed (Unfollowed),
//	              and a list of only those is refused
//	-b base       search base              -s scope   base, one or sub (default)
//	-h "hosts"    host[:port] list, tried in order (replicas)   -p port (389)
//	-H "uris"     ldap://host:port or ldaps://host:port, tried in order
//	-d dn         bind DN                  -M method  none (default) or simple
//	-P file       for -M simple: the file whose first line is the password
//	-l seconds    time limit of a search (and the network timeout; default 5)
//	-Z n          size limit               -1  exactly one entry must match
//	-z c          delimiter joining the values of several entries and
//	              attributes (aliases: ','); without it the first value is used
//	-w version    only 3 is spoken         -r deref, -R, -n, -t, -T, -q, -o, -A, -a, -N, -O, -S, -m, -f, -D
//	              accepted and ignored
//	-x            (posthorn) StartTLS on ldap:// connections
//
// LDAPDefaultSpec gives the connection flags (-h, -H, -p, -b, -d, -M, -P,
// -s, -l, -x) that a map's own spec does not set.
//
// An alias map without a spec ("ldap:") uses sendmail's default for
// aliases: the filter
// (&(objectClass=sendmailMTAAliasObject)(sendmailMTAAliasGrouping=aliases)(|(sendmailMTACluster=${sendmailMTACluster})(sendmailMTAHost=$j))(sendmailMTAKey=%0))
// and the attribute sendmailMTAAliasValue, values joined with ','.
// Schema: sendmail's cf/sendmail.schema (a copy is in testdata).
//
// # Lookups
//
// A value found, or not found, is kept for CacheTTL (default 30 s). A
// server that cannot be reached or answers with an error is a temporary
// failure (Lookup's error): the callers defer (451 at RCPT, the queue
// keeps the message), never bounce. The next lookup tries again, each
// URI in turn.
package ldapmap

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Spec is a parsed map specification.
type Spec struct {
	URIs      []string // ldap:// or ldaps:// URIs, in order
	hosts     []string // -h, resolved into URIs with the port
	port      int
	Base      string
	Scope     int // ldap.ScopeBaseObject, ScopeSingleLevel, ScopeWholeSubtree
	scopeSet  bool
	BindDN    string
	Simple    bool   // -M simple
	Secret    string // the password read from SecretFile
	secret    string // -P as given
	Filter    string
	Attrs     []string
	Timeout   time.Duration
	SizeLimit int
	Single    bool // -1
	Delim     string
	StartTLS  bool
	// Unfollowed are the -v attributes of a recursive type ("name:FILTER")
	// that are not read: sendmail follows them, posthorn does not.
	Unfollowed []string
}

// AliasFilter and AliasAttr are sendmail's default alias map, before
// the macros are expanded.
const (
	AliasFilter = "(&(objectClass=sendmailMTAAliasObject)(sendmailMTAAliasGrouping=aliases)(|(sendmailMTACluster=${sendmailMTACluster})(sendmailMTAHost=$j))(sendmailMTAKey=%0))"
	AliasAttr   = "sendmailMTAAliasValue"
)

// ParseSpec reads a spec (see the package comment); defaults is the
// parsed LDAPDefaultSpec or nil. readFile reads -P (nil: os.ReadFile).
func ParseSpec(spec string, defaults *Spec, readFile func(string) ([]byte, error)) (*Spec, error) {
	if readFile == nil {
		readFile = os.ReadFile
	}
	s := &Spec{Scope: ldap.ScopeWholeSubtree}
	args, err := splitArgs(spec)
	if err != nil {
		return nil, err
	}
	for _, a := range args {
		flag, val := a[0][0], a[1]
		switch flag {
		case 'k':
			s.Filter = val
		case 'v':
			for _, f := range strings.Split(val, ",") {
				name, typ, _ := strings.Cut(strings.TrimSpace(f), ":")
				typ, _, _ = strings.Cut(typ, ":")
				if name == "" {
					continue
				}
				if typ != "" && !strings.EqualFold(typ, "normal") {
					// sendmail's m4 lists sendmailMTAMapSearch:FILTER
					// and sendmailMTAMapURL:URL after the value: the
					// plain values are read, these are not followed.
					s.Unfollowed = append(s.Unfollowed, name+":"+typ)
					continue
				}
				s.Attrs = append(s.Attrs, name)
			}
			if len(s.Attrs) == 0 && len(s.Unfollowed) > 0 {
				return nil, fmt.Errorf("-v %s: attribute types dn, filter and url (recursion) are not supported", val)
			}
		case 'b':
			s.Base = val
		case 's':
			switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(val), "LDAP_SCOPE_")) {
			case "base":
				s.Scope = ldap.ScopeBaseObject
			case "one", "onelevel":
				s.Scope = ldap.ScopeSingleLevel
			case "sub", "subtree":
				s.Scope = ldap.ScopeWholeSubtree
			default:
				return nil, fmt.Errorf("scope must be [base|one|sub] (not %s)", val)
			}
			s.scopeSet = true
		case 'h':
			s.hosts = strings.Fields(val)
		case 'H':
			for _, u := range strings.Fields(val) {
				if !strings.HasPrefix(strings.ToLower(u), "ldap://") && !strings.HasPrefix(strings.ToLower(u), "ldaps://") {
					return nil, fmt.Errorf("-H %s: only ldap:// and ldaps:// URIs are supported", u)
				}
				s.URIs = append(s.URIs, strings.TrimSuffix(u, "/"))
			}
		case 'p':
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("-p %s: not a port", val)
			}
			s.port = n
		case 'd':
			s.BindDN = val
		case 'M':
			switch strings.ToLower(strings.TrimPrefix(strings.ToUpper(val), "LDAP_AUTH_")) {
			case "none":
				s.Simple = false
			case "simple":
				s.Simple = true
			default:
				return nil, fmt.Errorf("method for binding must be [none|simple] (not %s)", val)
			}
		case 'P':
			s.secret = val
		case 'l':
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("-l %s: not a number of seconds", val)
			}
			s.Timeout = time.Duration(n) * time.Second
		case 'Z':
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("-Z %s: not a number", val)
			}
			s.SizeLimit = n
		case '1':
			s.Single = true
		case 'z':
			s.Delim = val
			switch val {
			case `\n`:
				s.Delim = "\n"
			case `\t`:
				s.Delim = "\t"
			}
		case 'x':
			s.StartTLS = true
		case 'w':
			if val != "3" {
				return nil, fmt.Errorf("-w %s: only LDAP version 3 is spoken", val)
			}
		case 'r', 'R', 'n', 't', 'T', 'q', 'o', 'A', 'a', 'N', 'O', 'S', 'm', 'f', 'D', 'K', 'V':
			// sendmail's generic map flags and tuning: no effect here.
		default:
			return nil, fmt.Errorf("illegal option %c", flag)
		}
	}
	if len(s.hosts) > 0 && len(s.URIs) > 0 {
		return nil, fmt.Errorf("can not specify both an LDAP host and an LDAP URI")
	}
	if defaults != nil {
		s.inherit(defaults)
	}
	if len(s.URIs) == 0 {
		hosts := s.hosts
		if len(hosts) == 0 {
			hosts = []string{"localhost"}
		}
		port := s.port
		if port == 0 {
			port = 389
		}
		for _, h := range hosts {
			if _, _, err := net.SplitHostPort(h); err != nil {
				h = net.JoinHostPort(strings.Trim(h, "[]"), strconv.Itoa(port))
			}
			s.URIs = append(s.URIs, "ldap://"+h)
		}
	}
	if s.Simple && s.secret != "" {
		data, err := readFile(s.secret)
		if err != nil {
			return nil, fmt.Errorf("LDAP map: cannot open secret %s: %v", s.secret, err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		s.Secret = strings.TrimSuffix(line, "\r")
	}
	if s.Timeout == 0 {
		s.Timeout = 5 * time.Second
	}
	return s, nil
}

// inherit fills the connection settings the spec does not give from d.
func (s *Spec) inherit(d *Spec) {
	if len(s.URIs) == 0 && len(s.hosts) == 0 {
		s.URIs, s.hosts = d.URIs, d.hosts
		if s.port == 0 {
			s.port = d.port
		}
	}
	if s.Base == "" {
		s.Base = d.Base
	}
	if !s.scopeSet && d.scopeSet {
		s.Scope = d.Scope
	}
	if s.BindDN == "" {
		s.BindDN = d.BindDN
	}
	if !s.Simple && d.Simple {
		s.Simple, s.Secret, s.secret = true, d.Secret, d.secret
	}
	if s.Timeout == 0 {
		s.Timeout = d.Timeout
	}
	s.StartTLS = s.StartTLS || d.StartTLS
}

// splitArgs splits "-k (a=b) -v x -1" into flag/value pairs. A value is
// the rest of the word after the flag letter, or the next word when that
// is empty (unless it starts with '-'); double quotes group words.
func splitArgs(spec string) ([][2]string, error) {
	words, err := fields(spec)
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if len(w) < 2 || w[0] != '-' {
			return nil, fmt.Errorf("%q: not a map flag", w)
		}
		flag, val := w[1], w[2:]
		if val == "" && takesValue(flag) && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
			i++
			val = words[i]
		}
		out = append(out, [2]string{string(flag), val})
	}
	return out, nil
}

func takesValue(flag byte) bool { return strings.IndexByte("kvbshHpdMPlZzwrTaADS", flag) >= 0 }

// fields splits at white space outside double quotes and drops the
// quotes.
func fields(s string) ([]string, error) {
	var out []string
	var b strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted, in = !quoted, true
		case !quoted && (c == ' ' || c == '\t' || c == '\n'):
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unbalanced quote in %q", s)
	}
	if in {
		out = append(out, b.String())
	}
	return out, nil
}
