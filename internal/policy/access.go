// Package policy holds the SMTP server's decisions that are not protocol:
// who may relay, what the access file says about a client, sender or
// recipient, whether another connection may be served, and who may
// authenticate. Everything here is a plain function or value of its own
// inputs (no sockets, no DNS), so it is table-tested and shared by the
// SMTP server, -bs and -bv.
//
// # The access file
//
// AccessFile is plain text in the syntax of sendmail's access database
// source (what makemap reads), one entry per line:
//
//	# comment
//	Connect:127.0.0.1        RELAY
//	Connect:10.1             ERROR:"550 go away"
//	Connect:spammer.example  REJECT
//	From:spammer@            REJECT
//	From:friend@example.org  OK
//	To:example.com           RELAY
//	To:abuse@example.net     OK
//	badguy.example           DISCARD
//
// A key is a tag ("Connect:", "From:", "To:", case-insensitive) and a
// value to match; a key without a tag applies to every kind of lookup.
// "ClientRate:" and "ClientConn:" keys hold per-client connection limits
// (clients.go).
// The value is separated by white space and is one of OK (accept, skip
// the remaining checks of this kind), RELAY (as OK, and allow relaying:
// for Connect: the client, for To: the domain), REJECT (refuse with
// sendmail's default text), DISCARD (accept and throw the message away),
// SKIP (stop looking at shorter keys) or ERROR:text where text is
// "550 text", "5.7.1:550 text" or the same in double quotes. Other values
// (sendmail's FRIEND, HATER, spam-feature values) are kept but ignored.
//
// Lookups go from the most to the least specific key: for an IPv4 client
// 10.1.2.3, then 10.1.2, 10.1, 10; for a host name a.b.example, then
// b.example, example; for an address user@a.b.example: user@a.b.example,
// a.b.example, b.example, example, then user@. Keys are case-insensitive.
//
// # Relaying
//
// A recipient is relayed when the router (package route, the one answer
// delivery uses too) does not call it local: its domain, after the
// classic tricks are followed, is not one of ours ($=w). A source route
// is dropped ("@a,@b:user@c" is user@c); on a local domain "user%host@us"
// and "host!user@us" go to host; a quoted local part is one local name; a
// "[ip]" literal is ours only when it is in $=w. Relaying is allowed for
// clients in RelayHosts, clients with a Connect: RELAY entry,
// authenticated and local (-bs) clients, and for destinations in class R
// or with a To: RELAY entry. Otherwise the answer is sendmail's "550 5.7.1
// <rcpt>... Relaying denied", with ". IP name lookup failed [ip]" when the
// client has no PTR record and ". IP name possibly forged [ip]" when its
// PTR name does not resolve back to it.
//
// # Connection limits
//
// Limiter applies MaxDaemonChildren (refuse with 421 4.3.2 when full) and
// ConnectionRateThrottle (slow down, as sendmail does) per listener;
// ClientCounter and the access file's ClientRate: and ClientConn: entries
// bound each client (clients.go).
package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// Action is what an access entry says.
type Action int

// Actions of the access file; None means no entry matched.
const (
	None Action = iota
	OK
	Relay
	Reject
	Discard
	Skip
	Error
	Other
)

// Decision is the result of an access lookup.
type Decision struct {
	Action Action
	Value  string        // the value as written ("RELAY", `ERROR:"550 go away"`)
	Err    *status.Error // for ERROR: the reply it gives; nil otherwise
}

// Access is a parsed access file. The zero value and nil have no entries.
type Access struct {
	m map[string]Decision // key "connect:10.1" / "from:user@" / ":untagged"
	// find, when set, is the map the entries live in instead of m (an
	// LDAP access map): keys as in the file, "connect:10.1", "10.1".
	find Finder
}

// Finder looks a key up in a map that is not a file: its value, whether
// there is one, or an error when the map cannot answer.
type Finder func(key string) (string, bool, error)

// ErrMapTempFail is an access lookup the map could not answer, as
// sendmail's -T<TMPF> map flag makes it: the command is deferred.
var ErrMapTempFail = status.New(451, "4.3.0", "Temporary system failure. Please try again later.")

// NewAccessMap is an access table kept in another map (sendmail.cf's
// "Kaccess ldap ... (sendmailMTAMapName=access)(sendmailMTAKey=%0)"):
// every lookup asks find. A map that cannot answer gives an ERROR
// decision with ErrMapTempFail, never a permanent refusal.
func NewAccessMap(find Finder) *Access { return &Access{find: find} }

// get is the one lookup of a normalized key ("connect:10.1", ":10.1").
func (a *Access) get(key string) (Decision, bool) {
	if a == nil {
		return Decision{}, false
	}
	if a.find == nil {
		d, ok := a.m[key]
		return d, ok
	}
	v, ok, err := a.find(strings.TrimPrefix(key, ":"))
	if err != nil {
		return Decision{Action: Error, Value: "TEMP", Err: ErrMapTempFail}, true
	}
	if !ok {
		return Decision{}, false
	}
	d, err := parseValue(strings.TrimSpace(v))
	if err != nil {
		d = Decision{Action: Other, Value: v}
	}
	return d, true
}

