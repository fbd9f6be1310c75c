package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// delivery is what the SMTP backend asks of the queue runner: deliver a job
// it just accepted (background mode; the job is handed over locked), and
// start a run for ETRN. Nil until the runner is wired: jobs then wait for
// the next queue run.
type delivery interface {
	// Deliver makes the first attempt on a job just accepted, now.
	Deliver(l *queue.Locked, transcript io.Writer)
	// DeliverAsync does it in the background (DeliveryMode=background).
	DeliverAsync(l *queue.Locked)
	Kick(dir, id string)
	// ETRN asks for a queue run for domain; joined to one already
	// running for it, refused (458) when too many wait.
	ETRN(domain string) error
	// Wait waits for the background deliveries.
	Wait()
}

// smtpBackend connects the SMTP dialogue to aliases and the queue.
type smtpBackend struct {
	cfg   *conf.Config
	store *queue.Store
	acc   *accept.Acceptor
	x     *aliases.Expander
	run   delivery
}

func (b *smtpBackend) NewID() string { return b.store.NewID() }

// EnoughSpace is smtpd.SpaceChecker: SIZE= (or MinFreeBlocks alone) against
// the queue's free space at MAIL.
func (b *smtpBackend) EnoughSpace(size int64) bool { return b.acc.CheckSpace(size) == nil }

// CheckSender accepts every sender: syntax, size, AUTH ownership and the
// access file's From: entries are checked by smtpd and policy before this
// call. sendmail's remaining check, that the sender's domain exists in DNS
// (553 5.1.8), needs the resolver that comes with the relay client.
func (b *smtpBackend) CheckSender(ctx context.Context, c *smtpd.Client, from smtpd.Path) error {
	return nil
}

// CheckRecipient accepts a remote address (the relay check judged the
// same triple) and asks the aliases whether a local one exists, without
// expanding it, as sendmail does at RCPT time.
func (b *smtpBackend) CheckRecipient(ctx context.Context, c *smtpd.Client, env *smtpd.Envelope, rcpt smtpd.Path, t route.Triple) error {
	if !t.Local {
		return nil
	}
	if serr := b.x.CheckRecipient("<" + rcpt.Addr + ">"); serr != nil {
		return serr
	}
	return nil
}

func (b *smtpBackend) Verify(ctx context.Context, c *smtpd.Client, arg string, expand bool) ([]smtpd.Expansion, error) {
	lookup := b.x.Vrfy
	if expand {
		lookup = b.x.Expn
	}
	entries, serr := lookup(arg, b.cfg.Macros["j"])
	if serr != nil {
		return nil, serr
	}
	out := make([]smtpd.Expansion, len(entries))
	for i, e := range entries {
		a := e.User
		if e.Host != "" {
			a += "@" + e.Host
		}
		out[i] = smtpd.Expansion{Code: e.Code, FullName: e.FullName, Addr: a}
	}
	return out, nil
}

// Enqueue writes the message to the queue and returns once it is durable.
// r is the client's text; smtpd's Received header (env.Received) goes to
// its place after Return-Path.
func (b *smtpBackend) Enqueue(ctx context.Context, env *smtpd.Envelope, r io.Reader) (string, error) {
	m, err := b.acc.BeginID(env.ID, false)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(m, r); err != nil {
		m.Abort()
		return "", err
	}
	aenv := &accept.Envelope{
		Sender:   "<" + env.From.Addr + ">",
		EnvID:    env.EnvID,
		Ret:      env.Ret,
		BodyType: env.Body,
		Auth:     env.Auth,
		Received: env.Received,
		FromAddr: cmp.Or(env.From.Addr, "<>"), // for a message without From: (sendmail's $g)
		Macros: []queue.Macro{
			{Name: "_", Value: env.Client.Relay()},
			{Name: "r", Value: protocol(env.Client)},
			{Name: "s", Value: env.Client.Helo},
			{Name: "{daemon_flags}", Value: ""},
		},
	}
	seen := map[string]bool{}
	for _, rc := range env.Rcpts {
		if seen[rc.Canonical] {
			continue // a duplicate RCPT is delivered once
		}
		seen[rc.Canonical] = true
		aenv.Recipients = append(aenv.Recipients, accept.Recipient{Addr: "<" + rc.Addr + ">", Notify: rc.Notify, ORcpt: rc.ORcpt})
	}
	if err := filterMessage(env.Milter, env, m, aenv); err != nil {
		if errors.Is(err, errDiscarded) {
			return env.ID, nil
		}
		return "", err
	}
	if b.run == nil || aenv.Quarantine != "" || b.cfg.DeliveryMode == conf.DeliverQueueOnly || b.cfg.DeliveryMode == conf.DeliverDeferred {
		j, err := m.Commit(aenv)
		if err != nil {
			return "", err
		}
		return j.ID, nil
	}
	l, err := m.CommitLocked(aenv)
	if err != nil {
		return "", err
	}
	if env.Transcript != nil || b.cfg.DeliveryMode == conf.DeliverInteractive {
		b.run.Deliver(l, env.Transcript) // VERB: the client watches
	} else {
		b.run.DeliverAsync(l)
	}
	for _, c := range m.Clones() {
		b.run.Kick(c.Dir, c.ID)
	}
	return l.ID(), nil
}

