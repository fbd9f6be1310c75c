// Package mta builds posthorn's object graph from one configuration, in
// one place, for every way the binary runs (the daemon and its reloads,
// sendmail -bs, local submission, queue runs, -bv, -bt):
//
//	Site      one configuration's decisions: the router (route.Router with
//	          the mailertable and the virtusertable), the alias expander
//	          over the aliases database, acceptance into the queue, relay
//	          policy, local submission, the SMTP listeners' configuration
//	Delivery  what outlives a configuration in a process: the queue runner
//	          and its mailers (the local delivery agents, one relay client
//	          whose cached connections serve every job); SetSite hands it
//	          the configuration a SIGHUP read
//	Backend   the SMTP server's backend (smtpd.Backend) over a Site and a
//	          Delivery: recipient checks, VRFY/EXPN, the queue, ETRN
//
// cmd/sendmail chooses what a mode needs and wires nothing itself, so the
// parts are the same in the daemon, in -bs and in the in-process tests of
// this package (smtpd, the backend, the queue and the runner together).
package mta

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/ldapmap"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/rfcdate"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/submit"
	"github.com/posthorn/posthorn/internal/tlspolicy"
	"github.com/posthorn/posthorn/queue"
)

// Options say how a Site is built.
type Options struct {
	Config *conf.Config
	Log    *maillog.Logger
	// Store is the queue; nil for modes that queue nothing (-bv, -bt):
	// the Site then has no Acceptor.
	Store *queue.Store
	// NoAlias is -n: no aliasing.
	NoAlias bool
	// Users replaces the system's password database (tests).
	Users aliases.Users
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Site is one configuration's parts.
type Site struct {
	Config      *conf.Config
	Log         *maillog.Logger
	Store       *queue.Store
	Router      *route.Router
	MailerTable *route.Table // nil when MailerTable is unset
	Expander    *aliases.Expander
	Aliases     *aliases.Source // nil without an AliasFile or with -n
	Acceptor    *accept.Acceptor
	now         func() time.Time
	ldapMaps    []*ldapmap.Map // closed with the Site

	dnsOnce sync.Once
	dns     *resolve.Resolver
	tlsOnce sync.Once
	tls     *tlspolicy.Engine
}

// New builds a Site. It reads the mailertable and virtusertable (bad lines
// are logged) and opens the aliases database lazily.
func New(o Options) *Site {
	s := &Site{Config: o.Config, Log: o.Log, Store: o.Store, now: o.Now}
	if s.now == nil {
		s.now = time.Now
	}
	s.Router, s.MailerTable = s.routing()
	s.Expander, s.Aliases = s.expander(o.NoAlias, o.Users)
	if o.Store != nil {
		s.Acceptor = &accept.Acceptor{Store: o.Store, Hostname: s.Config.Macros["j"], Expander: acceptExpander{s.Expander},
			Date: rfcdate.Format, Now: s.now, Log: s.Log, MinFreeBlocks: s.Config.MinFreeBlocks,
			MaxHeaderBytes: s.Config.MaxHeadersLength}
	}
	return s
}

// Close releases the aliases database.
func (s *Site) Close() {
	if s.Aliases != nil {
		s.Aliases.Close()
	}
	for _, m := range s.ldapMaps {
		m.Close()
	}
}

// routing is the one routing function's configuration: $=w, the
// mailertable, the virtusertable with {VirtHost}, the smart host ($S).
func (s *Site) routing() (*route.Router, *route.Table) {
	cfg := s.Config
	rc := route.Config{Names: addr.NewNames(cfg.Class("w")...), SmartHost: cfg.Macros["S"],
		VirtHosts: addr.NewNames(cfg.Class("VirtHost")...)}
	var mt *route.Table
	rc.MailerTable, mt = s.routeMap("mailertable", cfg.MailerTable, route.LoadMailerTable)
	rc.VirtUserTable, _ = s.routeMap("virtuser", cfg.VirtUserTable, route.LoadVirtUserTable)
	rc.LDAPRouting = s.ldapRouting()
	return route.New(rc), mt
}

// expander is the alias and .forward expander over a Source that follows
// rebuilds of the database.
func (s *Site) expander(noAlias bool, users aliases.Users) (*aliases.Expander, *aliases.Source) {
	cfg := s.Config
	opts := aliases.Options{
		Router:      s.Router,
		Users:       users,
		ForwardPath: strings.Join(cfg.ForwardPath, ":"),
		Macros:      map[string]string{"w": cfg.Macros["w"], "j": cfg.Macros["j"]},
		MaxDepth:    cfg.MaxAliasRecursion,
		// An LMTP store without F=w knows users this host does not.
		AnyLocalUser: anyLocalUser(cfg),
		Logger:       s.Log,
	}
	opts.DefaultUID, opts.DefaultGID = s.defaultIDs()
	var src *aliases.Source
	var chain aliasChain
	for i, f := range cfg.AliasFiles {
		switch {
		case noAlias:
		case IsLDAPSpec(f):
			m, err := s.ldapMap("AliasFile", strings.TrimSpace(f)[len("ldap:"):], true)
			if err != nil {
				s.Log.Errf("", "%v", err)
				continue
			}
			chain = append(chain, m)
		case i == 0:
			// Lookups use the first file, as before; newaliases builds each.
			src = aliases.NewSource(aliases.SourceOptions{AliasFile: f, IsLocal: s.Router.IsLocal, Logger: s.Log,
				RunUser: RunUser(), CheckInterval: time.Second})
			chain = append(chain, src)
		}
	}
	switch len(chain) {
	case 0:
	case 1:
		opts.Aliases = chain[0]
	default:
		opts.Aliases = chain
	}
	return aliases.New(opts), src
}

// defaultIDs are DefaultUser's uid and gid, for the controlling user of
// alias products (qf C lines). An unknown DefaultUser falls back to
// sendmail's own default, 1:1, with a warning; deliveries then refuse it.
func (s *Site) defaultIDs() (uid, gid int) {
	u, err := deliver.ParseDefaultUser(s.Config.DefaultUser, deliver.LookupSystemUser)
	if err != nil {
		s.Log.Warnf("", "%v", err)
		return 1, 1
	}
	return u.UID, u.GID
}

// AliasFile is the first AliasFile (sendmail allows a list; lookups use
// the first, newaliases rebuilds each).
func AliasFile(cfg *conf.Config) string {
	if len(cfg.AliasFiles) == 0 {
		return ""
	}
	return cfg.AliasFiles[0]
}

// RunUser is the invoking user's login name, for log lines.
func RunUser() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return strconv.Itoa(os.Getuid())
}

