package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/status"
)

// Mailbox appends m to the mbox of the local user name in the mail spool
// (MailSpoolDirectory/name). An unknown user is a permanent 550 5.1.1
// failure; everything else that goes wrong is temporary, and the mailbox
// is then unchanged. The error is a *status.Error.
func (a *Agent) Mailbox(ctx context.Context, name string, m *Message) error {
	u, err := a.lookup(name)
	if err != nil {
		return err
	}
	return a.MailboxFor(ctx, u, m)
}

// lookup resolves a local user, mapping failures to their status.
func (a *Agent) lookup(name string) (*User, error) {
	if !validUserName(name) {
		return nil, status.New(550, "5.1.1", "%s... User unknown", name)
	}
	u, err := a.opt.LookupUser(name)
	if errors.Is(err, ErrUnknownUser) {
		return nil, status.New(550, "5.1.1", "%s... User unknown", name)
	}
	if err != nil {
		return nil, status.Wrap(err, 451, "4.3.0", "%s... cannot look up user: %v", name, err)
	}
	return u, nil
}

// validUserName rejects names that cannot be a mailbox file name in the
// spool: empty, ".", "..", containing "/" or control characters, or longer
// than a file name may be.
func validUserName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c == '/' || c < ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// MailboxFor is Mailbox for a user the caller has already looked up (the
// alias expansion does): the mailbox is MailSpoolDirectory/u.Name, created
// for u.UID:u.GID.
func (a *Agent) MailboxFor(ctx context.Context, u *User, m *Message) error {
	if !validUserName(u.Name) {
		return status.New(550, "5.1.1", "%s... User unknown", u.Name)
	}
	spool := a.opt.MailSpoolDirectory
	display := filepath.Join(spool, u.Name)
	rules := appendRules{create: true, mode: 0o600}
	if a.root {
		rules.chown, rules.uid, rules.gid = true, u.UID, u.GID
		rules.fsUID, rules.fsGID = u.UID, u.GID
		rules.owners = []int{u.UID}
	} else {
		// Development: every mailbox belongs to whoever runs posthorn.
		rules.owners = []int{a.euid, u.UID}
	}
	from := FromLine(m.Sender, m.when(a.opt.Now))
	req := &boxReq{ctx: ctx, qid: m.QueueID, deadline: time.Now().Add(a.opt.LockTimeout),
		write: func(w io.Writer) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return render(w, from, m.Header, m.bodyReader(), mboxFormat)
		}}
	key := fmt.Sprintf("%s\x00%d:%d", display, u.UID, u.GID)
	return a.appendBatched(key, req, func(batch []*boxReq) []error {
		dirfd, err := unix.Open(spool, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			a.opt.Logger.Errf(batch[0].qid, "%s: cannot open mail spool: %s", spool, strerror(err))
			errs := make([]error, len(batch))
			for i := range errs {
				errs[i] = ioStatus(spool, err)
			}
			return errs
		}
		defer unix.Close(dirfd)
		writes := make([]func(io.Writer) error, len(batch))
		for i, r := range batch {
			writes[i] = r.write
		}
		return appendAll(batch[0].ctx, spot{dirfd: dirfd, name: u.Name, display: display}, rules,
			a.lockConfig(batch[0].qid), batchDeadline(batch), writes)
	})
}

func (a *Agent) lockConfig(qid string) lockConfig {
	return lockConfig{timeout: a.opt.LockTimeout, stale: a.opt.StaleLockAge, now: time.Now, log: a.opt.Logger, qid: qid}
}
