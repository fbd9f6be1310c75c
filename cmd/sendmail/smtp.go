package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/mta"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/sysexits"
)

// smtpService is the daemon's SMTP side for one configuration: a server per
// listener and their limiters.
type smtpService struct {
	servers  map[string]*smtpd.Server
	limiters map[string]*policy.Limiter
	clients  *policy.ClientCounter // every listener's, for ClientRate: and ClientConn:
}

// newSMTPService builds the service for cfg. A listener's limiter is carried
// over from the service it replaces (SIGHUP) with the new bounds, so the
// sessions still open count against MaxDaemonChildren.
func (a *app) newSMTPService(site *mta.Site, backend smtpd.Backend) (*smtpService, error) {
	cfg := site.Config
	svc := &smtpService{servers: map[string]*smtpd.Server{}, limiters: map[string]*policy.Limiter{}}
	var prev map[string]*policy.Limiter
	svc.clients = &policy.ClientCounter{}
	if old := a.live.Load(); old != nil {
		prev = old.svc.limiters
		svc.clients = old.svc.clients
	}
	for _, p := range cfg.Daemons {
		sc, err := site.SMTPConfig(p, backend)
		if err != nil {
			return nil, err
		}
		sc.Clients = svc.clients
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
	svc.clients.SetWindow(cfg.ConnectionRateWindowSize)
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
	site := a.site(st)
	defer site.Close()
	run, err := a.delivery(site)
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Config
	}
	defer run.Close()
	defer run.Runner.Wait() // background deliveries finish before the process ends
	port := conf.DaemonPort{Name: "MTA"}
	if len(a.cfg.Daemons) > 0 {
		port = a.cfg.Daemons[0]
	}
	port.Modifiers = "" // a local user needs no AUTH
	sc, err := site.SMTPConfig(port, mta.NewBackend(site, run))
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
