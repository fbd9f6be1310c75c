// Package dsn builds delivery status notifications (RFC 3464
// multipart/report messages) byte for byte in sendmail 8's layout, and
// decides who gets them.
//
// # Who gets a report
//
// A report goes to the envelope sender of the original message, never to
// the null sender <>. A failure of a message from <> (a bounce that bounced)
// goes once to the postmaster as a "Postmaster notify"; if that message
// fails in turn, nothing more is sent (the double bounce is dropped). Delay
// warnings are not sent to owner-* and *-request senders (mailing lists),
// as sendmail does. Within a report only recipients whose NOTIFY setting
// asks for it are named (Wants); a report naming nobody is not sent.
//
// # Layout (LF line ends; <B> is "<new queue ID>.<epoch>/<$j>")
//
//	Received: from localhost (localhost)
//		by <$j> (<$v/$Z>) id <new ID>;
//		<date>
//	Date: <date>
//	From: Mail Delivery Subsystem <MAILER-DAEMON>
//	Message-Id: <<YYYYMMDDhhmm in UTC>.<new ID>@<$j>>
//	To: <original sender as stored, or postmaster>
//	MIME-Version: 1.0
//	Content-Type: multipart/report; report-type=delivery-status;
//		boundary="<B>"
//	[Content-Transfer-Encoding: 8bit]           (8-bit original)
//	Subject: Returned mail: see transcript for details
//	       | Warning: could not send message for past <queuewarn>
//	       | Return receipt
//	       | Postmaster notify: see transcript for details
//	Auto-Submitted: auto-generated (failure | warning-timeout | return-receipt | postmaster-notification)
//
//	This is a MIME-encapsulated message
//
//	--<B>
//
//	[the "THIS IS A WARNING MESSAGE ONLY" star box and a blank line]  (delay)
//	The original message was received at <arrival date>
//	from <$_ of the original>
//	[with id <original ID>]                     (postmaster notify)
//
//	   ----- The following addresses had permanent fatal errors -----
//	<address>
//	    (reason: <diagnostic>)
//	    (expanded from: <alias>)
//
//	   ----- The following addresses had successful delivery notifications -----
//	<address>  (successfully delivered to mailbox)
//
//	   ----- Transcript of session follows -----
//	<transcript lines>
//
//	--<B>
//	Content-Type: message/delivery-status
//
//	[Original-Envelope-Id: <ENVID, xtext decoded>]
//	Reporting-MTA: dns; <$j>
//	[Received-From-MTA: DNS; <client host>]
//	Arrival-Date: <date>
//
//	[Original-Recipient: <ORCPT as given>]     (one block per recipient)
//	Final-Recipient: <RFC822; address>
//	[X-Actual-Recipient: rfc822; <user[@$j]>]  (when it differs from Final-Recipient)
//	Action: <failed | delayed | delivered (to mailbox) | ...>
//	Status: <x.y.z>
//	[Remote-MTA: DNS; <host without trailing dot>]
//	[Diagnostic-Code: SMTP; <reply>]
//	Last-Attempt-Date: <date>
//	[Will-Retry-Until: <arrival + queuereturn>]  (delayed)
//
//	--<B>
//	Content-Type: text/rfc822-headers | message/rfc822
//	[Content-Transfer-Encoding: 8bit]
//
//	<original header>
//	[<blank line> <original body>]              (message/rfc822)
//
//	--<B>--
//	<blank line>
//
// Dates are sendmail's (package rfcdate): "GMT" for UTC, else "-0500".
// Lines naming addresses are shortened as sendmail's shortenstring does
// (over 202 bytes: first 100 + "..." + last 100).
package dsn

import (
	"errors"
	"strings"
	"time"
)

// Kind is the kind of report.
type Kind uint8

// Report kinds.
const (
	Failure          Kind = iota // permanent failures (including queuereturn timeouts)
	Delay                        // delay warning after Timeout.queuewarn
	Receipt                      // return receipt for NOTIFY=SUCCESS
	PostmasterNotify             // a failure report sent to the postmaster (double bounce)
)

