package conf

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// WriteIdentity prints what `sendmail -d0.1` prints before it does any work:
// the version, the configuration file, the host's identity ($w, $j, $m, $k)
// and $=w, then (a posthorn addition) every effective option and what was
// read but not interpreted.
func (c *Config) WriteIdentity(w io.Writer) {
	fmt.Fprintf(w, "Version posthorn %s\n", Version)
	path := c.Path
	if path == "" {
		path = "(embedded defaults)"
	}
	fmt.Fprintf(w, "     Conf file:\t%s (selected)\n", path)
	fmt.Fprintf(w, "      Pid file:\t%s (selected)\n", c.PidFile)
	fmt.Fprintf(w, "Canonical name: %s\n", c.Macros["j"])
	fmt.Fprintf(w, " UUCP nodename: %s\n", c.Macros["k"])
	for _, a := range c.Classes["w"] {
		if a != c.Macros["j"] {
			fmt.Fprintf(w, "\ta.k.a.: %s\n", a)
		}
	}
	fmt.Fprintf(w, "\n============ SYSTEM IDENTITY (after readcf) ============\n")
	fmt.Fprintf(w, "      (short domain name) $w = %s\n", c.Macros["w"])
	fmt.Fprintf(w, "  (canonical domain name) $j = %s\n", c.Macros["j"])
	fmt.Fprintf(w, "         (subdomain name) $m = %s\n", c.Macros["m"])
	fmt.Fprintf(w, "              (node name) $k = %s\n", c.Macros["k"])
	fmt.Fprintf(w, "========================================================\n\n")
	fmt.Fprintf(w, "$=w = %s\n", strings.Join(c.Classes["w"], " "))
	if r := c.Classes["R"]; len(r) > 0 {
		fmt.Fprintf(w, "$=R = %s\n", strings.Join(r, " "))
	}
	fmt.Fprintf(w, "\n============ EFFECTIVE OPTIONS ============\n")
	c.WriteOptions(w)
	if len(c.NotInterpreted) > 0 {
		fmt.Fprintf(w, "Not interpreted: %s\n", strings.Join(c.NotInterpreted, ", "))
	}
	for _, warn := range c.Warnings {
		fmt.Fprintln(w, warn)
	}
	fmt.Fprintf(w, "===========================================\n\n")
}

// WriteOptions prints "O Name=value" for every option in effect, sorted, with
// the typed value where posthorn interprets the option.
func (c *Config) WriteOptions(w io.Writer) {
	names := make([]string, 0, len(c.Values))
	for n := range c.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := c.Values[n]
		if t, ok := strings.CutPrefix(n, "Timeout."); ok {
			v = formatDuration(c.Timeouts[t])
		}
		fmt.Fprintf(w, "O %s=%s\n", n, v)
	}
}

// formatDuration writes a duration in sendmail's units (5d, 4h, 30m, 90s).
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	default:
		return fmt.Sprintf("%ds", d/time.Second)
	}
}
