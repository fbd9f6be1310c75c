package runner

import (
	"strings"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// maxPendingNodes bounds the ETRN runs asked for and not yet started.
const maxPendingNodes = 64

// nodeRuns are the ETRN runs: at most one per node at a time, at most max
// at once, the others waiting in order of arrival.
type nodeRuns struct {
	max     int
	running map[string]bool
	pending map[string]bool
	order   []string // pending nodes, oldest first
	closed  bool
}

// ETRN asks for a forced queue run of the jobs with a recipient at node
// (sendmail's ETRN node: -qR@node, MinQueueAge ignored) and returns at
// once. A run for a node that is already running or waiting is joined, as
// sendmail answers every ETRN without starting a second run. At most
// MaxNodeRuns run at once; up to 64 more nodes wait for their turn, and
// beyond that the request is refused with 458 4.3.0, RFC 1985's "Unable to
// queue messages for node". Each run rescans the queue once (jobs queued
// by other processes count) and delivers through the classes' bounds like
// any run; a job already in delivery is not started twice.
func (r *Runner) ETRN(node string) error {
	key := strings.ToLower(strings.TrimPrefix(node, "@"))
	r.mu.Lock()
	n := &r.nodes
	switch {
	case n.closed:
		r.mu.Unlock()
		return status.New(458, "4.3.0", "Unable to queue messages for node %s", node)
	case n.running[key], n.pending[key]:
		r.mu.Unlock()
		return nil
	case len(n.running) < n.max:
		n.running[key] = true
		r.active.Add(1)
		r.mu.Unlock()
		go r.nodeRun(key)
		return nil
	case len(n.order) >= maxPendingNodes:
		r.mu.Unlock()
		r.log.Noticef("", "ETRN %s: %d queue runs waiting, refused", node, len(n.order))
		return status.New(458, "4.3.0", "Unable to queue messages for node %s", node)
	}
	n.pending[key] = true
	n.order = append(n.order, key)
	r.mu.Unlock()
	return nil
}

// nodeRun runs the queue for node and then for the nodes waiting, until
// none is left.
func (r *Runner) nodeRun(node string) {
	defer r.active.Done()
	for node != "" {
		if err := r.reload(); err != nil {
			r.log.Errf("", "queue run: %v", err)
		}
		var f queue.Filter
		if f.Add("R@"+node) == nil {
			if _, err := r.run(r.hard, nil, true, RunOptions{Filter: f, Force: true}); err != nil {
				r.log.Errf("", "queue run for %s: %v", node, err)
			}
		}
		r.mu.Lock()
		n := &r.nodes
		delete(n.running, node)
		node = ""
		if len(n.order) > 0 && !n.closed {
			node = n.order[0]
			n.order = n.order[1:]
			delete(n.pending, node)
			n.running[node] = true
		}
		r.mu.Unlock()
	}
}

// close drops the waiting runs; the running ones stop at Shutdown's quit.
func (n *nodeRuns) close(r *Runner) {
	r.mu.Lock()
	n.closed = true
	n.order = nil
	clear(n.pending)
	r.mu.Unlock()
}
