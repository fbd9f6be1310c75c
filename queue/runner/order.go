package runner

import (
	"context"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/posthorn/posthorn/queue"
)

// SortOrder is sendmail's QueueSortOrder: the order in which a queue run
// starts its jobs.
type SortOrder int

const (
	// ByPriority (the default): lowest priority value first, then the
	// oldest, then by queue ID.
	ByPriority SortOrder = iota
	// ByHost groups the jobs to one next hop, so that the relay client's
	// cached connection serves them one after the other: jobs without a
	// remote recipient first, then by the host of the first remote
	// recipient compared from its end (sendmail reverses the name, so
	// that mx1.example.com and mx2.example.com sort together), then by
	// priority.
	ByHost
	// ByTime: oldest first (the T line), then by priority.
	ByTime
	// ByFilename: by queue ID, which is the qf's name.
	ByFilename
	// ByRandom: shuffled, so that one bad job cannot keep the same place.
	ByRandom
)

// ParseSortOrder reads a QueueSortOrder value as sendmail does, by its
// first letter (priority, host, time, filename, random). ok is false for
// the orders sendmail has and posthorn does not (modification: the qf's
// mtime is not in the index; none: the index has no directory order) and
// for anything else; the order is then ByPriority.
func ParseSortOrder(s string) (o SortOrder, ok bool) {
	if s == "" {
		return ByPriority, true
	}
	switch s[0] | 0x20 {
	case 'p':
		return ByPriority, true
	case 'h':
		return ByHost, true
	case 't':
		return ByTime, true
	case 'f':
		return ByFilename, true
	case 'r':
		return ByRandom, true
	}
	return ByPriority, false
}

// planned is a job of a run with what routing its recipients told.
type planned struct {
	queue.Entry
	class class
	host  string // next hop of the first remote recipient ("" if none)
}

// plan routes the recipients of each entry, as the delivery will, to
// learn its class (remote when any recipient goes to a remote mailer: its
// local recipients are delivered first, then it waits for remote room)
// and its host, and orders the entries as o says. Entries come in
// priority order (Index.Select).
func (r *Runner) plan(ctx context.Context, es []queue.Entry, o SortOrder) []planned {
	ps := make([]planned, len(es))
	for i := range es {
		j := &queue.Job{ID: es[i].ID, Sender: es[i].Sender, Recipients: make([]queue.Recipient, len(es[i].Recipients))}
		for k, a := range es[i].Recipients {
			j.Recipients[k].Addr = a
		}
		ps[i].Entry = es[i]
		ps[i].class, ps[i].host = r.jobClass(ctx, j)
	}
	switch o {
	case ByHost:
		keys := make([]string, len(ps))
		for i := range ps {
			keys[i] = reverse(strings.ToLower(ps[i].host))
		}
		idx := make([]int, len(ps))
		for i := range idx {
			idx[i] = i
		}
		// Stable: within one host the priority order stays.
		sort.SliceStable(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })
		out := make([]planned, len(ps))
		for k, i := range idx {
			out[k] = ps[i]
		}
		ps = out
	case ByTime:
		sort.SliceStable(ps, func(a, b int) bool { return ps[a].Created.Before(ps[b].Created) })
	case ByFilename:
		sort.Slice(ps, func(a, b int) bool { return ps[a].ID < ps[b].ID })
	case ByRandom:
		rand.Shuffle(len(ps), func(a, b int) { ps[a], ps[b] = ps[b], ps[a] })
	}
	return ps
}

// jobClass routes the recipients of j: remote, with the host of the first
// remote recipient, when any goes to a remote mailer; else local.
func (r *Runner) jobClass(ctx context.Context, j *queue.Job) (class, string) {
	for i := range j.Recipients {
		route, err := r.cfg.Router.Route(ctx, j, &j.Recipients[i])
		if err == nil && r.classOf(route.Mailer) == classRemote {
			return classRemote, route.Host
		}
	}
	return classLocal, ""
}

// classOf is the class of a mailer.
func (r *Runner) classOf(mailer string) class {
	if r.local[mailer] {
		return classLocal
	}
	return classRemote
}

// reverse returns s with its bytes in reverse order (sendmail's strrev).
func reverse(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}