// subject and auto are the Subject and Auto-Submitted values of a kind.
func (k Kind) subject(warn time.Duration) (subject, auto string) {
	switch k {
	case Delay:
		return WarningReason(warn), "warning-timeout"
	case Receipt:
		return "Return receipt", "return-receipt"
	case PostmasterNotify:
		return "Postmaster notify: see transcript for details", "postmaster-notification"
	}
	return "Returned mail: see transcript for details", "failure"
}

// Return says how much of the original message a report carries.
type Return uint8

// Return modes.
const (
	Headers Return = iota // text/rfc822-headers (RET=HDRS, or PrivacyOptions=nobodyreturn)
	Full                  // message/rfc822 with the body (RET=FULL)
)

// Recipient is what a report says about one recipient of the original.
type Recipient struct {
	// Address is the address as sendmail kept it (q_paddr: as written in
	// RCPT TO, on the command line or in an alias), shown in the
	// human-readable part: "<bob@localhost>", "someone@remote.example".
	Address string
	// ExpandedFrom is the alias the address came from, as written
	// ("to-remote", "<nosuchuser>"); shown as "(expanded from: ...)".
	ExpandedFrom string
	Notify       Notify
	// ORCPT is the ORCPT parameter as received ("rfc822;bob@localhost");
	// empty leaves out Original-Recipient.
	ORCPT string
	// FinalRecipient is the Final-Recipient value ("RFC822; bob@localhost",
	// the qf r line). Empty: "rfc822; " + User (qualified with $j).
	FinalRecipient string
	// User is the mailer's user (q_user): "bob" for the local mailer,
	// "someone@remote.example" for SMTP. X-Actual-Recipient is
	// "rfc822; User" (with "@$j" when User has no "@"), written when it
	// differs from FinalRecipient.
	User   string
	Action Action
	// Status is the enhanced status code; empty gives 5.0.0, 4.0.0 or
	// 2.0.0 by Action.
	Status string
	// RemoteMTA is the host that gave the answer (a trailing dot is dropped);
	// empty leaves out Remote-MTA.
	RemoteMTA string
	// Diagnostic is the reply that decided ("550 5.1.1 <x>... User
	// unknown"); shown as "(reason: ...)" and Diagnostic-Code. Empty (as
	// for queue timeouts) leaves both out.
	Diagnostic string
	// LastAttempt is the time of the last try; zero means Report.Now.
	LastAttempt time.Time
}

// Report is everything a DSN is made from. It is plain data, so the queue
// runner fills it from a qf file and tests fill it from captures.
type Report struct {
	Kind Kind

	Hostname string // $j: Reporting-MTA, Message-Id and boundary domain
	Version  string // "$v/$Z" for the Received header, e.g. "8.17.1.9/8.17.1.9/Debian-2+deb12u2"
	QueueID  string // queue ID of the new DSN message

	// From is the From header; empty gives "Mail Delivery Subsystem
	// <MAILER-DAEMON>" (unqualified, as the MTA writes it; the SMTP client
	// qualifies header addresses when relaying).
	From string
	// DoubleBounce is where failures of null-sender mail go (sendmail's
	// DoubleBounceAddress); empty gives "postmaster".
	DoubleBounce string

	// The original message.
	OriginalID      string        // its queue ID ("with id" in postmaster notifications)
	Sender          string        // envelope sender as stored: "<alice@x>", "root"; "" or "<>" for null
	Arrival         time.Time     // when it was received (qf T)
	ReceivedFrom    string        // sendmail's $_ for it: "localhost [127.0.0.1]", "root@localhost"
	ReceivedFromMTA string        // client host name when the report is made in the receiving SMTP session (Received-From-MTA); "" in queue runs
	EnvID           string        // ENVID as received (xtext); "" for none
	Return          Return        // how much of it to include
	EightBit        bool          // its body is 8-bit (BODY=8BITMIME): adds Content-Transfer-Encoding: 8bit
	Header          []byte        // its header block as delivered (LF line ends, Return-Path first)
	Body            []byte        // its body (LF line ends); used with Return == Full
	Recipients      []Recipient   // what happened, in queue order
	Transcript      []string      // transcript lines (the xf file), without line ends; nil writes "Transcript of session is unavailable", empty writes nothing
	WarnAfter       time.Duration // Timeout.queuewarn, for the delay Subject
	ReturnAfter     time.Duration // Timeout.queuereturn, for Will-Retry-Until

	// Now is the time the report is made; its location is the zone of
	// the Date header ("GMT" when UTC). Message-Id always uses UTC.
	Now time.Time
}

