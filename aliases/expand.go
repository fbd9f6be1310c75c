package aliases

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// Options configure an Expander. The zero value works: no aliases, the
// system's users, no local domains, ForwardPath "$z/.forward".
type Options struct {
	Aliases Map   // alias table; nil: none
	Users   Users // account lookup; nil: SystemUsers{}
	// Router says where each address goes (route.Router: $=w, the relay
	// tricks, the mailertable, the smart host): the same answer the relay
	// check and delivery get. nil: a router whose local names are IsLocal.
	Router *route.Router
	// IsLocal reports whether a domain (lower case, no trailing dot, or a
	// literal such as "[127.0.0.1]") is one of this host's names ($=w);
	// only used to build a Router when none is given.
	IsLocal func(domain string) bool
	// ForwardPath is sendmail's option: colon-separated candidates, the
	// first existing one is used. $z is the home directory, $u the user
	// name; other macros come from Macros. Default "$z/.forward".
	ForwardPath string
	Macros      map[string]string // e.g. "w": short host name, "j": $j
	// DefaultUID and DefaultGID are DefaultUser (mail:mail): the
	// controlling user of programs and files named in the aliases file.
	DefaultUID, DefaultGID int
	// AnyLocalUser accepts every local name that is not an alias without
	// looking it up in Users, and reads no ~/.forward: sendmail's local
	// mailer without F=w, as for an LMTP mail store whose users are its
	// own (virtual users, not accounts of this host).
	AnyLocalUser bool
	MaxDepth     int   // MaxAliasRecursion; default 10
	MaxFileSize  int64 // largest .forward or :include: file read; default 1 MiB
	// Canon canonicalises a remote host name for -bv output (sendmail
	// shows "host remote.example." when DNS knows the name). nil: as given.
	Canon  func(host string) (string, error)
	Logger *maillog.Logger
}

// Expander turns recipient addresses into final recipients.
type Expander struct {
	opts Options
}

// New returns an Expander.
func New(opts Options) *Expander {
	if opts.Users == nil {
		opts.Users = SystemUsers{}
	}
	if opts.ForwardPath == "" {
		opts.ForwardPath = "$z/.forward"
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = 10
	}
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = 1 << 20
	}
	if opts.Router == nil {
		isLocal := opts.IsLocal
		if isLocal == nil {
			isLocal = func(string) bool { return false }
		}
		opts.Router = route.New(route.Config{Names: route.LocalFunc(isLocal)})
	}
	return &Expander{opts: opts}
}

// Controller is the controlling user of a recipient: whose privileges a
// program or file delivery uses, and what the qf "C" line records. It is the
// recipient itself when it is a local user, else the nearest alias (running
// as DefaultUser), :include: file owner or .forward owner that produced it.
type Controller struct {
	User     string // user name, or the alias name for an alias
	UID, GID int    // the identity to run as (DefaultUser for an alias)
	Addr     string // the controlling address as written (ctladdr= in logs)
	// IsAlias: the controller is an aliases-file entry. sendmail records
	// its gid as 0 in the qf C line and in ctladdr= (meaning "DefaultUser's
	// groups"): see SendmailGID.
	IsAlias bool
}

// SendmailGID is the gid sendmail writes in the qf C line and logs in
// "ctladdr=<a> (uid/gid)": 0 for an alias controller, else GID.
func (c *Controller) SendmailGID() int {
	if c.IsAlias {
		return 0
	}
	return c.GID
}

// Recipient is one final recipient: a mailer triple plus what delivery and
// the queue file need to know about where it came from.
type Recipient struct {
	Addr   string // the address as written where it was found (q_paddr)
	Mailer string // MailerLocal, MailerFile, MailerProg, or an SMTP mailer (route.IsSMTP)
	Host   string // SMTP mailers: the router's host (a domain is canonical when Options.Canon is set)
	User   string // what -bv prints as user: login name, path, "|cmd", address
	Path   string // *file*: the file; prog: the command line without '|'
	Local  *User  // local: the account
	// Ctl is the controlling user; nil for a top-level remote address.
	Ctl *Controller
	// Parent is the alias, .forward user or :include: that produced this
	// recipient ("" for an address given directly): the qf C line's last
	// field.
	Parent string
	Alias  bool   // produced by the aliases file: the qf "A" flag
	Owner  string // envelope sender for this delivery (owner-list), "" = unchanged
	Top    string // the address originally given that led here
}

