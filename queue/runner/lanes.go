package runner

import (
	"context"
	"errors"

	"github.com/posthorn/posthorn/queue"
)

// class is a mailer class: each has its own bound on the jobs in delivery,
// so that local delivery never waits behind slow remote hosts.
type class int

const (
	classLocal  class = iota // local, *file*, prog, *include*
	classRemote              // every other mailer (SMTP)
	nClasses
)

func (c class) String() string {
	if c == classLocal {
		return "local"
	}
	return "remote"
}

// localMailers are the mailers of the local class by default.
var localMailers = map[string]bool{"local": true, "*file*": true, "prog": true, "*include*": true}

// jobKey names a job across queue directories.
type jobKey struct{ dir, id string }

// task is one job waiting for, or in, delivery by a lane.
type task struct {
	key   jobKey
	l     *queue.Locked // handed over locked; nil: locked when it starts
	first bool          // the attempt right after acceptance
	// quarantined marks a task of a -qQ run: only quarantined jobs are
	// delivered, the others left alone.
	quarantined bool
	ctx         context.Context
	// done is called exactly once with what the attempt did (Skipped when
	// the task was dropped or the job was held elsewhere).
	done func(Stats)
}

// lane is the work of one class: at most max tasks run at once, in
// goroutines started on demand; the rest wait in order.
type lane struct {
	max     int
	busy    int
	waiting []*task
}

// lanes dispatches tasks to the lanes. A waiting task never holds its
// job's lock: a job handed over locked that cannot start at once is
// unlocked and locked again when its turn comes (a queue run from
// another process may deliver it meanwhile, which is just as good). A job
// is in at most one task at a time. The number of waiting tasks is
// bounded; a task over the bound is dropped (its job stays queued for the
// next queue run).
type lanes struct {
	r          *Runner
	lane       [nClasses]lane
	keys       map[jobKey]bool // waiting or running
	nwait      int
	maxWaiting int
	closed     bool
}

// errBusy says a task was not taken: the job is already being delivered
// (or waits for it), too many tasks wait, or the runner is stopping.
var errBusy = errors.New("runner: delivery not started")

// submit hands t to the lane of class c: it starts at once when the lane
// has room, else waits. On errBusy t has been released (its lock dropped,
// done called with Skipped).
func (ls *lanes) submit(c class, t *task) error {
	r := ls.r
	r.mu.Lock()
	switch {
	case ls.closed, ls.keys[t.key]:
		r.mu.Unlock()
		ls.drop(t)
		return errBusy
	case ls.lane[c].busy < ls.lane[c].max:
		ls.lane[c].busy++
		ls.keys[t.key] = true
		r.active.Add(1)
		r.mu.Unlock()
		go ls.work(c, t)
		return nil
	case ls.nwait >= ls.maxWaiting:
		r.mu.Unlock()
		ls.drop(t)
		return errBusy
	}
	ls.keys[t.key] = true
	ls.nwait++
	// Unlocked before it can be seen waiting: a lane that frees up at
	// once would otherwise find the job still locked, skip it, and leave
	// it for the next queue run. (Unlock is a close.)
	if t.l != nil {
		t.l.Unlock()
		t.l = nil
	}
	ls.lane[c].waiting = append(ls.lane[c].waiting, t)
	r.mu.Unlock()
	return nil
}

// drop releases a task that will not run.
func (ls *lanes) drop(t *task) {
	if t.l != nil {
		t.l.Unlock()
		t.l = nil
	}
	t.done(Stats{Skipped: 1})
}

// work runs t and then the tasks waiting in its lane, until none is left.
func (ls *lanes) work(c class, t *task) {
	r := ls.r
	defer r.active.Done()
	for t != nil {
		st := r.runTask(t)
		// The job is free again before anyone learns that it is done: a
		// run waiting for it may hand it over again at once.
		r.mu.Lock()
		delete(ls.keys, t.key)
		next := (*task)(nil)
		if w := ls.lane[c].waiting; len(w) > 0 && !ls.closed {
			next, w[0] = w[0], nil
			ls.lane[c].waiting = w[1:]
			ls.nwait--
		} else {
			ls.lane[c].busy--
		}
		r.mu.Unlock()
		t.done(st)
		t = next
	}
}

// close refuses new tasks and drops the waiting ones; running tasks end
// on their own.
func (ls *lanes) close() {
	r := ls.r
	r.mu.Lock()
	ls.closed = true
	var dropped []*task
	for c := range ls.lane {
		dropped = append(dropped, ls.lane[c].waiting...)
		ls.lane[c].waiting = nil
	}
	for _, t := range dropped {
		delete(ls.keys, t.key)
	}
	ls.nwait = 0
	r.mu.Unlock()
	for _, t := range dropped {
		ls.drop(t)
	}
}

// runTask locks the task's job (unless it came locked) and delivers it.
func (r *Runner) runTask(t *task) Stats {
	l := t.l
	t.l = nil
	if t.ctx.Err() != nil {
		if l != nil {
			l.Unlock()
		}
		return Stats{Skipped: 1}
	}
	if l == nil {
		var st Stats
		if l, st = r.lock(t.key.dir, t.key.id); l == nil {
			return st
		}
	}
	return r.deliverJob(t.ctx, l, t.first, nil, t.quarantined)
}

// lock try-locks a job for delivery; nil with the reason counted when it
// cannot be had.
func (r *Runner) lock(dir, id string) (*queue.Locked, Stats) {
	l, err := r.cfg.Store.Lock(dir, id)
	switch {
	case err == nil:
		return l, Stats{}
	case errors.Is(err, queue.ErrLocked):
		return nil, Stats{Skipped: 1}
	case errors.Is(err, queue.ErrNotFound):
		r.forget(dir, id)
		return nil, Stats{Skipped: 1}
	case errors.Is(err, queue.ErrCorrupt):
		r.forget(dir, id)
		return nil, Stats{Lost: 1}
	}
	r.log.Errf(id, "queue run: %v", err)
	return nil, Stats{Skipped: 1}
}

// forget drops a job from the index.
func (r *Runner) forget(dir, id string) {
	if idx := r.index(); idx != nil {
		idx.Delete(dir, id)
	}
}
