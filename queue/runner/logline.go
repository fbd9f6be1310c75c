package runner

import "strings"

// Log line bounds of sendmail's logdelivery (deliver.c), for its default
// SYSLOG_BUFSIZE of 1024: a status is shortened to 203 bytes (STATLEN
// capped at MAXSHORTSTR), and the recipient list of one line leaves 100
// bytes of the buffer for the syslog header and the queue ID.
const (
	syslogBufSize = 1024
	maxShortStr   = 203
)

// shorten is sendmail's shortenstring: a string of m bytes or more keeps
// its first and last (m-3)/2 bytes around "...".
func shorten(s string, m int) string {
	if len(s) < m {
		return s
	}
	if m > maxShortStr {
		m = maxShortStr
	}
	if m < 10 {
		if m < 5 {
			return s[:m]
		}
		return s[:m-3] + "..."
	}
	k := (m - 3) / 2
	return s[:k] + "..." + s[len(s)-k:]
}

// toLines splits a delivery log line with the recipient list to (joined
// with commas) and the fields rest ("ctladdr=..., stat=...") as sendmail
// does: while the list is too long for one line, the part up to the last
// comma that fits goes on a line of its own, marked " [more]" (each line
// carries all the fields); a last piece without a comma that fits is cut.
func toLines(to, rest string) []string {
	rest = ", " + rest
	l := syslogBufSize - 100 - len(rest)
	if l < 0 {
		l = 0
	}
	var out []string
	for len(to) >= l {
		q := l
		if q >= len(to) {
			q = len(to) - 1
		}
		for q > 0 && to[q] != ',' {
			q--
		}
		if q <= 0 {
			break
		}
		out = append(out, "to="+to[:q+1]+" [more]"+rest)
		to = to[q+1:]
	}
	if len(to) > l {
		to = to[:l]
	}
	return append(out, "to="+to+rest)
}

// joinTo is the recipient list of a log line.
func joinTo(addrs []string) string { return strings.Join(addrs, ",") }
