package mta

import (
	"context"
	"crypto/tls"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// DeliveryOptions say how a Delivery runs.
type DeliveryOptions struct {
	// QueueInterval is -q30m's interval, for the retry schedule.
	QueueInterval time.Duration
	// HostStatusDir is HostStatusDirectory resolved (relative names are
	// below the queue); "" keeps host status in memory only.
	HostStatusDir string
	// Relay overrides the relay client's settings (tests: Port, Dial);
	// nil: from the configuration.
	Relay func(*relay.Config)
}

// Delivery is the queue runner of a process and its mailers. It lives as
// long as the process: SetSite gives it a new configuration's routing,
// expansion and mailers (SIGHUP: the smart host, the mailertable, the
// resolver, the relay timeouts, the delivery agents' options) without
// losing its index, its lanes or the jobs in progress. The schedule and
// the concurrency bounds (Timeout.queuewarn, Timeout.queuereturn,
// MinQueueAge, MaxQueueChildren, MaxRunnersPerQueue, QueueSortOrder) are
// the first configuration's: they need a restart.
type Delivery struct {
	Runner  *runner.Runner
	opts    DeliveryOptions
	site    atomic.Pointer[Site]
	mailers atomic.Pointer[mailerSet]

	mu       sync.Mutex
	replaced []*mailerSet // former sites' mailers, closed with the Delivery
}

// mailerSet is one configuration's mailers.
type mailerSet struct {
	agents *localMailers // mbox, *file*, prog
	lmtp   *relay.LMTP   // the local mailer when sendmail.cf's Mlocal is LMTP
	relay  *relay.Client
}

// newMailers builds site's delivery agents, LMTP client and relay client.
func newMailers(site *Site, o DeliveryOptions) (*mailerSet, error) {
	agent, err := deliver.New(DeliverOptions(site.Config, site.Log))
	if err != nil {
		return nil, err
	}
	lmtp, err := site.lmtpMailer()
	if err != nil {
		return nil, err
	}
	// One host status table for the relay client and the local mailer's
	// "local" entry, so that every write to the directory goes through
	// the same table (and, with SingleThreadDelivery, its locks).
	var hs *hoststat.Table
	if o.HostStatusDir != "" {
		hs = hoststat.Open(o.HostStatusDir, site.Config.Timeout("hoststatus"), nil)
	}
	// The relay client asks this site's TLS policy (map, DANE, MTA-STS).
	rc := relay.New(site.relayConfig(o, site.TLSPolicy().Require, hs))
	return &mailerSet{agents: &localMailers{agent: agent, hs: hs}, lmtp: lmtp, relay: rc}, nil
}

func (m *mailerSet) close() {
	m.relay.Close()
	if m.lmtp != nil {
		m.lmtp.Close()
	}
}

// Which mailers of the current set a runner mailer name stands for.
const (
	kindAgent  = iota // *file*, prog
	kindLocal         // local: LMTP when configured, else the mbox agent
	kindRemote        // the SMTP mailers
)

// liveMailer is a runner mailer that delivers with the current
// configuration's mailers.
type liveMailer struct {
	d    *Delivery
	kind int
}

func (m liveMailer) Deliver(ctx context.Context, d *runner.Delivery) []runner.Result {
	set := m.d.mailers.Load()
	switch {
	case m.kind == kindRemote:
		return set.relay.Deliver(ctx, d)
	case m.kind == kindLocal && set.lmtp != nil:
		return set.lmtp.Deliver(ctx, d)
	}
	return set.agents.Deliver(ctx, d)
}

// NewDelivery builds the runner over site's queue: the local delivery
// agents as the local, *file* and prog mailers (an LMTP client as the
// local mailer when sendmail.cf defines it so: LocalLMTP), one relay
// client as the esmtp, smtp, smtp8, dsmtp and relay mailers.
func NewDelivery(site *Site, o DeliveryOptions) (*Delivery, error) {
	cfg := site.Config
	set, err := newMailers(site, o)
	if err != nil {
		return nil, err
	}
	d := &Delivery{opts: o}
	d.site.Store(site)
	d.mailers.Store(set)
	agents, remote := liveMailer{d: d, kind: kindAgent}, liveMailer{d: d, kind: kindRemote}
	mailers := map[string]runner.Mailer{route.Local: liveMailer{d: d, kind: kindLocal}, route.File: agents, route.Prog: agents}
	for _, m := range []string{route.ESMTP, route.SMTP, route.SMTP8, route.DSMTP, route.Relay} {
		mailers[m] = remote
	}
	order, ok := runner.ParseSortOrder(cfg.QueueSortOrder)
	if !ok {
		NoteNotInterpreted(cfg, "option QueueSortOrder="+cfg.QueueSortOrder+" (priority used)")
	}
	d.Runner, err = runner.New(runner.Config{
		Store:   site.Store,
		Router:  router{site: &d.site},
		Mailers: mailers,
		Schedule: queue.Schedule{
			MinQueueAge: cfg.MinQueueAge,
			Interval:    o.QueueInterval,
			QueueWarn:   cfg.Timeout("queuewarn"),
			QueueReturn: cfg.Timeout("queuereturn"),
		},
		SortOrder:           order,
		MaxQueueChildren:    cfg.MaxQueueChildren,
		MaxRunnersPerQueue:  cfg.MaxRunnersPerQueue,
		Hostname:            cfg.Macros["j"],
		HostNames:           site.HostNames(),
		Version:             Version(),
		DoubleBounceAddress: cfg.DoubleBounceAddress,
		// Reports are expanded as any accepted recipient, by the current
		// configuration.
		ExpandReport: func(ctx context.Context, addr string) ([]queue.Recipient, error) {
			return d.site.Load().Acceptor.Recipients([]accept.Recipient{{Addr: addr}})
		},
		// A recipient queued unexpanded (its alias database was
		// unavailable) is expanded at the queue run as acceptance would
		// have, with its DSN parameters; the alias database still down
		// is a temporary error, and it stays queued.
		ExpandQueued: func(ctx context.Context, rc queue.Recipient) ([]queue.Recipient, error) {
			return d.site.Load().Acceptor.Recipients([]accept.Recipient{{Addr: rc.Addr, Notify: notifyOf(&rc), ORcpt: rc.ORcpt}})
		},
		NoBodyReturn: cfg.Privacy("nobodyreturn"),
		Logger:       site.Log,
		Now:          site.now,
	})
	if err != nil {
		set.close()
		return nil, err
	}
	return d, nil
}

// SetSite makes site the configuration that routes, expands and delivers
// from now on (the daemon's SIGHUP). It must share the Delivery's queue.
// Deliveries in progress finish with the mailers they started with; the
// former relay client's idle connections time out (it is closed with the
// Delivery).
func (d *Delivery) SetSite(site *Site) error {
	set, err := newMailers(site, d.opts)
	if err != nil {
		return err
	}
	prev := d.site.Load()
	d.site.Store(site)
	old := d.mailers.Swap(set)
	if prev != nil && prev.Config.SingleThreadDelivery {
		// Its idle connections hold their hosts' locks, which the new
		// client would find taken and skip the hosts until they time
		// out: close them now (deliveries in progress still finish).
		old.relay.Close()
	}
	d.mu.Lock()
	d.replaced = append(d.replaced, old)
	d.mu.Unlock()
	return nil
}

// Close stops the relay and LMTP clients, the current ones and those of
// former sites (QUIT to the hosts and the mail store whose connections are
// cached). The runner's own work is ended by Shutdown or Wait.
func (d *Delivery) Close() {
	d.mailers.Load().close()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range d.replaced {
		m.close()
	}
	d.replaced = nil
}

// The SMTP backend's hand-over points.

// DeliverNow makes the first attempt of a job just accepted, in the
// caller's goroutine (VERB, -odi, -v; transcript may be nil).
func (d *Delivery) DeliverNow(ctx context.Context, l *queue.Locked, transcript io.Writer) {
	d.Runner.DeliverLocked(ctx, l, transcript)
}

// relayConfig is the relay client's configuration; tlsPolicy is its TLS
// policy (package tlspolicy), hs the host status table (nil: none).
func (s *Site) relayConfig(o DeliveryOptions, tlsPolicy func(context.Context, relay.TLSQuery) relay.TLSRequirement, hs *hoststat.Table) relay.Config {
	cfg := s.Config
	eight, _ := relay.ParseEightBitMode(cfg.EightBitMode) // conf checked the value
	rc := relay.Config{
		Hostname:               cfg.Macros["j"],
		Resolver:               s.DNS(),
		TLS:                    &tls.Config{RootCAs: s.TLSRoots()},
		TLSPolicy:              tlsPolicy,
		Timeouts:               relay.TimeoutsFrom(cfg.Timeout),
		ConnectionCacheSize:    cfg.ConnectionCacheSize,
		ConnectionCacheTimeout: cfg.ConnectionCacheTimeout,
		MaxHopCount:            cfg.MaxHopCount,
		EightBitMode:           eight,
		DefaultCharSet:         cfg.DefaultCharSet,
		IsLocal:                s.Router.IsLocal,
		Logger:                 s.Log,
		Now:                    s.now,
	}
	if hs != nil {
		rc.HostStatus = hs
		if cfg.SingleThreadDelivery {
			// The same table, so that a host's status is written
			// through the lock held for it.
			rc.HostLocks = hs
		}
	}
	if o.Relay != nil {
		o.Relay(&rc)
	}
	return rc
}

// DNS is the resolver of the relay client, its TLS policy, -bt and the
// sender check: ResolverServers or resolv.conf, sendmail's resolver
// timeouts, the AD bit trusted with ResolverOptions=+TRUSTAD. One per
// Site, so that they share its cache.
func (s *Site) DNS() *resolve.Resolver {
	s.dnsOnce.Do(func() {
		s.dns = resolve.New(resolve.Config{
			Servers: s.Config.ResolverServers,
			IsLocal: s.Router.IsLocal,
			Timeout: s.Config.Timeout("resolver.retrans"),
			Retries: s.Config.ResolverRetry,
			TrustAD: s.Config.TLS.TrustAD,
		})
	})
	return s.dns
}

// NoteNotInterpreted adds what to the configuration's list of what
// posthorn reads but does not act on (logged by the daemon, shown by -d0).
func NoteNotInterpreted(cfg *conf.Config, what string) {
	if !slices.Contains(cfg.NotInterpreted, what) {
		cfg.NotInterpreted = append(cfg.NotInterpreted, what)
	}
}

// notifyOf is the DSN NOTIFY parameter an R line's flags record: "" when
// none was given, NEVER, or the list of SUCCESS, FAILURE and DELAY.
func notifyOf(rc *queue.Recipient) string {
	if !rc.HasFlag(queue.RcptHasNotify) {
		return ""
	}
	var n []string
	for _, f := range []struct {
		flag byte
		name string
	}{{queue.RcptSuccess, "SUCCESS"}, {queue.RcptFailure, "FAILURE"}, {queue.RcptDelay, "DELAY"}} {
		if rc.HasFlag(f.flag) {
			n = append(n, f.name)
		}
	}
	if len(n) == 0 {
		return "NEVER"
	}
	return strings.Join(n, ",")
}
