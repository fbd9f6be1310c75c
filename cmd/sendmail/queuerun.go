package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// newRunner builds the queue runner with the local delivery agents as its
// mailers; acc expands the recipients of the reports it queues, as it
// expands any accepted recipient. The esmtp mailer (the relay client) is
// not wired yet: remote recipients are deferred, never lost.
func (a *app) newRunner(cfg *conf.Config, st *queue.Store, acc *accept.Acceptor) (*runner.Runner, error) {
	agent, err := deliver.New(a.deliverOptions())
	if err != nil {
		return nil, err
	}
	lm := &localMailers{agent: agent}
	rt := newRouter(cfg, a.log)
	mailers := map[string]runner.Mailer{"local": lm, "*file*": lm, "prog": lm}
	rc := a.relayClient(cfg, rt)
	for _, m := range []string{route.ESMTP, route.SMTP, route.SMTP8, route.DSMTP, route.Relay} {
		mailers[m] = rc
	}
	order, ok := runner.ParseSortOrder(cfg.QueueSortOrder)
	if !ok {
		noteNotInterpreted(cfg, "option QueueSortOrder="+cfg.QueueSortOrder+" (priority used)")
	}
	return runner.New(runner.Config{
		Store:   st,
		Router:  router{rt: rt},
		Mailers: mailers,
		Schedule: queue.Schedule{
			MinQueueAge: cfg.MinQueueAge,
			Interval:    a.inv.QueueInterval,
			QueueWarn:   cfg.Timeout("queuewarn"),
			QueueReturn: cfg.Timeout("queuereturn"),
		},
		SortOrder:           order,
		MaxQueueChildren:    cfg.MaxQueueChildren,
		MaxRunnersPerQueue:  cfg.MaxRunnersPerQueue,
		Hostname:            cfg.Macros["j"],
		HostNames:           hostNames(cfg),
		Version:             "posthorn " + conf.Version,
		DoubleBounceAddress: cfg.DoubleBounceAddress,
		ExpandReport: func(ctx context.Context, addr string) ([]queue.Recipient, error) {
			return acc.Recipients([]accept.Recipient{{Addr: addr}})
		},
		NoBodyReturn: cfg.Privacy("nobodyreturn"),
		Logger:       a.log,
	})
}

// noteNotInterpreted adds what to the configuration's list of what
// posthorn reads but does not act on (logged by the daemon, shown by -d0).
func noteNotInterpreted(cfg *conf.Config, what string) {
	if !slices.Contains(cfg.NotInterpreted, what) {
		cfg.NotInterpreted = append(cfg.NotInterpreted, what)
	}
}

// queueFilter turns -qI/-qR/-qS into the queue's filter.
func (a *app) queueFilter() (queue.Filter, error) {
	var f queue.Filter
	for _, q := range a.inv.QueueFilters {
		spec := string(q.Kind) + q.Value
		if q.Negate {
			spec = "!" + spec
		}
		if err := f.Add(spec); err != nil {
			return f, err
		}
	}
	return f, nil
}

// shutdownGrace is how long deliveries in progress may go on after
// SIGTERM before they are cancelled (and roll back).
const shutdownGrace = 30 * time.Second

// runQueue is -q (once), -q<interval> (every interval, in the foreground)
// and -qf; and the child of a background submission (see adoptedJob).
func (a *app) runQueue() int {
	if code, ok := a.deliverAdopted(); ok {
		return code
	}
	if os.Getuid() != 0 && a.cfg.Privacy("restrictqrun") && !trusted(a.cfg, runUser()) {
		fmt.Fprintln(a.stderr, "You do not have permission to process the queue")
		return sysexits.NoPerm
	}
	st, code := a.openStore(storeRun)
	if st == nil {
		return code
	}
	defer st.Close()
	x, src := newExpander(a.cfg, a)
	if src != nil {
		defer src.Close()
	}
	r, err := a.newRunner(a.cfg, st, newAcceptor(a.cfg, st, queueExpander{x}, a.log))
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Config
	}
	filter, err := a.queueFilter()
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Usage
	}
	var verbose io.Writer
	if a.inv.Verbose {
		verbose = a.stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if a.inv.QueueInterval > 0 && !a.inv.QueueForeground {
		err := r.Serve(ctx, a.inv.QueueInterval)
		grace, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		r.Shutdown(grace)
		if err != nil && ctx.Err() == nil {
			fmt.Fprintln(a.stderr, err)
			return sysexits.OSErr
		}
		return sysexits.OK
	}
	if _, err := r.Run(ctx, runner.RunOptions{Filter: filter, Verbose: verbose, Quarantined: a.inv.QueueQuarantined}); err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.OSErr
	}
	r.Wait()
	return sysexits.OK
}

// runnerDelivery lets the SMTP backend hand accepted jobs to the runner.
type runnerDelivery struct {
	r *runner.Runner
}

func newRunnerDelivery(r *runner.Runner) *runnerDelivery { return &runnerDelivery{r: r} }

func (d *runnerDelivery) Deliver(l *queue.Locked, transcript io.Writer) {
	d.r.DeliverLocked(context.Background(), l, transcript)
}

func (d *runnerDelivery) DeliverAsync(l *queue.Locked) { d.r.Background(l) }

func (d *runnerDelivery) Wait() { d.r.Wait() }

func (d *runnerDelivery) Kick(dir, id string) { d.r.Kick(dir, id) }

func (d *runnerDelivery) ETRN(domain string) error { return d.r.ETRN(domain) }

// Shutdown stops the background deliveries, letting those in progress
// finish until ctx ends and rolling them back then.
func (d *runnerDelivery) Shutdown(ctx context.Context) { d.r.Shutdown(ctx) }

// adoptEnv marks the child a background submission starts for its job
// (deliverAfterSubmit): file descriptor 3 is the job's qf, open and still
// locked by the submission; the variable holds the job's queue directory
// and the one -qI limit its ID. The child takes the job over as it is,
// without looking for it in the queue.
const adoptEnv = "POSTHORN_ADOPT_JOB"

// deliverAdopted makes the first delivery attempt of the job handed over
// by a background submission; ok is false when this is not such a child.
func (a *app) deliverAdopted() (code int, ok bool) {
	dir := os.Getenv(adoptEnv)
	if dir == "" {
		return 0, false
	}
	os.Unsetenv(adoptEnv)
	qf := os.NewFile(3, "qf")
	if qf == nil {
		return sysexits.Software, true
	}
	f := a.inv.QueueFilters
	if len(f) != 1 || f[0].Kind != 'I' || f[0].Negate {
		qf.Close()
		fmt.Fprintln(a.stderr, "the job handed over needs one -qI<ID>")
		return sysexits.Usage, true
	}
	st, code := a.openStore(storeSubmit)
	if st == nil {
		qf.Close()
		return code, true
	}
	defer st.Close()
	l, err := st.Adopt(dir, f[0].Value, qf)
	if err != nil {
		// Whoever has it delivers it; else the next queue run.
		a.log.Errf(f[0].Value, "background delivery: %v", err)
		return sysexits.TempFail, true
	}
	x, src := newExpander(a.cfg, a)
	if src != nil {
		defer src.Close()
	}
	r, err := a.newRunner(a.cfg, st, newAcceptor(a.cfg, st, queueExpander{x}, a.log))
	if err != nil {
		l.Unlock()
		fmt.Fprintln(a.stderr, err)
		return sysexits.Config, true
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	r.DeliverLocked(ctx, l, nil)
	r.Wait()
	return sysexits.OK, true
}