func (b *smtpBackend) ETRN(ctx context.Context, c *smtpd.Client, arg string) error {
	if b.run != nil {
		return b.run.ETRN(strings.TrimPrefix(arg, "@"))
	}
	return nil
}

// protocol is $r as sendmail records it.
func protocol(c *smtpd.Client) string {
	p := "SMTP"
	if c.ESMTP {
		p = "ESMTP"
	}
	if c.TLS {
		p += "S"
	}
	if c.AuthUser != "" {
		p += "A"
	}
	return p
}

// smtpConfig is smtpd's configuration for one listener.
func (a *app) smtpConfig(cfg *conf.Config, port conf.DaemonPort, backend smtpd.Backend) (smtpd.Config, error) {
	pol, err := a.newPolicy(cfg)
	if err != nil {
		return smtpd.Config{}, err
	}
	sc := smtpd.Config{
		Hostname:        cfg.Macros["j"],
		Greeting:        cfg.Expand(cfg.SmtpGreetingMessage, map[string]string{"b": "$b", "daemon_name": port.Name}),
		Version:         "posthorn " + conf.Version,
		HelpFile:        cfg.HelpFile,
		ExpandMacros:    func(s string) string { return cfg.Expand(s, nil) },
		DaemonName:      port.Name,
		RequireAuth:     port.HasModifier('a'),
		MaxMessageSize:  cfg.MaxMessageSize,
		MaxRecipients:   cfg.MaxRecipientsPerMessage,
		MaxHopCount:     cfg.MaxHopCount,
		Privacy:         smtpd.ParsePrivacy(cfg.Values["PrivacyOptions"]),
		BadRcptThrottle: cfg.BadRcptThrottle,
		Timeouts: smtpd.Timeouts{
			Command:   cfg.Timeout("command"),
			DataBlock: cfg.Timeout("datablock"),
			Data:      cfg.Timeout("datafinal"),
		},
		Policy: pol,
		// sendmail's check that the sender's domain exists, unless
		// FEATURE(accept_unresolvable_domains)
		SenderDomain: a.senderDomain(cfg, pol),
		Backend:      backend,
		Resolver:     newResolver(cfg),
		Log:          a.log,
	}
	sc.MaxSessionTime, sc.MaxSessionCommands = cfg.MaxSessionTime, cfg.MaxSessionCommands
	if sc.Milters, err = newMilters(cfg, a.log, port.Name); err != nil {
		return sc, err
	}
	if cfg.ServerCertFile != "" && cfg.ServerKeyFile != "" {
		t, err := smtpd.LoadTLS(cfg.ServerCertFile, cfg.ServerKeyFile)
		if err != nil {
			return sc, fmt.Errorf("STARTTLS: %w", err)
		}
		sc.TLS = t
	}
	if af, err := policy.LoadAuthFile(cfg.AuthFile); err == nil {
		sc.Auth = af
	} else if !errors.Is(err, fs.ErrNotExist) {
		return sc, err
	}
	return sc, nil
}