// LoadAccess reads an access file; a file that does not exist gives an
// empty table (sendmail runs without one).
func LoadAccess(path string) (*Access, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Access{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseAccess(f, path)
}

// ParseAccess reads access entries from r; name is used in error messages
// ("access: line 3: missing value").
func ParseAccess(r io.Reader, name string) (*Access, error) {
	a := &Access{m: map[string]Decision{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return nil, fmt.Errorf("%s: line %d: missing value for %q", name, n, line)
		}
		key, val := line[:i], strings.TrimSpace(line[i:])
		d, err := parseValue(val)
		if err != nil {
			return nil, fmt.Errorf("%s: line %d: %v", name, n, err)
		}
		a.m[normKey(key)] = d
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	return a, nil
}

// normKey lower-cases a key and gives untagged keys the ":" prefix.
func normKey(key string) string {
	k := strings.ToLower(key)
	for _, tag := range []string{"connect:", "from:", "to:", "clientrate:", "clientconn:"} {
		if strings.HasPrefix(k, tag) {
			return k
		}
	}
	return ":" + k
}

func parseValue(v string) (Decision, error) {
	d := Decision{Value: v}
	up := strings.ToUpper(v)
	switch {
	case up == "OK":
		d.Action = OK
	case up == "RELAY":
		d.Action = Relay
	case up == "REJECT":
		d.Action = Reject
	case up == "DISCARD":
		d.Action = Discard
	case up == "SKIP":
		d.Action = Skip
	case strings.HasPrefix(up, "ERROR:"):
		e, err := parseErrorValue(v[len("ERROR:"):])
		if err != nil {
			return d, err
		}
		d.Action, d.Err = Error, e
	default:
		d.Action = Other
	}
	return d, nil
}

// parseErrorValue reads `"550 text"`, `550 text`, `5.7.1:550 text` or
// `550 5.7.1 text`.
func parseErrorValue(s string) (*status.Error, error) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	enh := ""
	if i := strings.IndexByte(s, ':'); i > 0 && isEnhanced(s[:i]) {
		enh, s = s[:i], s[i+1:]
	}
	if len(s) < 3 {
		return nil, fmt.Errorf("bad ERROR value %q", s)
	}
	code, err := strconv.Atoi(s[:3])
	if err != nil || code < 400 || code > 599 || (len(s) > 3 && s[3] != ' ') {
		return nil, fmt.Errorf("bad ERROR value %q: need a 4xx or 5xx reply code", s)
	}
	text := strings.TrimSpace(s[3:])
	if enh == "" {
		if f := strings.Fields(text); len(f) > 0 && isEnhanced(f[0]) {
			enh, text = f[0], strings.TrimSpace(text[len(f[0]):])
		}
	}
	if enh == "" {
		enh = fmt.Sprintf("%d.0.0", code/100)
	}
	return &status.Error{Code: code, Enhanced: enh, Text: text}, nil
}

func isEnhanced(s string) bool {
	p := strings.Split(s, ".")
	if len(p) != 3 || (p[0] != "4" && p[0] != "5" && p[0] != "2") {
		return false
	}
	for _, x := range p[1:] {
		if _, err := strconv.Atoi(x); err != nil || len(x) > 3 {
			return false
		}
	}
	return true
}

// Get is an exact lookup of a key as written in the file ("Connect:127",
// "To:example.com"), for -bt's /map access: the value as written.
func (a *Access) Get(key string) (string, bool) {
	d, ok := a.get(normKey(key))
	return d.Value, ok
}

// lookup tries tag+key then the untagged key.
func (a *Access) lookup(tag, key string) (Decision, bool) {
	if d, ok := a.get(tag + key); ok {
		return d, true
	}
	return a.get(":" + key)
}

// walk looks keys up in order and stops at the first hit; SKIP ends the
// search with no decision.
func (a *Access) walk(tag string, keys []string) Decision {
	for _, k := range keys {
		if d, ok := a.lookup(tag, strings.ToLower(k)); ok {
			if d.Action == Skip {
				return Decision{}
			}
			return d
		}
	}
	return Decision{}
}

// Connect looks up a client by address, then by its (verified) name.
func (a *Access) Connect(ip netip.Addr, name string) Decision {
	var keys []string
	if ip.IsValid() {
		ip = ip.Unmap()
		if ip.Is4() {
			parts := strings.Split(ip.String(), ".")
			for n := 4; n > 0; n-- {
				keys = append(keys, strings.Join(parts[:n], "."))
			}
		} else {
			keys = append(keys, "ipv6:"+ip.String())
		}
	}
	keys = append(keys, domainKeys(name)...)
	return a.walk("connect:", keys)
}

// From looks up an envelope sender.
func (a *Access) From(addr string) Decision { return a.walk("from:", addrKeys(addr)) }

// To looks up an envelope recipient.
func (a *Access) To(addr string) Decision { return a.walk("to:", addrKeys(addr)) }

func domainKeys(d string) []string {
	d = strings.TrimSuffix(d, ".")
	var keys []string
	for d != "" {
		keys = append(keys, d)
		i := strings.IndexByte(d, '.')
		if i < 0 {
			break
		}
		d = d[i+1:]
	}
	return keys
}

func addrKeys(addr string) []string {
	local, domain := splitAddr(addr)
	if domain == "" {
		return []string{local}
	}
	keys := []string{local + "@" + domain}
	keys = append(keys, domainKeys(domain)...)
	return append(keys, local+"@")
}

// splitAddr splits at the last '@' that is not inside double quotes.
func splitAddr(addr string) (local, domain string) {
	at := -1
	quoted := false
	for i := 0; i < len(addr); i++ {
		switch addr[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case '@':
			if !quoted {
				at = i
			}
		}
	}
	if at < 0 {
		return addr, ""
	}
	return addr[:at], addr[at+1:]
}
