package dsn

import (
	"fmt"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/status"
)

// Notify is a recipient's RFC 3461 NOTIFY setting. The zero value means
// NOTIFY was not given, which sendmail treats as FAILURE,DELAY. In qf terms:
// no N flag is 0; N with S/F/D flags is the matching bits; N alone is
// NotifyNever.
type Notify uint8

// NOTIFY keywords.
const (
	NotifySuccess Notify = 1 << iota
	NotifyFailure
	NotifyDelay
	NotifyNever // NOTIFY=NEVER: no report of any kind
)

// Effective returns the setting with the default applied.
func (n Notify) Effective() Notify {
	if n == 0 {
		return NotifyFailure | NotifyDelay
	}
	return n
}

// String renders the NOTIFY= value: "SUCCESS,FAILURE,DELAY", "NEVER", or
// "" when not given.
func (n Notify) String() string {
	if n&NotifyNever != 0 {
		return "NEVER"
	}
	var w []string
	for _, k := range []struct {
		bit  Notify
		name string
	}{{NotifySuccess, "SUCCESS"}, {NotifyFailure, "FAILURE"}, {NotifyDelay, "DELAY"}} {
		if n&k.bit != 0 {
			w = append(w, k.name)
		}
	}
	return strings.Join(w, ",")
}

// ParseNotify parses a NOTIFY= parameter value (case-insensitive). Like
// sendmail, a bad value is answered with its first word quoted:
//
//	501 5.5.4 Bad argument "BOGUS"  to NOTIFY
//	501 5.5.4 Bad argument "NEVER"  to NOTIFY     (for NEVER,SUCCESS)
func ParseNotify(v string) (Notify, error) {
	words := strings.Split(v, ",")
	bad := status.New(501, "5.5.4", "Bad argument \"%s\"  to NOTIFY", words[0])
	var n Notify
	for _, w := range words {
		switch strings.ToUpper(w) {
		case "SUCCESS":
			n |= NotifySuccess
		case "FAILURE":
			n |= NotifyFailure
		case "DELAY":
			n |= NotifyDelay
		case "NEVER":
			n |= NotifyNever
		default:
			return 0, bad
		}
	}
	if n&NotifyNever != 0 && n != NotifyNever {
		return 0, bad
	}
	return n, nil
}

// Action is what happened to a recipient (RFC 3464 Action field).
type Action uint8

// Actions, with the Action field text sendmail writes.
const (
	Failed          Action = iota + 1 // "failed"
	Delayed                           // "delayed"
	Delivered                         // "delivered (to mailbox)"
	DeliveredToList                   // "delivered (to mailing list)"
	Relayed                           // "relayed (to non-DSN-aware mailer)"
	Expanded                          // "expanded (to multi-recipient alias)"
)

func (a Action) String() string {
	switch a {
	case Failed:
		return "failed"
	case Delayed:
		return "delayed"
	case Delivered:
		return "delivered (to mailbox)"
	case DeliveredToList:
		return "delivered (to mailing list)"
	case Relayed:
		return "relayed (to non-DSN-aware mailer)"
	case Expanded:
		return "expanded (to multi-recipient alias)"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// success is the phrase of the human-readable success list.
func (a Action) success() string {
	switch a {
	case Delivered:
		return "successfully delivered to mailbox"
	case DeliveredToList:
		return "successfully delivered to mailing list"
	case Relayed:
		return "relayed to non-DSN-aware mailer"
	case Expanded:
		return "expanded by alias"
	}
	return ""
}

// Wants reports whether a recipient with NOTIFY setting n is to be named in
// a report of what happened to it: failures need FAILURE, delays DELAY,
// deliveries, relays to non-DSN mailers and alias expansions SUCCESS. The
// default (n == 0) is FAILURE,DELAY; NEVER wants nothing.
func Wants(n Notify, a Action) bool {
	n = n.Effective()
	switch a {
	case Failed:
		return n&NotifyFailure != 0
	case Delayed:
		return n&NotifyDelay != 0
	case Delivered, DeliveredToList, Relayed, Expanded:
		return n&NotifySuccess != 0
	}
	return false
}

// Interval renders a duration the way sendmail's pintvl does in
// messages: "1 second", "4 hours", "5 days", "1 week, 2 days, 3 hours";
// "zero seconds" for 0. Fractions of a second are dropped.
func Interval(d time.Duration) string {
	s := int64(d / time.Second)
	if s <= 0 {
		return "zero seconds"
	}
	parts := []struct {
		n    int64
		unit string
	}{
		{s / (7 * 86400), "week"},
		{s / 86400 % 7, "day"},
		{s / 3600 % 24, "hour"},
		{s / 60 % 60, "minute"},
		{s % 60, "second"},
	}
	var w []string
	for _, p := range parts {
		if p.n > 0 {
			u := p.unit
			if p.n != 1 {
				u += "s"
			}
			w = append(w, fmt.Sprintf("%d %s", p.n, u))
		}
	}
	return strings.Join(w, ", ")
}

// WarningLines are the transcript lines sendmail's queue runner writes when
// a message is still queued after Timeout.queuewarn (warn); ret is
// Timeout.queuereturn.
func WarningLines(warn, ret time.Duration) []string {
	return []string{
		"Warning: message still undelivered after " + Interval(warn),
		"Will keep trying until message is " + Interval(ret) + " old",
	}
}

// TimeoutLines are the transcript lines written when a message is given up
// after Timeout.queuereturn (ret); its remaining recipients then fail with
// status 4.4.7.
func TimeoutLines(ret time.Duration) []string {
	return []string{
		"Message could not be delivered for " + Interval(ret),
		"Message will be deleted from queue",
	}
}

// TimeoutReason is the message a message given up after Timeout.queuereturn
// carries (logged with the report, shown by mailq): "Cannot send message
// for 5 days".
func TimeoutReason(ret time.Duration) string { return "Cannot send message for " + Interval(ret) }

// WarningReason is the reason logged with a delay warning; it is also the
// warning's Subject.
func WarningReason(warn time.Duration) string {
	return "Warning: could not send message for past " + Interval(warn)
}

// LogLabel is the word sendmail logs between the queue IDs when it makes a
// report, "<orig ID>: <new ID>: <label>: <reason>" (05-syslog-mail-log-full.txt):
// "return to sender" when the original is itself a report (qf flag r),
// "sender notify" for a delay warning and for any report about a message
// that already had one (qf flag w), "postmaster notify" for a report to the
// postmaster, else "DSN". The reason is the last error ("User unknown",
// "Host unknown (...)"), TimeoutReason, WarningReason or "Return receipt",
// shortened as addresses are.
func LogLabel(k Kind, origIsReport, warned bool) string {
	switch {
	case origIsReport:
		return "return to sender"
	case warned || k == Delay:
		return "sender notify"
	case k == PostmasterNotify:
		return "postmaster notify"
	}
	return "DSN"
}