// ControlLine is the qf "C" line's text after the 'C' ("bob:1001:1001:carol",
// ":to-x" when the controller is root), or "" when no line is written.
func (r *Recipient) ControlLine() string {
	if r.Parent == "" {
		return ""
	}
	if r.Ctl == nil || r.Ctl.UID == 0 || r.Ctl.User == "" {
		return queue.Control{Addr: r.Parent}.String()
	}
	return queue.Control{User: r.Ctl.User, UID: r.Ctl.UID, GID: r.Ctl.SendmailGID(), Addr: r.Parent}.String()
}

// Failure is an address that cannot be delivered.
type Failure struct {
	Addr  string        // the failing address as written
	Err   *status.Error // Text is "<addr>... <reason>"
	Owner string        // owner-list the bounce goes to, "" = the sender
	Top   string        // the address originally given
}

// Line is one transcript line as -bv prints it.
type Line struct {
	Text    string
	Verbose bool // only shown with -v
}

// Result is the outcome of an expansion.
type Result struct {
	Recipients []Recipient // in sendmail's order
	Failures   []Failure   // in the order found
	Transcript []Line      // errors and (verbose) notices, in order
	Exit       int         // sysexits status as sendmail -bv would exit
}

// Expand expands addrs (each may be a comma-separated list) fully, as for
// delivery. qid is used in log lines.
func (x *Expander) Expand(qid string, addrs ...string) *Result {
	r := x.newRun(qid, false)
	for _, a := range addrs {
		r.top(a)
	}
	return r.finish()
}

type state int

const (
	stOK       state = iota
	stVerified       // VRFY: known, not expanded
	stExpanded       // alias or .forward expanded into others
	stIncluded       // :include: read
	stBad            // failed
	stQueueUp        // temporary failure
)

// node is one address on the send list (sendmail's ADDRESS).
type node struct {
	paddr, mailer, host, user, path string
	quoted                          bool
	parent                          *node
	depth                           int
	st                              state
	primary, rcptOK, selfRef        bool
	isAlias                         bool // expanded from the aliases file
	unsafe                          bool // :include: file others can write
	goodUID                         bool
	uid, gid                        int
	ruser, fullname                 string
	local                           *User
	owner                           string
	errT                            *status.Error // error: target
	k                               string        // cached key()
}

func (n *node) sendable() bool { return n.st == stOK || n.st == stVerified }

func (n *node) ok() bool { return n.st == stOK }

// key identifies an address for duplicate and loop detection. It is
// computed once, when the address joins the send list (a local user's name
// may change afterwards, by the lower-case retry, but not its identity).
func (n *node) key() string {
	if n.k == "" {
		n.k = n.computeKey()
	}
	return n.k
}

func (n *node) computeKey() string {
	switch n.mailer {
	case MailerLocal:
		// \user is another address than user: it is not aliased.
		q := ""
		if n.quoted {
			q = "\\"
		}
		return "l\x00" + q + strings.ToLower(stripQuotes(n.user))
	case MailerESMTP, route.SMTP, route.SMTP8, route.DSMTP, route.Relay:
		local, domain, _ := splitDomain(n.user)
		return "e\x00" + n.mailer + "\x00" + strings.TrimSuffix(strings.ToLower(n.host), ".") + "\x00" + local + "@" + domain
	case MailerFile, MailerProg:
		// The same file or program under different users is not a
		// duplicate: each runs with its own privileges.
		uid := -1
		if c := n.ctl(); c != nil {
			uid = c.uid
		}
		return fmt.Sprintf("%s\x00%s\x00%d", n.mailer, n.path, uid)
	default:
		return n.mailer + "\x00" + n.user
	}
}

// ctl is sendmail's getctladdr: the first address up the chain with a known
// uid.
func (n *node) ctl() *node {
	for a := n; a != nil; a = a.parent {
		if a.goodUID {
			return a
		}
	}
	return nil
}

func (n *node) ownerOf() string {
	for a := n.parent; a != nil; a = a.parent {
		if a.owner != "" {
			return a.owner
		}
	}
	return ""
}