// newPolicy builds relay control from RelayHosts, the router ($=w and
// the mailertable), $=R and AccessFile.
func (a *app) newPolicy(cfg *conf.Config) (*policy.Policy, error) {
	p := &policy.Policy{RelayHosts: cfg.RelayHosts, Router: newRouter(cfg, a.log), RelayDomains: map[string]bool{}}
	for _, r := range cfg.Class("R") {
		p.RelayDomains[strings.ToLower(r)] = true
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

// newResolver asks ResolverServers when set (tests point it at a test
// DNS), else the system's resolver.
func newResolver(cfg *conf.Config) smtpd.Resolver {
	if len(cfg.ResolverServers) == 0 {
		return net.DefaultResolver
	}
	servers := cfg.ResolverServers
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, servers[rand.IntN(len(servers))])
	}}
}

// smtpService is the daemon's SMTP side for one configuration: a server per
// listener and their limiters.
type smtpService struct {
	servers  map[string]*smtpd.Server
	limiters map[string]*policy.Limiter
}

// newSMTPService builds the service for cfg. A listener's limiter is carried
// over from the service it replaces (SIGHUP) with the new bounds, so the
// sessions still open count against MaxDaemonChildren.
func (a *app) newSMTPService(cfg *conf.Config, backend smtpd.Backend) (*smtpService, error) {
	svc := &smtpService{servers: map[string]*smtpd.Server{}, limiters: map[string]*policy.Limiter{}}
	var prev map[string]*policy.Limiter
	if old := a.live.Load(); old != nil {
		prev = old.svc.limiters
	}
	for _, p := range cfg.Daemons {
		sc, err := a.smtpConfig(cfg, p, backend)
		if err != nil {
			return nil, err
		}
		srv, err := smtpd.New(sc)
		if err != nil {
			return nil, err
		}
		svc.servers[p.Name] = srv
		svc.limiters[p.Name] = prev[p.Name]
		if svc.limiters[p.Name] == nil {
			svc.limiters[p.Name] = &policy.Limiter{}
		}
	}
	for _, l := range svc.limiters { // only once the whole service is built
		l.SetLimits(cfg.MaxDaemonChildren, cfg.ConnectionRateThrottle)
	}
	return svc, nil
}

func (s *smtpService) serve(ctx context.Context, conn net.Conn, port conf.DaemonPort) {
	srv := s.servers[port.Name]
	if srv == nil {
		conn.Close()
		return
	}
	release, delay, err := s.limiters[port.Name].Admit(time.Now())
	if err != nil {
		srv.Refuse(conn, err)
		return
	}
	defer release()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			conn.Close()
			return
		}
	}
	srv.ServeConn(ctx, conn)
}

// smtpOnStdio is -bs: one SMTP session on standard input and output, for
// the invoking user.
func (a *app) smtpOnStdio() int {
	if !canWriteQueue(a.cfg) {
		return a.handOffSMTP()
	}
	st, code := a.openStore(storeCreate)
	if st == nil {
		return code
	}
	defer st.Close()
	a.store = st
	x, src := newExpander(a.cfg, a)
	if src != nil {
		defer src.Close()
	}
	acc := newAcceptor(a.cfg, st, queueExpander{x}, a.log)
	r, err := a.newRunner(a.cfg, st, acc)
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Config
	}
	run := newRunnerDelivery(r)
	defer run.Wait() // background deliveries finish before the process ends
	backend := &smtpBackend{cfg: a.cfg, store: st, acc: acc, x: x, run: run}
	port := conf.DaemonPort{Name: "MTA"}
	if len(a.cfg.Daemons) > 0 {
		port = a.cfg.Daemons[0]
	}
	port.Modifiers = "" // a local user needs no AUTH
	sc, err := a.smtpConfig(a.cfg, port, backend)
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Config
	}
	srv, err := smtpd.New(sc)
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Software
	}
	if err := srv.ServeStdio(context.Background(), a.stdin, a.stdout, invokingUser().Name); err != nil && !errors.Is(err, io.EOF) {
		return sysexits.IOErr
	}
	return sysexits.OK
}

// senderDomain is the MAIL FROM domain check, or nil when
// AcceptUnresolvableDomains turns it off.
func (a *app) senderDomain(cfg *conf.Config, pol *policy.Policy) func(context.Context, string) error {
	if cfg.AcceptUnresolvableDomains {
		return nil
	}
	return newDNS(cfg, pol.Router).CheckSender
}
