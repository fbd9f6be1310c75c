package main

import (
	"io"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/route"
)

// newDNS is the DNS client of the relay client, -bt and the sender
// check: ResolverServers or resolv.conf, sendmail's resolver timeouts.
func newDNS(cfg *conf.Config, rt *route.Router) *resolve.Resolver {
	return resolve.New(resolve.Config{
		Servers: cfg.ResolverServers,
		IsLocal: rt.IsLocal,
		Timeout: cfg.Timeout("resolver.retrans"),
		Retries: cfg.ResolverRetry,
	})
}

// relayClient is the SMTP client (the esmtp, smtp, smtp8, dsmtp and relay
// mailers) of one runner, so of one configuration: a process has one
// runner, whose cached connections serve every queue run, and a daemon
// a new one after each SIGHUP. All are closed (QUIT) when the process
// ends; until then an old one's idle connections time out as usual.
func (a *app) relayClient(cfg *conf.Config, rt *route.Router) *relay.Client {
	eight, _ := relay.ParseEightBitMode(cfg.EightBitMode) // conf checked the value
	rc := relay.Config{
		Hostname:               cfg.Macros["j"],
		Resolver:               newDNS(cfg, rt),
		Timeouts:               relay.TimeoutsFrom(cfg.Timeout),
		ConnectionCacheSize:    cfg.ConnectionCacheSize,
		ConnectionCacheTimeout: cfg.ConnectionCacheTimeout,
		MaxHopCount:            cfg.MaxHopCount,
		EightBitMode:           eight,
		DefaultCharSet:         cfg.DefaultCharSet,
		IsLocal:                rt.IsLocal,
		Logger:                 a.log,
	}
	if dir := hostStatusDir(cfg, io.Discard); dir != "" {
		rc.HostStatus = hoststat.Open(dir, cfg.Timeout("hoststatus"), nil)
	}
	c := relay.New(rc)
	a.relayMu.Lock()
	a.relays = append(a.relays, c)
	a.relayMu.Unlock()
	return c
}

// closeRelay says QUIT to the hosts whose connections are cached.
func (a *app) closeRelay() {
	a.relayMu.Lock()
	defer a.relayMu.Unlock()
	for _, c := range a.relays {
		c.Close()
	}
	a.relays = nil
}
