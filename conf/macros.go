package conf

import (
	"net"
	"os"
	"strings"
)

// Expand replaces sendmail macros in s: $x and ${name} by their values
// (looked up in extra first, then in the configuration's macros), $&x as
// $x, and the conditional $?x then-part $| else-part $. by the then-part
// when x is set and non-empty. Unknown macros expand to nothing, as in
// sendmail.
func (c *Config) Expand(s string, extra map[string]string) string {
	lookup := func(name string) string {
		if v, ok := extra[name]; ok {
			return v
		}
		return c.Macros[name]
	}
	var b strings.Builder
	// skip[i] is true while inside a branch of the i-th open conditional
	// that is not taken.
	var skip []bool
	skipping := func() bool {
		for _, s := range skip {
			if s {
				return true
			}
		}
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch != '$' || i+1 >= len(s) {
			if !skipping() {
				b.WriteByte(ch)
			}
			continue
		}
		i++
		op := s[i]
		switch op {
		case '?':
			name, n := readMacroName(s[i+1:])
			i += n
			skip = append(skip, lookup(name) == "")
		case '|':
			if len(skip) > 0 {
				skip[len(skip)-1] = !skip[len(skip)-1]
			}
		case '.':
			if len(skip) > 0 {
				skip = skip[:len(skip)-1]
			}
		case '&':
			name, n := readMacroName(s[i+1:])
			i += n
			if !skipping() {
				b.WriteString(lookup(name))
			}
		case '$':
			if !skipping() {
				b.WriteByte('$')
			}
		default:
			name, n := readMacroName(s[i:])
			i += n - 1
			if !skipping() {
				b.WriteString(lookup(name))
			}
		}
	}
	return b.String()
}

// readMacroName reads "x" or "{name}" at the start of s and returns the
// name and the bytes consumed.
func readMacroName(s string) (string, int) {
	if s == "" {
		return "", 0
	}
	if s[0] == '{' {
		if end := strings.IndexByte(s, '}'); end > 0 {
			return s[1:end], end + 1
		}
	}
	return s[:1], 1
}

// Identity is what the host calls itself: the source of $w, $j, $m, $k and
// of the names in $=w.
type Identity struct {
	Hostname  string   // as gethostname(2) says
	Canonical string   // fully qualified name; empty to derive it
	Addresses []string // interface addresses, for the [a.b.c.d] entries of $=w
}

// SystemIdentity reads the host's name, qualifies it through /etc/hosts (no
// DNS: the daemon may start before the network), and lists its interface
// addresses.
func SystemIdentity() *Identity {
	id := &Identity{}
	id.Hostname, _ = os.Hostname()
	if data, err := os.ReadFile("/etc/hosts"); err == nil {
		id.Canonical = qualifyFromHosts(id.Hostname, string(data))
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				id.Addresses = append(id.Addresses, ipn.IP.String())
			}
		}
	}
	return id
}

// qualifyFromHosts finds the fully qualified name of host in an /etc/hosts
// text: the first dotted name on a line that lists host.
func qualifyFromHosts(host, hosts string) string {
	if strings.Contains(host, ".") {
		return host
	}
	for _, line := range strings.Split(hosts, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		names := f[1:]
		listed := false
		for _, n := range names {
			listed = listed || strings.EqualFold(n, host)
		}
		if !listed {
			continue
		}
		for _, n := range names {
			if strings.Contains(n, ".") && strings.HasPrefix(strings.ToLower(n), strings.ToLower(host)+".") {
				return n
			}
		}
	}
	return host
}

// settleIdentity fills $w, $j, $m and $k (unless the file or -M set them)
// and adds the host's names and address literals to $=w, as sendmail does
// at start.
func (c *Config) settleIdentity(id *Identity) {
	host := id.Hostname
	if host == "" {
		host = "localhost"
	}
	canonical := id.Canonical
	if canonical == "" {
		canonical = host
	}
	short, _, _ := strings.Cut(host, ".")
	if c.Macros["w"] == "" {
		c.Macros["w"] = short
	}
	if c.Macros["j"] == "" {
		c.Macros["j"] = canonical
	} else {
		c.Macros["j"] = c.Expand(c.Macros["j"], nil)
	}
	if c.Macros["k"] == "" {
		c.Macros["k"] = short
	}
	if c.Macros["m"] == "" {
		if _, dom, ok := strings.Cut(c.Macros["j"], "."); ok {
			c.Macros["m"] = dom
		}
	}
	c.AddClass("w", c.Macros["w"], c.Macros["j"])
	if c.DontProbeInterfaces {
		return
	}
	for _, a := range id.Addresses {
		if strings.Contains(a, ":") {
			c.AddClass("w", "[IPv6:"+a+"]")
		} else {
			c.AddClass("w", "["+a+"]")
		}
	}
}
