package dsn

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/rfcdate"
)

// writer renders one report.
type writer struct {
	r        *Report
	kind     Kind
	rcpts    []Recipient
	boundary string
	b        bytes.Buffer
}

// line writes one line. Parts come from remote replies, addresses and
// queue files, so a CR or LF inside one is written as a space: it must not
// start a header, a MIME boundary or a new field of the report.
func (w *writer) line(parts ...string) {
	for _, p := range parts {
		if strings.ContainsAny(p, "\r\n") {
			p = strings.NewReplacer("\r", " ", "\n", " ").Replace(p)
		}
		w.b.WriteString(p)
	}
	w.b.WriteByte('\n')
}

func (w *writer) date(t time.Time) string {
	if t.IsZero() {
		t = w.r.Now
	}
	return rfcdate.Format(t.In(w.r.Now.Location()))
}

// header renders the DSN's header block.
func (w *writer) header(to string) []byte {
	r := w.r
	now := w.date(r.Now)
	from := r.From
	if from == "" {
		from = "Mail Delivery Subsystem <MAILER-DAEMON>"
	}
	subject, auto := w.kind.subject(r.WarnAfter)
	w.b.Reset()
	w.line("Received: from localhost (localhost)")
	w.line("\tby ", r.Hostname, " (", r.Version, ") id ", r.QueueID, ";")
	w.line("\t", now)
	w.line("Date: ", now)
	w.line("From: ", from)
	w.line("Message-Id: <", r.Now.UTC().Format("200601021504"), ".", r.QueueID, "@", r.Hostname, ">")
	w.line("To: ", to)
	w.line("MIME-Version: 1.0")
	w.line("Content-Type: multipart/report; report-type=delivery-status;")
	w.line("\tboundary=\"", w.boundary, "\"")
	if cte := w.transferEncoding(); cte != "" {
		w.line("Content-Transfer-Encoding: ", cte)
	}
	w.line("Subject: ", subject)
	w.line("Auto-Submitted: auto-generated (", auto, ")")
	return bytes.Clone(w.b.Bytes())
}

// transferEncoding is "binary" when the original declares it, "8bit" for
// an 8-bit original, else "".
func (w *writer) transferEncoding() string {
	if v, ok := headerValue(w.r.Header, "Content-Transfer-Encoding"); ok && strings.EqualFold(v, "binary") {
		return "binary"
	}
	if w.r.EightBit {
		return "8bit"
	}
	return ""
}

// body renders the three MIME parts.
func (w *writer) body() []byte {
	r := w.r
	w.b.Reset()
	w.line("This is a MIME-encapsulated message")
	w.line()
	w.line("--", w.boundary)
	w.line()
	if w.kind == Delay {
		w.line("    **********************************************")
		w.line("    **      THIS IS A WARNING MESSAGE ONLY      **")
		w.line("    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **")
		w.line("    **********************************************")
		w.line()
	}
	w.line("The original message was received at ", w.date(r.Arrival))
	w.line("from ", r.ReceivedFrom)
	if w.kind == PostmasterNotify && r.OriginalID != "" {
		w.line("with id ", r.OriginalID)
	}
	w.line()

	w.humanList(Failed, "   ----- The following addresses had permanent fatal errors -----")
	w.humanList(Delivered, "   ----- The following addresses had successful delivery notifications -----")

	if r.Transcript == nil {
		w.line("   ----- Transcript of session is unavailable -----")
	} else if len(r.Transcript) > 0 {
		w.line("   ----- Transcript of session follows -----")
		for _, l := range r.Transcript {
			w.line(l)
		}
	}

	w.line()
	w.line("--", w.boundary)
	w.line("Content-Type: message/delivery-status")
	w.line()
	if r.EnvID != "" {
		w.line("Original-Envelope-Id: ", trunc(xuntext(r.EnvID), 800))
	}
	w.line("Reporting-MTA: dns; ", trunc(r.Hostname, 800))
	if r.ReceivedFromMTA != "" {
		w.line("Received-From-MTA: DNS; ", trunc(r.ReceivedFromMTA, 800))
	}
	w.line("Arrival-Date: ", w.date(r.Arrival))
	for _, q := range w.rcpts {
		w.perRecipient(q)
	}

	w.line()
	full := r.Return == Full
	ctype := "text/rfc822-headers"
	if full {
		ctype = "message/rfc822"
	}
	w.line("--", w.boundary)
	w.line("Content-Type: ", ctype)
	if cte := w.transferEncoding(); cte != "" {
		w.line("Content-Transfer-Encoding: ", cte)
	}
	w.line()
	w.b.Write(r.Header)
	if len(r.Header) > 0 && r.Header[len(r.Header)-1] != '\n' {
		w.b.WriteByte('\n')
	}
	if full {
		w.line()
		w.b.Write(r.Body)
		if len(r.Body) > 0 && r.Body[len(r.Body)-1] != '\n' {
			w.b.WriteByte('\n')
		}
	}
	w.line()
	w.line("--", w.boundary, "--")
	w.line()
	return bytes.Clone(w.b.Bytes())
}