func (n *node) topOf() *node {
	a := n
	for a.parent != nil {
		a = a.parent
	}
	return a
}

// run is one expansion: a send list and its transcript.
type run struct {
	x    *Expander
	qid  string
	vrfy bool // VRFY: do not expand aliases or .forward
	// The send list, kept as sendmail keeps it: sorted by host (case
	// folded), equal hosts in arrival order. Stored as one slice per host
	// so that a long list costs no quadratic shifting.
	byHost     map[string][]*node
	byKey      map[string][]*node // the send list by key(), for duplicate detection
	canonCache map[string]string
	res        Result
	ctx        string  // "file: line N: " while reading a .forward or :include:
	pass       []*node // addresses touched during the current top-level address
	failed     []*node // in the order they failed
	errs       []*status.Error
	first      *status.Error
}

func (x *Expander) newRun(qid string, vrfy bool) *run {
	return &run{x: x, qid: qid, vrfy: vrfy, byKey: make(map[string][]*node),
		byHost: make(map[string][]*node)}
}

// sendq returns the send list in order.
func (r *run) sendq() []*node {
	hosts := make([]string, 0, len(r.byHost))
	for h := range r.byHost {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var out []*node
	for _, h := range hosts {
		out = append(out, r.byHost[h]...)
	}
	return out
}

func (r *run) emit(text string, verbose bool) {
	r.res.Transcript = append(r.res.Transcript, Line{Text: r.ctx + text, Verbose: verbose})
}

func (r *run) note(n *node, format string, args ...any) {
	r.emit(n.paddr+"... "+fmt.Sprintf(format, args...), true)
}

// syntax records a parse complaint; the (repaired) address goes on.
func (r *run) syntax(err *status.Error) {
	r.emit(err.Text, false)
	if r.first == nil {
		r.first = err
	}
	r.setExit(sysexits.Usage, false)
}

func (r *run) setExit(code int, override bool) {
	if override || r.res.Exit == 0 {
		r.res.Exit = code
	}
}

func (r *run) fail(n *node, err *status.Error) {
	if err.Temporary() {
		n.st = stQueueUp
	} else {
		n.st = stBad
	}
	r.emit(err.Text, false)
	if r.first == nil {
		r.first = err
	}
	switch {
	case err.Temporary():
		r.setExit(sysexits.TempFail, true)
	case err.Enhanced == "5.1.1":
		r.setExit(sysexits.NoUser, true)
	default:
		r.setExit(sysexits.Usage, false)
	}
	// The owner is looked up when the list is finished (an owner- alias
	// is found after its list has been expanded).
	r.failed = append(r.failed, n)
	r.errs = append(r.errs, err)
}

// top expands one address given by the caller (a command-line argument, an
// envelope recipient).
func (r *run) top(list string) {
	r.pass = r.pass[:0]
	r.sendtolist(list, nil, 0)
	// An address that has been expanded into exactly one recipient lends
	// it its primary status (no "duplicate suppressed" for it later).
	var only *node
	count := 0
	seen := make(map[*node]bool)
	for _, n := range r.pass {
		if n.sendable() && !seen[n] {
			seen[n] = true
			count++
			only = n
		}
	}
	if count == 1 && only.ownerOf() == "" {
		only.primary = true
	}
	// A top-level address that led nowhere while the whole send list
	// holds nothing but expanded aliases went round in a loop (a failed
	// member is an outcome, not a loop).
	for _, n := range r.pass {
		if n.parent != nil || n.st != stExpanded && n.st != stIncluded {
			continue
		}
		alive := false
		for _, q := range r.sendq() {
			if q.st != stExpanded && q.st != stIncluded {
				alive = true
				break
			}
		}
		if !alive {
			r.fail(n, status.New(554, "5.4.6", "%s... aliasing/forwarding loop broken", n.paddr))
		}
	}
}

// sendtolist parses a list and hands each address to recipient, last
// first, as sendmail does. It returns how many addresses it handed on.
func (r *run) sendtolist(list string, ctl *node, depth int) int {
	var al []*node
	for _, e := range splitList(list) {
		p, perr := parseAddress(e)
		if perr != nil {
			r.syntax(perr)
		}
		t := classify(p, r.x.opts.Router)
		n := &node{paddr: p.paddr, mailer: t.mailer, host: t.host, user: t.user,
			path: t.path, quoted: t.quoted, parent: ctl, depth: depth, errT: t.err}
		if route.IsSMTP(n.mailer) && !strings.HasPrefix(n.host, "[") && r.x.opts.Canon != nil {
			n.host = r.canon(n.host) // -bv shows a name DNS knows with its trailing dot
		}
		if ctl != nil {
			if anc := selfReference(ctl, n); anc != nil {
				anc.selfRef = true
				continue
			}
			if n.fullname == "" {
				n.fullname = ctl.fullname
			}
		}
		al = append(al, n)
	}
	for i := len(al) - 1; i >= 0; i-- {
		r.recipient(al[i])
	}
	return len(al)
}

// canon canonicalises a host name once per run.
func (r *run) canon(h string) string {
	if c, ok := r.canonCache[h]; ok {
		return c
	}
	c, err := r.x.opts.Canon(h)
	if err != nil || c == "" {
		c = h
	}
	if r.canonCache == nil {
		r.canonCache = make(map[string]string)
	}
	r.canonCache[h] = c
	return c
}

// selfReference finds an address up the chain that n is the same as.
func selfReference(ctl, n *node) *node {
	k := n.key()
	for a := ctl; a != nil; a = a.parent {
		if a.mailer == n.mailer && a.key() == k {
			return a
		}
	}
	return nil
}

func hostCmp(a, b *node) int {
	if a.host == b.host {
		return 0
	}
	return strings.Compare(strings.ToLower(a.host), strings.ToLower(b.host))
}

// recipient puts one address on the send list and expands it.
func (r *run) recipient(n *node) *node {
	if n.parent == nil {
		n.primary = true
	}
	max := r.x.opts.MaxDepth
	switch {
	case n.depth > max:
		r.fail(n, status.New(554, "5.4.6", "%s... aliasing/forwarding loop broken (%d aliases deep; %d max)",
			n.paddr, n.depth, max))
	case n.mailer == mailerError:
		who := n.paddr
		if n.parent != nil {
			who = n.parent.paddr
		}
		e := *n.errT
		e.Text = who + "... " + e.Text
		r.fail(n, &e)
	case n.mailer == MailerProg || n.mailer == MailerFile:
		what := "programs"
		if n.mailer == MailerFile {
			what = "files"
		}
		if n.parent == nil {
			r.fail(n, status.New(550, "5.7.1", "%s... Cannot mail directly to %s", n.paddr, what))
		} else if p := n.parent; p.unsafe || (p.mailer == mailerIncl && p.parent != nil && p.parent.unsafe) {
			r.fail(n, status.New(550, "5.7.1", "%s... Address %s is unsafe for mailing to %s",
				n.paddr, n.parent.paddr, what))
		}
	case n.mailer == mailerIncl && n.parent == nil:
		r.fail(n, status.New(550, "5.7.1", "%s... Cannot mail directly to :include:s", n.paddr))
	}

	// Duplicate suppression and sorted insertion (sendmail's sorthost:
	// by host, equal hosts in arrival order).
	k := n.key()
	for _, q := range r.byKey[k] {
		if hostCmp(n, q) == 0 && (q.rcptOK || !q.primary) {
			if !q.primary && n.sendable() {
				r.note(n, "duplicate suppressed")
			}
			r.pass = append(r.pass, q)
			return q
		}
	}
	r.byKey[k] = append(r.byKey[k], n)
	h := strings.ToLower(n.host)
	r.byHost[h] = append(r.byHost[h], n)
	r.pass = append(r.pass, n)
	defer func() { n.rcptOK = true }()

	if !n.ok() {
		return n
	}
	if n.mailer == mailerIncl {
		n.st = stIncluded
		r.note(n, "including file %s", n.path)
		r.include(n)
		return n
	}
	if n.mailer != MailerLocal {
		return n
	}
	if !n.quoted {
		r.alias(n)
	}
	if n.ok() {
		r.localUser(n)
	}
	return n
}

// alias expands a local name found in the aliases table.
func (r *run) alias(n *node) {
	m := r.x.opts.Aliases
	if m == nil {
		return
	}
	val, ok, err := m.Lookup(strings.ToLower(n.user))
	if err != nil {
		r.x.opts.Logger.Errf(r.qid, "alias database unavailable: %v", err)
		r.fail(n, status.New(451, "4.3.0", "%s... Deferred: alias database unavailable", n.paddr))
		return
	}
	if !ok {
		return
	}
	if r.vrfy {
		n.st = stVerified
		return
	}
	r.note(n, "aliased to %s", shorten(val))
	n.st = stExpanded
	n.selfRef = false
	// What an alias names runs as DefaultUser, and does not inherit a
	// full name.
	n.isAlias = true
	n.goodUID, n.uid, n.gid = true, r.x.opts.DefaultUID, r.x.opts.DefaultGID
	n.fullname = ""
	r.sendtolist(val, n, n.depth+1)
	if n.selfRef && n.st == stExpanded {
		n.st = stOK
	}
	on := "owner-" + n.user
	if strings.HasPrefix(strings.ToLower(n.user), "owner-") {
		on = "owner-owner"
	}
	if v, ok, err := m.Lookup(strings.ToLower(on)); err == nil && ok {
		v = strings.TrimSpace(v)
		if strings.ContainsAny(v, ",:/|\"") {
			v = on
		}
		n.owner = v
	}
}

// shorten truncates long values in messages as sendmail's shortenstring
// (MAXSHORTSTR 203).
func shorten(s string) string {
	const max = 203
	if len(s) <= max {
		return s
	}
	return s[:max-3] + "..."
}

// findUser looks a login name up, retrying in lower case (sendmail's
// "fuzzy" match).
func (r *run) findUser(name string) (*User, error) {
	u, err := r.x.opts.Users.Lookup(name)
	if errors.Is(err, ErrNoUser) {
		if l := strings.ToLower(name); l != name {
			return r.x.opts.Users.Lookup(l)
		}
	}
	return u, err
}

// localUser resolves a local name that is not an alias to an account.
func (r *run) localUser(n *node) {
	if r.x.opts.AnyLocalUser {
		n.user = strings.ToLower(stripQuotes(n.user))
		if r.vrfy {
			n.st = stVerified
		}
		return
	}
	u, err := r.findUser(stripQuotes(n.user))
	switch {
	case errors.Is(err, ErrNoUser):
		if n.selfRef {
			r.fail(n, status.New(554, "5.4.6", "%s... aliasing/forwarding loop broken", n.paddr))
		} else {
			r.fail(n, status.New(550, "5.1.1", "%s... User unknown", n.paddr))
		}
		return
	case err != nil:
		r.x.opts.Logger.Errf(r.qid, "user database error looking up %s: %v", n.user, err)
		r.fail(n, status.New(451, "4.3.0", "%s... Deferred: user database error", n.paddr))
		return
	}
	n.user = u.Name
	n.local = u
	n.goodUID, n.uid, n.gid, n.ruser = true, u.UID, u.GID, u.Name
	if u.FullName != "" {
		n.fullname = u.FullName
	}
	if r.vrfy {
		n.st = stVerified
		return
	}
	if !n.quoted {
		r.forward(n)
	}
}

// finish turns the send list into the result.
func (r *run) finish() *Result {
	for i, n := range r.failed {
		r.res.Failures = append(r.res.Failures, Failure{Addr: n.paddr, Err: r.errs[i],
			Owner: n.ownerOf(), Top: n.topOf().paddr})
	}
	for _, n := range r.sendq() {
		if !n.sendable() {
			continue
		}
		rc := Recipient{Addr: n.paddr, Mailer: n.mailer, Host: n.host, User: n.user,
			Path: n.path, Local: n.local, Owner: n.ownerOf(), Top: n.topOf().paddr}
		if c := n.ctl(); c != nil {
			name := c.ruser
			if name == "" {
				name = c.user
			}
			rc.Ctl = &Controller{User: name, UID: c.uid, GID: c.gid, Addr: c.paddr, IsAlias: c.isAlias && c.local == nil}
		}
		if p := n.parent; p != nil {
			rc.Parent = p.paddr
			rc.Alias = p.isAlias
		}
		r.res.Recipients = append(r.res.Recipients, rc)
	}
	return &r.res
}
