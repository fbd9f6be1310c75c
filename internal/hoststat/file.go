package hoststat

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// maxField is how much of the D and R lines sendmail writes ("%.80s").
const maxField = 80

// Format returns the status file for s, as sendmail's mci_store_persistent
// writes it.
func Format(s Status) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "V0\nE%d\nH%d\nS%d\n", s.Errno, s.Herrno, s.Exit)
	if s.DSN != "" {
		fmt.Fprintf(&b, "D%s\n", field(s.DSN))
	}
	if s.Reply != "" {
		fmt.Fprintf(&b, "R%s\n", field(s.Reply))
	}
	fmt.Fprintf(&b, "U%d\n.\n", s.Updated.Unix())
	return b.Bytes()
}

// field is a D or R value on one line: newlines become spaces (sendmail's
// denlstring) and at most 80 bytes are kept.
func field(v string) string {
	v = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(v)
	if len(v) > maxField {
		v = v[:maxField]
	}
	return v
}

// Parse reads a status file as sendmail's mci_read_persistent: each line is
// a letter and a value; numbers are read as C's atoi reads them; the file
// ends at the "." line. An unknown line or version, or a file without a V
// line and without the final ".", is an error. The Host is not in the file
// (it is the file's path).
func Parse(data []byte) (Status, error) {
	var s Status
	version := false
	for len(data) > 0 {
		var line string
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = string(data[:i]), data[i+1:]
		} else {
			line, data = string(data), nil
		}
		if line == "" {
			return Status{}, errors.New(`unknown host status line ""`)
		}
		v := line[1:]
		switch line[0] {
		case 'V':
			if n := atoi(v); n != 0 {
				return Status{}, fmt.Errorf("unknown host status version %d: 0 max", n)
			}
			version = true
		case 'E':
			s.Errno = atoi(v)
		case 'H':
			s.Herrno = atoi(v)
		case 'S':
			s.Exit = atoi(v)
		case 'D':
			s.DSN = v
		case 'R':
			s.Reply = v
		case 'U':
			s.Updated = time.Unix(atol(v), 0)
		case '.':
			return s, nil
		default:
			return Status{}, fmt.Errorf("unknown host status line %q", line)
		}
	}
	if !version {
		return Status{}, errors.New("incomplete host status (no version, no final dot)")
	}
	return s, nil
}

// atol is C's atol: leading white space, a sign, digits; anything else
// ends the number. Out-of-range values are clamped.
func atol(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(s[:j], 10, 64)
	if err != nil && j > i {
		if s[0] == '-' {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return n
}

func atoi(s string) int {
	return int(max(min(atol(s), math.MaxInt32), math.MinInt32))
}

// Path returns where the status of host lives under dir, as sendmail's
// mci_generate_persistent_path: the labels in reverse, each directory
// with a trailing dot ("mx.remote.example" → dir/example./remote./mx),
// lower case, '/' written as ':'. A bracketed address is split at its
// dots like a name ("[192.0.2.1]" → dir/1./2./0./192). Empty names, names
// that start with a dot or hold an empty label, and bracketed text that is
// no address have no path.
func Path(dir, host string) (string, error) {
	name, err := canonHost(host)
	if err != nil {
		return "", err
	}
	labels := strings.Split(name, ".")
	parts := []string{dir}
	for i := len(labels) - 1; i > 0; i-- {
		parts = append(parts, labels[i]+".")
	}
	return filepath.Join(append(parts, labels[0])...), nil
}

// canonHost is the host name a status is kept under: lower case, without
// brackets or trailing dots, '/' as ':'.
func canonHost(host string) (string, error) {
	if host == "" || host[0] == '.' {
		return "", fmt.Errorf("host status: bad host name %q", host)
	}
	h := host
	bracketed := h[0] == '['
	if bracketed {
		h = strings.TrimRight(h[1:], ".]")
		if a, err := netip.ParseAddr(h); err != nil || a.Zone() != "" {
			return "", fmt.Errorf("host status: bad address %q", host)
		}
	}
	h = strings.TrimRight(h, ".")
	if h == "" || strings.Contains(h, "..") {
		return "", fmt.Errorf("host status: bad host name %q", host)
	}
	for i := 0; i < len(h); i++ {
		if h[i] < ' ' || h[i] == 0x7f {
			return "", fmt.Errorf("host status: bad host name %q", host)
		}
	}
	return strings.ReplaceAll(strings.ToLower(h), "/", ":"), nil
}

// hostOf is the host name of a status file given its path below the
// directory, components in order ("example.", "remote.", "mx"): the reverse
// of Path.
func hostOf(components []string) string {
	labels := make([]string, 0, len(components))
	for i := len(components) - 1; i >= 0; i-- {
		labels = append(labels, strings.TrimSuffix(components[i], "."))
	}
	return strings.Join(labels, ".")
}