// humanList writes the failure list (want == Failed) or the success list
// of the human-readable part, with its heading and a closing blank line,
// when any recipient belongs in it.
func (w *writer) humanList(want Action, heading string) {
	printed := false
	for _, q := range w.rcpts {
		var text string
		switch {
		case want == Failed && q.Action == Failed:
			text = addr.Shorten(q.Address)
		case want == Delivered && q.Action.success() != "":
			text = addr.Shorten(q.Address) + "  (" + q.Action.success() + ")"
		default:
			continue
		}
		if !printed {
			w.line(heading)
			printed = true
		}
		w.line(text)
		if want == Failed && q.Diagnostic != "" {
			w.line("    (reason: ", addr.Shorten(q.Diagnostic), ")")
		}
		if q.ExpandedFrom != "" {
			w.line("    (expanded from: ", addr.Shorten(q.ExpandedFrom), ")")
		}
	}
	if printed {
		w.line()
	}
}

// perRecipient writes one recipient block of the delivery-status part.
func (w *writer) perRecipient(q Recipient) {
	r := w.r
	w.line()
	if q.ORCPT != "" {
		w.line("Original-Recipient: ", trunc(q.ORCPT, 800))
	}
	actual := ""
	if q.User != "" {
		if strings.Contains(q.User, "@") {
			actual = "rfc822; " + trunc(q.User, 800)
		} else {
			actual = "rfc822; " + trunc(q.User, 700) + "@" + trunc(r.Hostname, 100)
		}
	}
	final := q.FinalRecipient
	if final == "" {
		final = actual
	}
	if final != "" {
		w.line("Final-Recipient: ", final)
	}
	if actual != "" && final != "" && actual != final {
		w.line("X-Actual-Recipient: ", actual)
	}
	w.line("Action: ", q.Action.String())
	st := q.Status
	if st == "" {
		switch q.Action {
		case Failed:
			st = "5.0.0"
		case Delayed:
			st = "4.0.0"
		default:
			st = "2.0.0"
		}
	}
	w.line("Status: ", st)
	if q.RemoteMTA != "" {
		w.line("Remote-MTA: DNS; ", strings.TrimSuffix(trunc(q.RemoteMTA, 800), "."))
	}
	if q.Diagnostic != "" {
		w.line("Diagnostic-Code: SMTP; ", trunc(q.Diagnostic, 800))
	}
	w.line("Last-Attempt-Date: ", w.date(q.LastAttempt))
	if q.Action == Delayed && r.ReturnAfter > 0 {
		w.line("Will-Retry-Until: ", w.date(r.Arrival.Add(r.ReturnAfter)))
	}
}

// headerValue finds the first field called name in a header block and
// returns its value, unfolded and trimmed.
func headerValue(h []byte, name string) (string, bool) {
	lines := strings.Split(string(h), "\n")
	for i, l := range lines {
		n, v, ok := strings.Cut(l, ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(n), name) || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			continue
		}
		for _, c := range lines[i+1:] {
			if !strings.HasPrefix(c, " ") && !strings.HasPrefix(c, "\t") {
				break
			}
			v += " " + strings.TrimSpace(c)
		}
		return strings.TrimSpace(v), true
	}
	return "", false
}

// xuntext decodes RFC 3461 xtext ("+2B" is "+"); a '+' not followed by two
// hex digits is kept as it is.
func xuntext(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b.WriteByte(byte(v))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// trunc cuts s to n bytes, as sendmail's "%.800s" formats do.
func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
