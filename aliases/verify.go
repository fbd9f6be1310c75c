package aliases

import (
	"fmt"
	"io"
	"strings"

	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
)

// Verify writes what sendmail -bv prints for addrs and returns its exit
// status: errors as they are found ("nosuchuser... User unknown"), then one
// line per deliverable recipient in send-list order:
//
//	<addr>... deliverable: mailer <m>, host <h>, user <u>
//
// (no host part for local, *file* and prog). verbose (-v) adds the
// "aliased to", "forwarding to" and "duplicate suppressed" notices. Each
// argument is expanded separately, as sendmail does with its command line.
// The exit status is 0, 67 (an unknown user), 75 (a temporary failure) or
// 64 (any other refused address).
func (x *Expander) Verify(w io.Writer, addrs []string, verbose bool) int {
	r := x.newRun("", false)
	for _, a := range addrs {
		r.top(a)
	}
	res := r.finish()
	for _, l := range res.Transcript {
		if verbose || !l.Verbose {
			fmt.Fprintln(w, l.Text)
		}
	}
	for _, rc := range res.Recipients {
		if rc.Host != "" {
			fmt.Fprintf(w, "%s... deliverable: mailer %s, host %s, user %s\n", rc.Addr, rc.Mailer, rc.Host, rc.User)
		} else {
			fmt.Fprintf(w, "%s... deliverable: mailer %s, user %s\n", rc.Addr, rc.Mailer, rc.User)
		}
	}
	return res.Exit
}

// VrfyEntry is one line of a VRFY or EXPN reply.
type VrfyEntry struct {
	Code     int    // 250; 252 for VRFY of an address this host does not deliver
	FullName string // from the password file; may be empty
	User     string // login name, file, "|program" or remote address
	Host     string // $j for a local name, shown as <User@Host>; "" shows <User>
}

// Text is the reply text after the codes, as sendmail words it:
// "Alice Example <alice@host>", "<staff@host>", "</var/tmp/file>".
func (e VrfyEntry) Text() string {
	addr := "<" + e.User + ">"
	if e.Host != "" {
		addr = "<" + e.User + "@" + e.Host + ">"
	}
	if e.FullName == "" {
		return addr
	}
	return e.FullName + " " + addr
}

// Vrfy answers SMTP VRFY for arg: whether it is a local user or alias
// (aliases are not expanded), with the entry to show. myHost is $j.
// A refused address is returned as the reply error (e.g. "550 5.1.1
// nosuchuser... User unknown", "553 5.0.0 <bad... Unbalanced '<'").
func (x *Expander) Vrfy(arg, myHost string) ([]VrfyEntry, *status.Error) {
	return x.vrfyExpn(arg, myHost, true)
}

// Expn answers SMTP EXPN for arg: the full expansion through aliases,
// :include: files and .forward, one entry per final recipient in
// sendmail's order. The first error found is the reply.
func (x *Expander) Expn(arg, myHost string) ([]VrfyEntry, *status.Error) {
	return x.vrfyExpn(arg, myHost, false)
}

func (x *Expander) vrfyExpn(arg, myHost string, vrfy bool) ([]VrfyEntry, *status.Error) {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return nil, status.New(501, "5.5.2", "Argument required")
	}
	r := x.newRun("", vrfy)
	// The SMTP server gives up at the first complaint (sendmail's
	// QuickAbort); syntax is checked before anything is looked up.
	for _, e := range splitList(arg) {
		if _, perr := parseAddress(e); perr != nil {
			return nil, perr
		}
	}
	r.top(arg)
	if r.first != nil {
		return nil, r.first
	}
	var out []VrfyEntry
	for _, n := range r.sendq() {
		if !n.sendable() {
			continue
		}
		e := VrfyEntry{Code: 250, FullName: n.fullname, User: n.user}
		if vrfy && route.IsSMTP(n.mailer) {
			e.Code = 252
		}
		if (n.mailer == MailerLocal || route.IsSMTP(n.mailer)) && !strings.Contains(n.user, "@") {
			e.Host = myHost
		}
		out = append(out, e)
	}
	if len(out) == 0 {
		what := "EXPN"
		if vrfy {
			what = "VRFY"
		}
		return nil, status.New(554, "5.5.2", "Nothing to %s", what)
	}
	return out, nil
}

// CheckRecipient is the RCPT-time check (and the one -bm uses before
// queueing): nil when addr is remote (relay policy decides elsewhere), a
// local alias, or a local user; else the reply to send, e.g. "550 5.1.1
// <nosuch@host>... User unknown" (addr is echoed as given, brackets
// included). Aliases and .forward files are not expanded here: that happens
// at delivery, as in sendmail.
func (x *Expander) CheckRecipient(addr string) *status.Error {
	if strings.TrimSpace(addr) == "" {
		return status.New(553, "5.0.0", "<>... User address required")
	}
	r := x.newRun("", true)
	r.top(addr)
	return r.first
}
