package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// Run runs the queue once (sendmail -q): the due jobs that pass the filter,
// in SortOrder, each locked (jobs held by another process, or already in
// delivery here, are skipped), at most MaxRunnersPerQueue per class at a
// time, sharing the classes' bounds with everything else the runner
// delivers. Without Start it scans the queue directories first (a -q from
// cron). Cancelling ctx starts no further jobs and cancels those in
// progress; Run returns when they have ended.
func (r *Runner) Run(ctx context.Context, o RunOptions) (Stats, error) {
	dctx, cancel := r.bound(ctx)
	defer cancel()
	st, err := r.run(dctx, ctx.Done(), false, o)
	if err == nil {
		err = ctx.Err()
	}
	return st, err
}

// run is a queue run whose deliveries use ctx and which starts no further
// jobs once stop is closed (or Shutdown begins). It returns when its jobs
// are done, or, with detach, as soon as it stops starting jobs: those in
// progress then go on (Shutdown waits for them).
func (r *Runner) run(ctx context.Context, stop <-chan struct{}, detach bool, o RunOptions) (Stats, error) {
	idx := r.index()
	lostAtScan := 0
	if idx == nil {
		var lost []string
		var err error
		idx, lost, err = r.cfg.Store.LoadIndex()
		if err != nil {
			return Stats{}, err
		}
		lostAtScan = len(lost)
	}
	sched := r.cfg.Schedule
	if o.Force {
		sched.MinQueueAge = 0
	}
	jobs := r.plan(ctx, idx.Select(o.Filter, sched, r.now()), r.cfg.SortOrder)
	st := Stats{Jobs: len(jobs), Lost: lostAtScan}
	if o.Verbose != nil {
		// One at a time, in this goroutine: the transcript is read in order.
		r.active.Add(1)
		defer r.active.Done()
		for i, p := range jobs {
			if halted(stop, r.quit) {
				break
			}
			fmt.Fprintf(o.Verbose, "\nRunning %s (sequence %d of %d)\n", filepath.Join(p.Dir, p.ID), i+1, len(jobs))
			if l, ls := r.lock(p.Dir, p.ID); l != nil {
				st.add(r.deliverJob(ctx, l, false, o.Verbose, o.Quarantined))
			} else {
				st.add(ls)
			}
		}
		return st, nil
	}
	var (
		mu        sync.Mutex
		wg        sync.WaitGroup // the jobs submitted
		submitted sync.WaitGroup // the submitting goroutines
	)
	for c := range nClasses {
		submitted.Add(1)
		go func() {
			defer submitted.Done()
			// At most par jobs of this run and class at once: each
			// one's end makes room for the next.
			room := make(chan struct{}, r.par)
			for _, p := range jobs {
				if p.class != c {
					continue
				}
				select {
				case room <- struct{}{}:
				case <-stop:
				case <-r.quit:
				}
				if halted(stop, r.quit) {
					break
				}
				wg.Add(1)
				r.lanes.submit(c, &task{key: jobKey{p.Dir, p.ID}, ctx: ctx, quarantined: o.Quarantined, done: func(js Stats) {
					mu.Lock()
					st.add(js)
					mu.Unlock()
					<-room
					wg.Done()
				}})
			}
		}()
	}
	submitted.Wait()
	if !detach || !halted(stop, r.quit) {
		wg.Wait()
	}
	mu.Lock()
	defer mu.Unlock()
	return st, nil
}

// halted reports whether either channel is closed.
func halted(a, b <-chan struct{}) bool {
	select {
	case <-a:
		return true
	case <-b:
		return true
	default:
		return false
	}
}

// Serve runs the queue every interval (sendmail -q30m, also inside -bd)
// until ctx ends or Shutdown begins, rescanning the directories before
// each run (but the first, after Start) so that jobs queued by other
// processes are seen. It calls Start first when needed. When ctx ends it
// returns at once, without cancelling the deliveries in progress:
// Shutdown decides how long they may go on.
func (r *Runner) Serve(ctx context.Context, interval time.Duration) error {
	if r.index() == nil {
		if err := r.Start(); err != nil {
			return err
		}
	}
	r.active.Add(1)
	defer r.active.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.run(r.hard, ctx.Done(), true, RunOptions{}); err != nil && ctx.Err() == nil {
			r.log.Errf("", "queue run: %v", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.quit:
			return nil
		case <-t.C:
		}
		if err := r.reload(); err != nil {
			r.log.Errf("", "queue run: %v", err)
		}
	}
}