// Trusted reports whether a user may set the sender without a warning:
// root, TrustedUser, and the T lines.
func (s *Site) Trusted(name string) bool { return Trusted(s.Config, name) }

// Trusted is Site.Trusted for a configuration.
func Trusted(cfg *conf.Config, name string) bool {
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

// HostNames is this host's own names, made $j in header addresses.
func (s *Site) HostNames() func(string) bool { return HostNames(s.Config) }

// HostNames is Site.HostNames for a configuration.
func HostNames(cfg *conf.Config) func(string) bool {
	return header.HostNames(cfg.Macros["j"], cfg.Macros["w"], cfg.Class("w"))
}

// Version is $v/$Z as posthorn writes it.
func Version() string { return "posthorn " + conf.Version }

// Submitter is local submission (sendmail -bm, -t) into this Site's queue.
// Recipients are checked as sendmail -bm checks them (SubmitCheck).
func (s *Site) Submitter() *submit.Submitter {
	return &submit.Submitter{
		Acceptor: s.Acceptor, Expander: submitCheck{s.Expander}, Hostname: s.Config.Macros["j"], Version: Version(),
		Trusted:         s.Trusted,
		OldStyleHeaders: true, Date: rfcdate.Format,
		HostNames: s.HostNames(), Log: s.Log,
	}
}

// Policy is relay control: RelayHosts, the router, $=R and AccessFile.
func (s *Site) Policy() (*policy.Policy, error) {
	cfg := s.Config
	p := &policy.Policy{RelayHosts: cfg.RelayHosts, Router: s.Router, RelayDomains: map[string]bool{}}
	for _, r := range cfg.Class("R") {
		p.RelayDomains[strings.ToLower(r)] = true
	}
	if k := cfg.Maps["access"]; k != nil && strings.EqualFold(k.Class, "ldap") {
		// FEATURE(access_db, LDAP): the entries are in the directory
		m, err := s.ldapMap("access", k.Args, false)
		if err != nil {
			return nil, err
		}
		p.Access = policy.NewAccessMap(m.Lookup)
		return p, nil
	}
	acc, err := policy.LoadAccess(cfg.AccessFile)
	switch {
	case err == nil:
		p.Access = acc
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, err
	}
	return p, nil
}

// DeliverOptions configure the local delivery agents (the runner's
// local, *file* and prog mailers, and mail.local).
func DeliverOptions(cfg *conf.Config, log *maillog.Logger) deliver.Options {
	return deliver.Options{
		MailSpoolDirectory:  cfg.MailSpoolDirectory,
		SafeFileEnvironment: cfg.SafeFileEnvironment,
		SmrshDirectory:      cfg.SmrshDirectory,
		DefaultUser:         cfg.DefaultUser,
		// $g and $d are the sender and date of each delivery.
		UnixFromLine: cfg.Expand(cfg.UnixFromLine, map[string]string{"g": "$g", "d": "$d"}),
		Logger:       log,
	}
}
