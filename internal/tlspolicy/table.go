package tlspolicy

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
)

// Entry is one line of the TLS policy map.
type Entry struct {
	Key   string // as matched: "example.com", ".example.com", "[mx.example.com]:587"
	Level Level
	// Match lists the match= names, in order ("hostname", "nexthop",
	// "dot-nexthop", "mx.example.com", ".example.com"); nil: the level's
	// default.
	Match []string
	Line  int
	// Err is a line that names the destination but cannot be obeyed (an
	// unknown level or attribute): mail for the destination is deferred
	// rather than sent with less protection than the admin asked for.
	Err error
}

// Table is the TLS policy map.
type Table struct {
	entries  map[string]*Entry
	warnings []string
}

// Warnings are the lines that were skipped or partly ignored.
func (t *Table) Warnings() []string { return t.warnings }

// Len is the number of entries.
func (t *Table) Len() int { return len(t.entries) }

// ignoredAttrs are Postfix attributes posthorn reads and does not act on.
var ignoredAttrs = map[string]bool{"protocols": true, "ciphers": true, "exclude": true, "tafile": true,
	"connection_reuse": true, "enable_rpk": true, "servername": true}

// LoadTable reads the map file; a missing file is an empty map.
func LoadTable(path string) (*Table, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Table{entries: map[string]*Entry{}}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t := ParseTable(f, path)
	return t, nil
}

// ParseTable reads a map (see the package comment). name prefixes the
// warnings.
func ParseTable(r io.Reader, name string) *Table {
	t := &Table{entries: map[string]*Entry{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var logical string
	start, n := 0, 0
	flush := func() {
		if logical != "" {
			t.addLine(logical, start, name)
		}
		logical = ""
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "" || trimmed[0] == '#':
			// a comment or blank line ends nothing (Postfix's rule)
		case line[0] == ' ' || line[0] == '\t':
			if logical == "" {
				t.warnings = append(t.warnings, fmt.Sprintf("%s, line %d: continuation line without an entry", name, n))
				continue
			}
			logical += " " + trimmed
		default:
			flush()
			logical, start = trimmed, n
		}
	}
	flush()
	if err := sc.Err(); err != nil {
		t.warnings = append(t.warnings, fmt.Sprintf("%s: %v", name, err))
	}
	return t
}

func (t *Table) addLine(line string, n int, name string) {
	f := strings.Fields(line)
	key, err := normKey(f[0])
	if err != nil {
		t.warnings = append(t.warnings, fmt.Sprintf("%s, line %d: %v", name, n, err))
		return
	}
	if _, dup := t.entries[key]; dup {
		t.warnings = append(t.warnings, fmt.Sprintf("%s, line %d: duplicate entry %s ignored", name, n, key))
		return
	}
	e := &Entry{Key: key, Line: n}
	t.entries[key] = e
	fail := func(err error) {
		e.Err = err
		t.warnings = append(t.warnings, fmt.Sprintf("%s, line %d: %s: %v (mail to it is deferred)", name, n, key, err))
	}
	if len(f) < 2 {
		fail(errors.New("no security level"))
		return
	}
	if e.Level, err = ParseLevel(f[1]); err != nil {
		fail(err)
		return
	}
	for _, a := range f[2:] {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case !ok:
			fail(fmt.Errorf("attribute %q is not name=value", a))
			return
		case k == "match":
			if e.Level != Verify && e.Level != Secure {
				t.warnings = append(t.warnings, fmt.Sprintf("%s, line %d: match= only applies to verify and secure", name, n))
				continue
			}
			for _, m := range strings.Split(v, ":") {
				if m = strings.ToLower(strings.TrimSpace(m)); m != "" {
					e.Match = append(e.Match, m)
				}
			}
			if len(e.Match) == 0 {
				fail(errors.New("empty match="))
				return
			}
		case ignoredAttrs[k]:
			t.warnings = append(t.warnings, fmt.Sprintf("%s, line %d: %s= is not interpreted", name, n, k))
		default:
			fail(fmt.Errorf("unknown attribute %q", k))
			return
		}
	}
}

// normKey checks and normalises a key: a domain, ".domain", "[host]",
// "[host]:port", "[address]".
func normKey(k string) (string, error) {
	k = strings.ToLower(k)
	if strings.HasPrefix(k, "[") {
		end := strings.IndexByte(k, ']')
		if end < 0 {
			return "", fmt.Errorf("bad key %q", k)
		}
		host, rest := k[1:end], k[end+1:]
		host = strings.TrimPrefix(host, "ipv6:")
		if !validHost(strings.TrimSuffix(host, ".")) && !isAddr(host) {
			return "", fmt.Errorf("bad key %q", k)
		}
		if rest != "" {
			p, err := strconv.Atoi(strings.TrimPrefix(rest, ":"))
			if !strings.HasPrefix(rest, ":") || err != nil || p <= 0 || p > 65535 {
				return "", fmt.Errorf("bad port in key %q", k)
			}
			rest = ":" + strconv.Itoa(p)
		}
		return "[" + strings.TrimSuffix(host, ".") + "]" + rest, nil
	}
	dom := strings.TrimSuffix(strings.TrimPrefix(k, "."), ".")
	if !validHost(dom) {
		return "", fmt.Errorf("bad key %q", k)
	}
	if strings.HasPrefix(k, ".") {
		return "." + dom, nil
	}
	return dom, nil
}

// Lookup finds the entry for a destination: nexthop as the relay client
// routes it ("example.com", "[mx.example.com]", "[192.0.2.1]") and the
// port. A bracketed next hop is looked up with its port ("[host]:587",
// when not 25), then without; a domain as itself, then as each parent
// domain with a leading dot (".example.com" matches its subdomains).
func (t *Table) Lookup(nexthop string, port int) (*Entry, bool) {
	if t == nil || len(t.entries) == 0 {
		return nil, false
	}
	k, err := normKey(nexthop)
	if err != nil {
		return nil, false
	}
	if strings.HasPrefix(k, "[") {
		if port != 0 && port != 25 {
			if e, ok := t.entries[k+":"+strconv.Itoa(port)]; ok {
				return e, true
			}
		}
		e, ok := t.entries[k]
		return e, ok
	}
	if e, ok := t.entries[k]; ok {
		return e, true
	}
	for d := k; ; {
		_, parent, ok := strings.Cut(d, ".")
		if !ok {
			return nil, false
		}
		if e, ok := t.entries["."+parent]; ok {
			return e, true
		}
		d = parent
	}
}

func validHost(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func isAddr(s string) bool {
	_, err := netip.ParseAddr(s)
	return err == nil
}
