// Package rfcdate formats dates the way sendmail 8 writes them in mail
// headers (its arpadate function): the RFC 5322 date-time
//
//	Wed, 25 Nov 2026 04:25:50 GMT      (UTC: "GMT", not "+0000")
//	Tue, 24 Nov 2026 23:36:37 -0500    (other zones: numeric offset, no zone comment)
//
// The day of the month has no leading zero or space ("Thu, 5 Nov 2026"),
// the year has four digits, and the offset is clamped to ±2359 as sendmail
// does. Date, Received, Arrival-Date and Last-Attempt-Date all use it.
package rfcdate

import (
	"strconv"
	"time"
)

// Format returns t in sendmail's header date form, in t's own location.
func Format(t time.Time) string {
	return string(Append(make([]byte, 0, 32), t))
}

// Append appends Format(t) to b.
func Append(b []byte, t time.Time) []byte {
	b = t.AppendFormat(b, "Mon, 2 Jan 2006 15:04:05 ")
	_, off := t.Zone()
	off /= 60 // minutes
	if off == 0 {
		return append(b, "GMT"...)
	}
	sign := byte('+')
	if off < 0 {
		sign, off = '-', -off
	}
	if off >= 24*60 {
		off = 23*60 + 59
	}
	b = append(b, sign)
	hhmm := (off/60)*100 + off%60
	if hhmm < 1000 {
		b = append(b, '0')
	}
	if hhmm < 100 {
		b = append(b, '0')
	}
	if hhmm < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(hhmm), 10)
}