// Message is a DSN ready to be queued.
type Message struct {
	Kind      Kind   // the kind sent (a Failure to <> becomes PostmasterNotify)
	Sender    string // envelope sender: always "" (the null sender <>)
	Recipient string // envelope recipient: the original sender without brackets, or the postmaster
	Header    []byte // header block, each line ending in LF, without the blank line
	Body      []byte // body, LF line ends
}

// Bytes returns the whole message: header, blank line, body.
func (m *Message) Bytes() []byte {
	b := make([]byte, 0, len(m.Header)+1+len(m.Body))
	b = append(b, m.Header...)
	b = append(b, '\n')
	return append(b, m.Body...)
}

// ErrNoReport is returned by Build when no report is to be sent: the
// sender is <> and the kind is not a failure, the failed message was itself
// a postmaster notification, or no recipient asked for this report.
var ErrNoReport = errors.New("dsn: no report to send")

// IsNull reports whether an envelope sender is the null sender.
func IsNull(sender string) bool {
	s := strings.TrimSpace(sender)
	return s == "" || s == "<>"
}

// IsPostmasterNotify reports whether a header block is that of a postmaster
// notification (its Auto-Submitted value), so that a failure of one is
// dropped instead of bounced again: the double bounce happens only once.
func IsPostmasterNotify(header []byte) bool {
	for line := range strings.SplitSeq(string(header), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(strings.TrimSpace(name), "Auto-Submitted") &&
			strings.Contains(strings.ToLower(value), "postmaster-notification") {
			return true
		}
	}
	return false
}

// Addressee decides where a report of kind k about a message from sender
// goes: to (the To header value, the sender as stored), the envelope
// recipient, the kind actually sent, and ok = false when none is sent.
// origIsPMNotify says the original was itself a postmaster notification.
// doubleBounce is the postmaster address ("" means "postmaster").
func Addressee(sender string, k Kind, origIsPMNotify bool, doubleBounce string) (to, rcpt string, kind Kind, ok bool) {
	if doubleBounce == "" {
		doubleBounce = "postmaster"
	}
	null := IsNull(sender)
	switch {
	case k == PostmasterNotify || (k == Failure && null):
		if origIsPMNotify {
			return "", "", k, false
		}
		return doubleBounce, strings.Trim(doubleBounce, "<>"), PostmasterNotify, true
	case null:
		return "", "", k, false
	case k == Delay && isListOwner(sender):
		return "", "", k, false
	}
	s := strings.TrimSpace(sender)
	return s, strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">"), k, true
}

// isListOwner reports owner-* and *-request senders, which get no warnings.
func isListOwner(sender string) bool {
	s := strings.ToLower(strings.Trim(strings.TrimSpace(sender), "<>"))
	local, _, _ := strings.Cut(s, "@")
	return strings.HasPrefix(local, "owner-") || strings.HasSuffix(local, "-request")
}

// Build makes the DSN for r. It returns ErrNoReport when none is to be sent
// (see Addressee and Wants).
func Build(r *Report) (*Message, error) {
	to, rcpt, kind, ok := Addressee(r.Sender, r.Kind, IsPostmasterNotify(r.Header), r.DoubleBounce)
	if !ok {
		return nil, ErrNoReport
	}
	var rcpts []Recipient
	for _, q := range r.Recipients {
		if Wants(q.Notify, q.Action) {
			rcpts = append(rcpts, q)
		}
	}
	if len(rcpts) == 0 {
		return nil, ErrNoReport
	}
	w := writer{r: r, kind: kind, rcpts: rcpts}
	w.boundary = r.QueueID + "." + itoa(r.Now.Unix()) + "/" + trunc(r.Hostname, 100)
	return &Message{
		Kind:      kind,
		Recipient: rcpt,
		Header:    w.header(to),
		Body:      w.body(),
	}, nil
}
