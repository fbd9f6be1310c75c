package mta

import (
	"strconv"
	"strings"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/route"
)

// acceptExpander adapts the alias expander to acceptance: each accepted
// recipient becomes the final addresses the qf records.
type acceptExpander struct{ x *aliases.Expander }

// Expand never refuses a recipient for a permanent failure of what it
// expands to: the entry points checked the recipient itself before
// (RCPT, -bm), so what fails now (a list member, an unsafe :include: in a
// .forward, an error: target) is queued as a failure of that recipient
// alone and returned to the sender in a DSN; the other recipients of the
// message are not touched, and nothing of a .forward or :include: file
// reaches an SMTP reply. A temporary failure (the alias database
// unavailable) is returned: acceptance then queues the recipient as
// given, flagged for the queue run to expand it again (see
// accept.Acceptor.Commit), rather than queue a failure.
func (e acceptExpander) Expand(rcpt string) ([]accept.Final, error) {
	res := e.x.Expand("", rcpt)
	for _, f := range res.Failures {
		if f.Err.Temporary() {
			return nil, f.Err
		}
	}
	out := make([]accept.Final, 0, len(res.Recipients)+len(res.Failures))
	for i := range res.Recipients {
		r := &res.Recipients[i]
		out = append(out, accept.Final{Addr: qfAddress(r), Ctl: r.ControlLine(), Alias: r.Alias, Owner: r.Owner, Key: destinationKey(r)})
	}
	// A member of a list that fails (an unknown user, an error: target)
	// does not refuse the list: it is queued so that delivery fails it
	// and the sender gets a DSN, as sendmail does.
	for _, f := range res.Failures {
		out = append(out, accept.Final{Addr: errorAddress(f), Owner: f.Owner})
	}
	return out, nil
}

// submitCheck is local submission's recipient check (sendmail -bm
// expands aliases before it queues): a recipient is refused, with the
// reason on stderr, when nothing it expands to can be delivered;
// otherwise its failed members are queued as failures as acceptance does.
type submitCheck struct{ x *aliases.Expander }

// A temporary failure (the alias database unavailable, as an LDAP server
// down) does not refuse the recipient: the message is queued with the
// recipient unexpanded and the queue run expands it, as sendmail queues
// such a recipient up; the submission exits 0 and nothing is left in
// dead.letter.
func (c submitCheck) Expand(rcpt string) ([]accept.Final, error) {
	res := c.x.Expand("", rcpt)
	for _, f := range res.Failures {
		if f.Err.Temporary() {
			return nil, nil
		}
	}
	if len(res.Recipients) == 0 && len(res.Failures) > 0 {
		return nil, res.Failures[0].Err
	}
	return nil, nil
}

// destinationKey is what makes two final recipients the same delivery, as
// sendmail's sameaddr: the mailbox for local users, the address for remote
// ones, the file or program together with whose privileges run it.
func destinationKey(r *aliases.Recipient) string {
	switch r.Mailer {
	case aliases.MailerLocal:
		return "local\x00" + strings.ToLower(r.User)
	case aliases.MailerFile, aliases.MailerProg:
		uid := -1
		if r.Ctl != nil {
			uid = r.Ctl.UID
		}
		return r.Mailer + "\x00" + r.Path + "\x00" + strconv.Itoa(uid)
	}
	return route.Triple{Mailer: r.Mailer, Host: r.Host, User: r.User}.Key()
}

// qfAddress is how the R line records a final recipient: a local user
// given directly as written (<alice@localhost>, as sendmail logs it), one
// reached through an alias or .forward by name (bob).
func qfAddress(r *aliases.Recipient) string {
	switch r.Mailer {
	case aliases.MailerLocal:
		if r.Parent == "" && r.Addr != "" {
			return r.Addr
		}
		return r.User
	case aliases.MailerProg:
		return "|" + r.Path
	case aliases.MailerFile:
		return r.Path
	}
	return r.Addr
}

// errorAddress is how a failed list member is queued: an unknown user as
// itself (the local mailer fails it with "User unknown", and the DSN names
// it), anything else as an error: target carrying the reply
// (route.FormatErrorTarget), which the router turns back into the same
// failure, temporary or permanent.
func errorAddress(f aliases.Failure) string {
	if f.Err.Enhanced == "5.1.1" && !strings.ContainsAny(f.Addr, "|/\\:") {
		return f.Addr
	}
	return route.FormatErrorTarget(f.Err)
}
