package mta

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/tlspolicy"
	"github.com/posthorn/posthorn/internal/tlspolicy/sts"
	"github.com/posthorn/posthorn/internal/tlspolicy/tlsrpt"
	"github.com/posthorn/posthorn/queue"
)

// TLSPolicy is the configuration's outbound TLS policy: the TLS policy
// map, TLSDefaultLevel, DANE, MTA-STS (with its cache below the queue)
// and, with TLSReports, the TLS report store. It is built once per Site.
func (s *Site) TLSPolicy() *tlspolicy.Engine {
	s.tlsOnce.Do(func() { s.tls = s.tlsEngine() })
	return s.tls
}

func (s *Site) tlsEngine() *tlspolicy.Engine {
	o := s.Config.TLS
	e := &tlspolicy.Engine{DANE: o.DANE, DNS: s.DNS(), Roots: s.TLSRoots(), Now: s.now, Default: tlspolicy.May}
	if l, err := tlspolicy.ParseLevel(o.DefaultLevel); err == nil {
		e.Default = l
	}
	if o.PolicyMap != "" {
		t, err := tlspolicy.LoadTable(o.PolicyMap)
		if err != nil {
			// Unreadable: every destination that could have an entry is
			// at stake, so nothing is sent with less than asked for.
			s.Log.Errf("", "TLSPolicyMap %s: %v (TLSDefaultLevel applies)", o.PolicyMap, err)
		} else {
			for _, w := range t.Warnings() {
				s.Log.Warnf("", "%s", w)
			}
			e.Table = t
		}
	}
	logf := func(format string, args ...any) { s.Log.Infof("", format, args...) }
	if o.MTASTS {
		dns := s.DNS()
		e.STS = &sts.Client{DNS: dns, Now: s.now, Logf: logf,
			Fetcher: &sts.Fetcher{Resolve: dns.Addrs, RootCAs: e.Roots},
			Cache:   &sts.Cache{Dir: s.belowQueue(o.MTASTSCacheDirectory)}}
	}
	if o.Reports {
		e.Reports = s.TLSReportStore()
	}
	return e
}

// TLSReportStore is the store of TLS session results (TLSReportDirectory).
func (s *Site) TLSReportStore() *tlsrpt.Store {
	return &tlsrpt.Store{Dir: s.belowQueue(s.Config.TLS.ReportDirectory), DNS: s.DNS(),
		Logf: func(format string, args ...any) { s.Log.Warnf("", format, args...) }}
}

// belowQueue resolves a directory relative to the queue directory (the
// parent of a QueueDirectory pattern such as /var/spool/mqueue/q*).
func (s *Site) belowQueue(dir string) string {
	if dir == "" || filepath.IsAbs(dir) {
		return dir
	}
	q := s.Config.QueueDirectory
	if strings.ContainsAny(q, "*?[") {
		q = filepath.Dir(q)
	}
	return filepath.Join(q, dir)
}

// TLSRoots are the trust anchors of certificate checks: the system's and
// CACertFile's and CACertPath's certificates (sendmail's options; added to
// the system's, not instead, so that a CACertFile meant for client
// certificates does not break MTA-STS).
func (s *Site) TLSRoots() *x509.CertPool {
	o := s.Config.TLS
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	add := func(path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			s.Log.Errf("", "CA certificates %s: %v", path, err)
			return
		}
		if !pool.AppendCertsFromPEM(b) {
			s.Log.Errf("", "CA certificates %s: no PEM certificate", path)
		}
	}
	if o.CACertFile != "" {
		add(o.CACertFile)
	}
	if o.CACertPath != "" {
		ents, err := os.ReadDir(o.CACertPath)
		if err != nil {
			s.Log.Errf("", "CACertPath %s: %v", o.CACertPath, err)
		}
		for _, ent := range ents {
			if n := ent.Name(); !ent.IsDir() && (strings.HasSuffix(n, ".pem") || strings.HasSuffix(n, ".crt") || strings.HasSuffix(n, ".0")) {
				add(filepath.Join(o.CACertPath, n))
			}
		}
	}
	return pool
}

// tlsReportInterval is how often the daemon looks for a day whose TLS
// reports are due.
const tlsReportInterval = time.Hour

// WithTLSReports returns the daemon's queue loop with the daily TLS
// report run beside it: at start and every hour, when TLSReports is on
// (in the configuration of the moment), the reports of the days that have
// ended are queued. queue may be nil (no -q): the report loop alone then
// runs until ctx ends.
func (d *Delivery) WithTLSReports(queue func(ctx context.Context)) func(ctx context.Context) {
	return func(ctx context.Context) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			t := time.NewTicker(tlsReportInterval)
			defer t.Stop()
			for {
				if d.site.Load().Config.TLS.Reports {
					d.SendTLSReports(ctx)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
		if queue != nil {
			queue(ctx)
		}
		<-done
	}
}

// SendTLSReports queues the TLS reports of the days that have ended, by
// the current configuration.
func (d *Delivery) SendTLSReports(ctx context.Context) (int, error) {
	site := d.site.Load()
	if site.Acceptor == nil {
		return 0, fmt.Errorf("no queue")
	}
	cfg := site.Config
	from := cfg.Expand(cfg.TLS.ReportSender, nil)
	submit := func(from string, to []string, msg []byte) error {
		l, err := site.queueReport(from, to, msg)
		if err == nil {
			d.Runner.Background(l) // its first attempt now, as a background submission's
		}
		return err
	}
	r := &tlsrpt.Reporter{Store: site.TLSReportStore(), DNS: site.DNS(), Submitter: cfg.Macros["j"], From: from,
		Submit: submit, Now: site.now,
		Logf: func(format string, args ...any) { site.Log.Infof("", format, args...) }}
	n, err := r.Run(ctx)
	if err != nil {
		site.Log.Warnf("", "TLS reports: %v", err)
	}
	return n, err
}

// queueReport queues a report mail as a local submission, still locked
// for its first attempt.
func (s *Site) queueReport(from string, to []string, msg []byte) (*queue.Locked, error) {
	m, err := s.Acceptor.Begin(true)
	if err != nil {
		return nil, err
	}
	if _, err := m.Write(bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))); err != nil {
		m.Abort()
		return nil, err
	}
	env := &accept.Envelope{Sender: "<" + from + ">", Local: true, FromAddr: from}
	for _, r := range to {
		env.Recipients = append(env.Recipients, accept.Recipient{Addr: "<" + r + ">"})
	}
	l, err := m.CommitLocked(env)
	if err != nil {
		return nil, err
	}
	s.Log.Infof(l.ID(), "from=<%s>, size=%d, class=0, nrcpts=%d, relay=TLS report", from, m.Size(), len(to))
	return l, nil
}

// TLSSettings describe the outbound TLS options in force, for -bt's /tls.
func (s *Site) TLSSettings() []string {
	o := s.Config.TLS
	e := s.TLSPolicy()
	trust := "no DNS server is marked validating: DANE never applies"
	if o.TrustAD {
		trust = "the AD bit of the DNS servers is trusted (ResolverOptions=+TRUSTAD)"
	}
	m := "TLSPolicyMap unset"
	if o.PolicyMap != "" {
		n := 0
		if e.Table != nil {
			n = e.Table.Len()
		}
		m = fmt.Sprintf("TLSPolicyMap=%s (entries: %d)", o.PolicyMap, n)
	}
	return []string{
		fmt.Sprintf("TLSDefaultLevel=%s, DANE=%v, MTASTS=%v, TLSReports=%v", e.Default, o.DANE, o.MTASTS, o.Reports),
		m + "; " + trust,
	}
}
