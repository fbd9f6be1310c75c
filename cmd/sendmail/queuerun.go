package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

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
	if os.Getuid() != 0 && a.cfg.Privacy("restrictqrun") && !a.trusted() && !ownsQueue(a.cfg.QueueDirectory) {
		fmt.Fprintln(a.stderr, "You do not have permission to process the queue")
		return sysexits.NoPerm
	}
	st, code := a.openStore(storeRun)
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
	r := run.Runner
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
	site := a.site(st)
	defer site.Close()
	run, err := a.delivery(site)
	if err != nil {
		l.Unlock()
		fmt.Fprintln(a.stderr, err)
		return sysexits.Config, true
	}
	defer run.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	run.DeliverNow(ctx, l, nil)
	run.Runner.Wait()
	return sysexits.OK, true
}
