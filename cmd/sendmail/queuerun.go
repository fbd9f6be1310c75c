package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// newRunner builds the queue runner of one configuration with the local
// delivery agents and the relay client as its mailers; acc expands the
// recipients of the reports it queues, as it expands any accepted
// recipient.
func (a *app) newRunner(cfg *conf.Config, st *queue.Store, acc *accept.Acceptor) (*runner.Runner, error) {
	agent, err := deliver.New(a.deliverOptions(cfg))
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

// runQueue is -q (once), -q<interval> (every interval, in the foreground)
// and -qf.
func (a *app) runQueue() int {
	if os.Getuid() != 0 && a.cfg.Privacy("restrictqrun") && !trusted(a.cfg, runUser()) {
		fmt.Fprintln(a.stderr, "You do not have permission to process the queue")
		return sysexits.NoPerm
	}
	st, code := a.openStore(false)
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
		if err := r.Serve(ctx, a.inv.QueueInterval); err != nil && ctx.Err() == nil {
			fmt.Fprintln(a.stderr, err)
			return sysexits.OSErr
		}
		r.Wait()
		return sysexits.OK
	}
	if _, err := r.Run(ctx, runner.RunOptions{Filter: filter, Verbose: verbose}); err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.OSErr
	}
	r.Wait()
	return sysexits.OK
}

// runnerDelivery lets the SMTP backend hand accepted jobs to the runner:
// the current one, which a daemon's SIGHUP replaces (replace) so that
// delivery follows the new configuration as the sessions do.
type runnerDelivery struct {
	mu    sync.Mutex
	r     *runner.Runner
	old   []*runner.Runner // replaced, maybe still delivering
	async sync.WaitGroup
}

func newRunnerDelivery(r *runner.Runner) *runnerDelivery { return &runnerDelivery{r: r} }

func (d *runnerDelivery) current() *runner.Runner {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.r
}

// replace makes r the runner of every delivery from now on; the old one
// finishes what it has started.
func (d *runnerDelivery) replace(r *runner.Runner) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.old = append(d.old, d.r)
	d.r = r
}

func (d *runnerDelivery) Deliver(l *queue.Locked, transcript io.Writer) {
	d.current().DeliverLocked(context.Background(), l, transcript)
}

func (d *runnerDelivery) DeliverAsync(l *queue.Locked) {
	r := d.current()
	d.async.Add(1)
	go func() {
		defer d.async.Done()
		r.DeliverLocked(context.Background(), l, nil)
	}()
}

func (d *runnerDelivery) Wait() {
	d.async.Wait()
	d.mu.Lock()
	all := append([]*runner.Runner{d.r}, d.old...)
	d.mu.Unlock()
	for _, r := range all {
		r.Wait()
	}
}

func (d *runnerDelivery) Kick(dir, id string) { d.current().Kick(context.Background(), dir, id) }

func (d *runnerDelivery) ETRN(ctx context.Context, domain string) {
	var f queue.Filter
	if f.Add("R@"+domain) == nil {
		d.current().Run(ctx, runner.RunOptions{Filter: f, Force: true})
	}
}
