package deliver

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"
)

// The deliveries of one process to one mailbox are a group commit: while
// one goroutine (the leader) holds the mailbox's locks, appends and
// fsyncs, the others queue up; the next leader appends all of them under
// one dot-lock and fcntl lock and covers them with one fsync. A queued
// message is never acknowledged before the fsync that covers it, and each
// one is still all or nothing (appendAll). The locks other programs see
// are the same as for a single message, held a little longer.

// maxBatch bounds the messages appended under one lock, so that a mail
// reader waiting for the mailbox is not kept out for long.
const maxBatch = 32

// errLead tells a queued delivery that it leads the next batch.
var errLead = errors.New("deliver: lead the next batch")

// boxReq is one message for a mailbox.
type boxReq struct {
	ctx      context.Context
	write    func(io.Writer) error
	qid      string
	deadline time.Time
	done     chan error // the result, or errLead; buffered
	taken    bool       // in a batch (or leading): the batch decides
}

// boxQueue is the deliveries waiting for one mailbox.
type boxQueue struct {
	pending []*boxReq
	busy    bool // a leader is at work
}

// appendBatched appends req's message to the mailbox key (the mailbox
// path and its owner) with run, which appends a batch and returns a
// result per message. It returns req's result.
func (a *Agent) appendBatched(key string, req *boxReq, run func(batch []*boxReq) []error) error {
	req.done = make(chan error, 1)
	a.mu.Lock()
	q := a.queues[key]
	if q == nil {
		q = &boxQueue{}
		a.queues[key] = q
	}
	q.pending = append(q.pending, req)
	lead := !q.busy
	q.busy = true
	if lead {
		req.taken = true
	}
	a.mu.Unlock()
	if !lead {
		if err := a.waitTurn(q, req); err != errLead {
			return err
		}
	}
	// Lead: append batches until ours is done, then hand the queue on.
	for {
		a.mu.Lock()
		n := min(len(q.pending), maxBatch)
		batch := slices.Clone(q.pending[:n])
		q.pending = slices.Delete(q.pending, 0, n)
		for _, r := range batch {
			r.taken = true
		}
		a.mu.Unlock()
		for i, err := range run(batch) {
			batch[i].done <- err
		}
		select {
		case err := <-req.done:
			a.handOver(key, q)
			return err
		default:
		}
	}
}

// handOver makes the first waiting delivery the leader, or retires q.
func (a *Agent) handOver(key string, q *boxQueue) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(q.pending) == 0 {
		q.busy = false
		delete(a.queues, key)
		return
	}
	next := q.pending[0]
	next.taken = true
	next.done <- errLead
}

// waitTurn waits for req's result or its turn to lead. A delivery whose
// deadline passes (or whose context ends) while it waits leaves the queue
// with a lock timeout, unless a batch has taken it: then the batch's
// result is its result.
func (a *Agent) waitTurn(q *boxQueue, req *boxReq) error {
	t := time.NewTimer(time.Until(req.deadline))
	defer t.Stop()
	var why error
	select {
	case err := <-req.done:
		return err
	case <-t.C:
		why = errLockTimeout
	case <-req.ctx.Done():
		why = req.ctx.Err()
	}
	a.mu.Lock()
	if !req.taken {
		if i := slices.Index(q.pending, req); i >= 0 {
			q.pending = slices.Delete(q.pending, i, i+1)
		}
		a.mu.Unlock()
		return why
	}
	a.mu.Unlock()
	return <-req.done
}

// batchDeadline is the latest deadline of a batch: each message may wait
// for the mailbox's locks until its own.
func batchDeadline(batch []*boxReq) time.Time {
	d := batch[0].deadline
	for _, r := range batch[1:] {
		if r.deadline.After(d) {
			d = r.deadline
		}
	}
	return d
}
