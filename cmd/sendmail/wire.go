package main

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/rfcdate"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/submit"
	"github.com/posthorn/posthorn/queue"
)

// This file builds the parts of the object graph that several modes share,
// explicitly, from one configuration.

// newRouter is the one routing function's configuration: $=w, the
// mailertable and the smart host ($S). Mailertable lines that cannot be
// read are logged once.
func newRouter(cfg *conf.Config, log *maillog.Logger) *route.Router {
	rt, _ := newRouting(cfg, log)
	return rt
}

// newRouting is newRouter that also gives the mailertable (nil when none
// is configured), for -bt's /map.
func newRouting(cfg *conf.Config, log *maillog.Logger) (*route.Router, *route.Table) {
	rc := route.Config{Names: addr.NewNames(cfg.Class("w")...), SmartHost: cfg.Macros["S"],
		VirtHosts: addr.NewNames(cfg.Class("VirtHost")...)}
	load := func(path string, read func(string, func() time.Time) (*route.Table, error)) *route.Table {
		if path == "" {
			return nil
		}
		t, err := read(path, time.Now)
		if err != nil {
			log.Errf("", "%s: %v", path, err)
			return nil
		}
		for _, w := range t.Warnings() {
			log.Warnf("", "%s", w)
		}
		return t
	}
	rc.MailerTable = load(cfg.MailerTable, route.LoadMailerTable)
	rc.VirtUserTable = load(cfg.VirtUserTable, route.LoadVirtUserTable)
	return route.New(rc), rc.MailerTable
}

// isLocal is $=w as a domain test.
func isLocal(cfg *conf.Config) func(string) bool {
	names := addr.NewNames(cfg.Class("w")...)
	return names.Contains
}

// runUser is the invoking user's login name, for log lines.
func runUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// defaultIDs are DefaultUser's uid and gid, for the controlling user of
// alias products (qf C lines). An unknown DefaultUser falls back to
// sendmail's own default, 1:1, with a warning; deliveries then refuse it.
func defaultIDs(cfg *conf.Config, log *maillog.Logger) (uid, gid int) {
	u, err := deliver.ParseDefaultUser(cfg.DefaultUser, deliver.LookupSystemUser)
	if err != nil {
		log.Warnf("", "%v", err)
		return 1, 1
	}
	return u.UID, u.GID
}

// aliasFile is the first AliasFile (sendmail allows a list; lookups use
// the first, newaliases rebuilds each).
func aliasFile(cfg *conf.Config) string {
	if len(cfg.AliasFiles) == 0 {
		return ""
	}
	return cfg.AliasFiles[0]
}

// newExpander builds the alias/forward expander over a Source that follows
// rebuilds of the database.
func newExpander(cfg *conf.Config, a *app) (*aliases.Expander, *aliases.Source) {
	local := isLocal(cfg)
	var src *aliases.Source
	opts := aliases.Options{
		Router:      newRouter(cfg, a.log),
		ForwardPath: strings.Join(cfg.ForwardPath, ":"),
		Macros:      map[string]string{"w": cfg.Macros["w"], "j": cfg.Macros["j"]},
		MaxDepth:    cfg.MaxAliasRecursion,
		Logger:      a.log,
	}
	opts.DefaultUID, opts.DefaultGID = defaultIDs(cfg, a.log)
	if f := aliasFile(cfg); f != "" && !a.inv.NoAlias { // -n: no aliasing
		src = aliases.NewSource(aliases.SourceOptions{AliasFile: f, IsLocal: local, Logger: a.log,
			RunUser: runUser(), CheckInterval: time.Second})
		opts.Aliases = src
	}
	return aliases.New(opts), src
}

// queueExpander adapts the alias expander to acceptance: each accepted
// recipient becomes the final addresses the qf records.
type queueExpander struct{ x *aliases.Expander }

// Expand never refuses a recipient for a permanent failure of what it
// expands to: the entry points checked the recipient itself before
// (RCPT, -bm), so what fails now (a list member, an unsafe :include: in a
// .forward, an error: target) is queued as a failure of that recipient
// alone and returned to the sender in a DSN; the other recipients of the
// message are not touched, and nothing of a .forward or :include: file
// reaches an SMTP reply. A temporary failure (the alias database
// unavailable) is returned: the message is not taken and the client
// retries, so that the expansion is done again rather than a failure
// queued.
func (e queueExpander) Expand(rcpt string) ([]accept.Final, error) {
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

func (c submitCheck) Expand(rcpt string) ([]accept.Final, error) {
	res := c.x.Expand("", rcpt)
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

// newAcceptor is package accept over the configured queue.
func newAcceptor(cfg *conf.Config, st *queue.Store, exp accept.Expander, log *maillog.Logger) *accept.Acceptor {
	return &accept.Acceptor{Store: st, Hostname: cfg.Macros["j"], Expander: exp, Date: rfcdate.Format, Now: time.Now, Log: log}
}

// newSubmitter is local submission.
func newSubmitter(cfg *conf.Config, acc *accept.Acceptor, exp accept.Expander) *submit.Submitter {
	return &submit.Submitter{
		Acceptor: acc, Expander: exp, Hostname: cfg.Macros["j"], Version: "posthorn " + conf.Version,
		Trusted:         func(u string) bool { return trusted(cfg, u) },
		OldStyleHeaders: true, Date: rfcdate.Format,
		HostNames: hostNames(cfg), Log: acc.Log,
	}
}

// trusted reports whether a user may set the sender without a warning:
// root, TrustedUser, and the T lines.
func trusted(cfg *conf.Config, name string) bool {
	if name == "root" || name == cfg.TrustedUser {
		return true
	}
	for _, t := range cfg.TrustedUsers {
		if t == name {
			return true
		}
	}
	return false
}

// deliverOptions configures the local delivery agents.
func (a *app) deliverOptions(cfg *conf.Config) deliver.Options {
	return deliver.Options{
		MailSpoolDirectory:  cfg.MailSpoolDirectory,
		SafeFileEnvironment: cfg.SafeFileEnvironment,
		SmrshDirectory:      cfg.SmrshDirectory,
		DefaultUser:         cfg.DefaultUser,
		// $g and $d are the sender and date of each delivery.
		UnixFromLine: cfg.Expand(cfg.UnixFromLine, map[string]string{"g": "$g", "d": "$d"}),
		Logger:       a.log,
	}
}
