package mta

import (
	"context"
	"crypto/tls"
	"io"
	"slices"
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
// long as the process: SetSite gives it a new configuration's routing and
// expansion (SIGHUP) without losing its index, its lanes or the relay
// client's cached connections.
type Delivery struct {
	Runner *runner.Runner
	relay  *relay.Client
	site   atomic.Pointer[Site]
}

// NewDelivery builds the runner over site's queue: the local delivery
// agents as the local, *file* and prog mailers, one relay client as the
// esmtp, smtp, smtp8, dsmtp and relay mailers.
func NewDelivery(site *Site, o DeliveryOptions) (*Delivery, error) {
	cfg := site.Config
	agent, err := deliver.New(DeliverOptions(cfg, site.Log))
	if err != nil {
		return nil, err
	}
	d := &Delivery{}
	d.site.Store(site)
	lm := &localMailers{agent: agent}
	mailers := map[string]runner.Mailer{route.Local: lm, route.File: lm, route.Prog: lm}
	// The TLS policy follows the configuration a SIGHUP reads, as routing
	// does.
	d.relay = relay.New(site.relayConfig(o, func(ctx context.Context, q relay.TLSQuery) relay.TLSRequirement {
		return d.site.Load().TLSPolicy().Require(ctx, q)
	}))
	for _, m := range []string{route.ESMTP, route.SMTP, route.SMTP8, route.DSMTP, route.Relay} {
		mailers[m] = d.relay
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
		NoBodyReturn: cfg.Privacy("nobodyreturn"),
		Logger:       site.Log,
		Now:          site.now,
	})
	if err != nil {
		d.relay.Close()
		return nil, err
	}
	return d, nil
}

// SetSite makes site the configuration that routes and expands from now
// on (the daemon's SIGHUP). It must share the Delivery's queue.
func (d *Delivery) SetSite(site *Site) { d.site.Store(site) }

// Close stops the relay client (QUIT to the hosts whose connections are
// cached). The runner's own work is ended by Shutdown or Wait.
func (d *Delivery) Close() { d.relay.Close() }

// The SMTP backend's hand-over points.

// DeliverNow makes the first attempt of a job just accepted, in the
// caller's goroutine (VERB, -odi, -v; transcript may be nil).
func (d *Delivery) DeliverNow(ctx context.Context, l *queue.Locked, transcript io.Writer) {
	d.Runner.DeliverLocked(ctx, l, transcript)
}

// relayConfig is the relay client's configuration; tlsPolicy is its TLS
// policy (package tlspolicy).
func (s *Site) relayConfig(o DeliveryOptions, tlsPolicy func(context.Context, relay.TLSQuery) relay.TLSRequirement) relay.Config {
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
	if o.HostStatusDir != "" {
		rc.HostStatus = hoststat.Open(o.HostStatusDir, cfg.Timeout("hoststatus"), nil)
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
