// Package header is what sendmail 8 knows about message header fields
// beyond their syntax: which fields hold addresses and how those are
// rewritten, the Bcc rule, resent messages, and how values taken from the
// command line are made safe to put into a header.
//
// # Field classes (sendmail's HdrInfo)
//
//	address fields   From Sender Reply-To Errors-To Disposition-Notification-To
//	                 Resent-From Resent-Sender Resent-Reply-To
//	                 To Cc Bcc Resent-To Resent-Cc Resent-Bcc Apparently-To
//	recipient fields To Cc Bcc Apparently-To, and the Resent- ones
//	Bcc fields       Bcc Resent-Bcc
//	resent fields    Resent-From Resent-Sender Resent-Reply-To Resent-To
//	                 Resent-Cc Resent-Bcc Resent-Date Resent-Message-Id
//
// A message with any resent field is a resent message: "sendmail -t" then
// takes its recipients from the Resent- recipient fields only.
//
// # Address rewriting
//
// Addresses in address fields are rewritten when a message is written out
// (Rewriter): this host's own names (localhost, localhost.$m, $w, $j, its
// address literals: HostNames) become $j for every mailer, and for SMTP
// mailers, and for local submission as sendmail's MSP relays it, an
// unqualified address also gets "@$j". Display names, comments, groups and
// quoted strings are kept byte for byte.
//
// # The Bcc rule (sendmail's EF_DELETE_BCC, qf flag b)
//
// A Bcc field's addresses are never written out. When the message has a
// To, Cc or Apparently-To field the Bcc field is left out altogether
// (DeleteBcc, the qf's b flag); otherwise it is written as an empty "Bcc:",
// so that the message still has a recipient field.
//
// # Values from the command line
//
// Clean turns CR, LF and NUL into spaces (sendmail's denlstring turns
// newlines into spaces), so that -f, -F and the GECOS name can never start
// a new header line; QuoteName quotes a full name holding characters that
// would change the meaning of a From: field, as sendmail does for -F.
package header

import (
	"strings"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/queue"
)

type class uint8

const (
	addressField class = 1 << iota
	recipientField
	bccField
	resentField
)

var fields = map[string]class{
	"from":                        addressField,
	"sender":                      addressField,
	"reply-to":                    addressField,
	"errors-to":                   addressField,
	"disposition-notification-to": addressField,
	"resent-from":                 addressField | resentField,
	"resent-sender":               addressField | resentField,
	"resent-reply-to":             addressField | resentField,
	"to":                          addressField | recipientField,
	"cc":                          addressField | recipientField,
	"bcc":                         addressField | recipientField | bccField,
	"apparently-to":               addressField | recipientField,
	"resent-to":                   addressField | recipientField | resentField,
	"resent-cc":                   addressField | recipientField | resentField,
	"resent-bcc":                  addressField | recipientField | bccField | resentField,
	"resent-date":                 resentField,
	"resent-message-id":           resentField,
}

func classOf(name string) class { return fields[strings.ToLower(name)] }

// IsAddress reports whether a field holds addresses that are rewritten.
func IsAddress(name string) bool { return classOf(name)&addressField != 0 }

// IsBcc reports whether a field is Bcc or Resent-Bcc.
func IsBcc(name string) bool { return classOf(name)&bccField != 0 }

// IsRecipient reports whether "sendmail -t" takes recipients from a field:
// a recipient field, and in a resent message only a Resent- one.
func IsRecipient(name string, resent bool) bool {
	c := classOf(name)
	return c&recipientField != 0 && (!resent || c&resentField != 0)
}

// Resent reports whether hs is a resent message (sendmail's EF_RESENT).
func Resent(hs []queue.Header) bool {
	for _, h := range hs {
		if classOf(h.Name)&resentField != 0 {
			return true
		}
	}
	return false
}

// Has reports whether hs has a field called name.
func Has(hs []queue.Header, name string) bool {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return true
		}
	}
	return false
}

// DeleteBcc reports whether Bcc fields are left out rather than emptied:
// the message has a To, Cc or Apparently-To field (the qf flag b).
func DeleteBcc(hs []queue.Header) bool {
	return Has(hs, "To") || Has(hs, "Cc") || Has(hs, "Apparently-To")
}

// Rewriter rewrites the addresses of address fields.
type Rewriter struct {
	Hostname string                   // $j
	Self     func(domain string) bool // this host's own names (HostNames); nil: none
}

// Value returns the value of field name as written out: unchanged unless
// it is an address field; then this host's names become $j, and with
// qualify unqualified addresses get "@$j".
func (r *Rewriter) Value(name, value string, qualify bool) string {
	if r == nil || !IsAddress(name) {
		return value
	}
	return addr.RewriteHeader(value, addr.HeaderRewrite{Domain: r.Hostname, Qualify: qualify, Self: r.Self})
}

// Submission is a locally submitted message's own header fields as
// sendmail's MSP hands them to the MTA: addresses qualified and this
// host's names made $j, Bcc fields left out or emptied by the Bcc rule.
// hs is not changed.
func (r *Rewriter) Submission(hs []queue.Header) []queue.Header {
	del := DeleteBcc(hs)
	out := make([]queue.Header, 0, len(hs))
	for _, h := range hs {
		switch {
		case IsBcc(h.Name) && del:
			continue
		case IsBcc(h.Name):
			h.Value = ""
		default:
			h.Value = r.Value(h.Name, h.Value, true)
		}
		out = append(out, h)
	}
	return out
}

// HostNames returns the test for this host's own names, the domains that
// header addresses are canonicalised from, as sendmail's canonify ruleset
// does: localhost, localhost.$m, $w, $j, and the address literals of $=w
// ("[127.0.0.1]"; "[IPv6:::1]" matches "[::1]"). Other names in $=w (the
// virtual domains of local-host-names) are kept as written.
func HostNames(j, w string, classW []string) func(domain string) bool {
	names := []string{"localhost", j, w}
	if _, m, ok := strings.Cut(j, "."); ok {
		names = append(names, "localhost."+m)
	}
	set := addr.NewNames(names...)
	for _, n := range classW {
		if _, ok := addr.LiteralIP(n); ok {
			set.Add(n)
		}
	}
	return set.Contains
}

// Clean makes a value from the command line or the password file safe to
// put into a header field: each CR, LF and NUL becomes a space. changed
// reports whether there was any, which sendmail logs as a possible attack.
func Clean(s string) (clean string, changed bool) {
	if !strings.ContainsAny(s, "\r\n\x00") {
		return s, false
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '\r', '\n', 0:
			return ' '
		}
		return r
	}, s), true
}

// mustQuote are the characters that make a full name a quoted string:
// sendmail's MustQuoteChars ("@,;:\()[].'") and the angle brackets, which
// would otherwise let a name pose as an address.
const mustQuote = "@,;:\\()[].'<>"

// QuoteName returns a full name (-F) as the display name of a From: field:
// as it is when it is a valid phrase (specials only inside quotes,
// comments or after a backslash, quotes and parentheses balanced), else in
// double quotes with " and \ escaped, as sendmail's rfc822_string and
// addquotes do.
func QuoteName(s string) string {
	if phraseOK(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}

func phraseOK(s string) bool {
	quoted, depth := false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i == len(s) {
				return false
			}
		case depth == 0 && c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			if depth == 0 {
				return false
			}
			depth--
		case depth == 0 && strings.IndexByte(mustQuote, c) >= 0:
			return false
		}
	}
	return !quoted && depth == 0
}
