package mta

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
	"sync"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/pwcache"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/queue"
)

// Backend connects the SMTP dialogue to a Site's aliases and queue and to
// a Delivery's runner (nil: accepted jobs wait for the next queue run).
type Backend struct {
	site *Site
	run  *Delivery
}

// NewBackend is the SMTP backend of site, handing accepted jobs to run.
func NewBackend(site *Site, run *Delivery) *Backend { return &Backend{site: site, run: run} }

var _ smtpd.Backend = (*Backend)(nil)

func (b *Backend) NewID() string { return b.site.Store.NewID() }

// EnoughSpace is smtpd.SpaceChecker: SIZE= (or MinFreeBlocks alone) against
// the queue's free space at MAIL.
func (b *Backend) EnoughSpace(size int64) bool { return b.site.Acceptor.CheckSpace(size) == nil }

// CheckSender accepts every sender: syntax, size, AUTH ownership, the
// access file's From: entries and the sender's domain are checked by
// smtpd and policy.
func (b *Backend) CheckSender(ctx context.Context, c *smtpd.Client, from smtpd.Path) error {
	return nil
}

// CheckRecipient accepts a remote address (the relay check judged the
// same triple) and asks the aliases whether a local one exists, without
// expanding it, as sendmail does at RCPT time.
func (b *Backend) CheckRecipient(ctx context.Context, c *smtpd.Client, env *smtpd.Envelope, rcpt smtpd.Path, t route.Triple) error {
	if !t.Local {
		return nil
	}
	if serr := b.site.Expander.CheckRecipient("<" + rcpt.Addr + ">"); serr != nil {
		return serr
	}
	return nil
}

func (b *Backend) Verify(ctx context.Context, c *smtpd.Client, arg string, expand bool) ([]smtpd.Expansion, error) {
	lookup := b.site.Expander.Vrfy
	if expand {
		lookup = b.site.Expander.Expn
	}
	entries, serr := lookup(arg, b.site.Config.Macros["j"])
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

// copyBuffers carry the message text from the SMTP reader to the queue,
// one per message in flight rather than a new one per message.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Enqueue writes the message to the queue and returns once it is durable.
// r is the client's text; smtpd's Received header (env.Received) goes to
// its place after Return-Path.
func (b *Backend) Enqueue(ctx context.Context, env *smtpd.Envelope, r io.Reader) (string, error) {
	m, err := b.site.Acceptor.BeginID(env.ID, false)
	if err != nil {
		return "", err
	}
	buf := copyBuffers.Get().(*[]byte)
	_, err = io.CopyBuffer(m, r, *buf)
	copyBuffers.Put(buf)
	if err != nil {
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
	aenv.FullName = b.senderFullName(env)
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
	mode := b.site.Config.DeliveryMode
	if b.run == nil || aenv.Quarantine != "" || mode == conf.DeliverQueueOnly || mode == conf.DeliverDeferred {
		j, err := m.Commit(aenv)
		if err != nil {
			return "", err
		}
		accepted(env, j)
		return j.ID, nil
	}
	l, err := m.CommitLocked(aenv)
	if err != nil {
		return "", err
	}
	accepted(env, l.Job())
	if env.Transcript != nil || mode == conf.DeliverInteractive {
		b.run.DeliverNow(context.Background(), l, env.Transcript) // VERB: the client watches
	} else {
		b.run.Runner.Background(l)
	}
	for _, c := range m.Clones() {
		b.run.Runner.Kick(c.Dir, c.ID)
	}
	return l.ID(), nil
}

// senderFullName is the full name for a From: the message lacks: in a -bs
// session whose MAIL FROM is the invoking user ("root", "root@$j"), the
// user's GECOS name, as sendmail's setsender takes it from the password
// file (02-mbox-alice.txt: "From: root <root>"); "" otherwise. It passes
// header.Clean, as every value from the password file does.
func (b *Backend) senderFullName(env *smtpd.Envelope) string {
	c := env.Client
	if c == nil || !c.Local() {
		return ""
	}
	from := env.From.Addr
	if !strings.EqualFold(from, c.User) && !strings.EqualFold(from, c.User+"@"+b.site.Config.Macros["j"]) {
		return ""
	}
	pw, err := pwcache.Lookup(c.User)
	if err != nil {
		return ""
	}
	name, _ := header.Clean(aliases.FullName(pw.Name, pw.Username))
	return strings.TrimSpace(name)
}

// accepted tells the SMTP server that j is queued, before any delivery.
func accepted(env *smtpd.Envelope, j *queue.Job) {
	if env.Accepted == nil {
		return
	}
	msgid, _ := j.Get("Message-Id")
	env.Accepted(j.ID, strings.TrimSpace(msgid))
}

// ETRN asks for a queue run for the node; it joins one running for it and
// is refused (458) when too many wait.
func (b *Backend) ETRN(ctx context.Context, c *smtpd.Client, arg string) error {
	if b.run != nil {
		return b.run.Runner.ETRN(strings.TrimPrefix(arg, "@"))
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

// SMTPConfig is smtpd's configuration for one listener of this Site.
func (s *Site) SMTPConfig(port conf.DaemonPort, backend smtpd.Backend) (smtpd.Config, error) {
	cfg := s.Config
	pol, err := s.Policy()
	if err != nil {
		return smtpd.Config{}, err
	}
	sc := smtpd.Config{
		Hostname:        cfg.Macros["j"],
		Greeting:        cfg.Expand(cfg.SmtpGreetingMessage, map[string]string{"b": "$b", "daemon_name": port.Name}),
		Version:         Version(),
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
		MaxSessionTime:     cfg.MaxSessionTime,
		MaxSessionCommands: cfg.MaxSessionCommands,
		Policy:             pol,
		SenderDomain:       s.senderDomain(),
		Backend:            backend,
		Resolver:           s.ptrResolver(),
		Log:                s.Log,
		Now:                s.now,
	}
	if sc.Milters, err = newMilters(cfg, s.Log, port, sc.Resolver); err != nil {
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

// senderDomain is sendmail's check that the MAIL FROM domain exists, or nil
// when AcceptUnresolvableDomains (FEATURE(accept_unresolvable_domains))
// turns it off.
func (s *Site) senderDomain() func(context.Context, string) error {
	if s.Config.AcceptUnresolvableDomains {
		return nil
	}
	return s.DNS().CheckSender
}

// ptrResolver looks the client's PTR name up: ResolverServers when set
// (tests point it at a test DNS), else the system's resolver.
func (s *Site) ptrResolver() smtpd.Resolver {
	servers := s.Config.ResolverServers
	if len(servers) == 0 {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, servers[rand.IntN(len(servers))])
	}}
}
