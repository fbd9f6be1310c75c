package relay

import (
	"context"
	"errors"
	"io/fs"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/status"
)

// SingleThreadDelivery (Config.HostLocks), as sendmail's mci_lock_host:
// before a connection to a host is opened, the host is locked; the lock
// goes with the connection into the cache and is dropped when the
// connection closes, or, when none was made, once the host's status has
// been recorded (sendmail's mci_unlock_host stores, then unlocks).
//
// sendmail runs one delivery at a time per process, so only other
// processes compete for a host; posthorn's runner delivers several jobs
// at once, and turns them into a queue per host instead: the job that
// finds the host busy in this process waits for its turn and then takes
// the connection the previous one left idle, as sendmail's next job in
// the same queue run would. A host held by another process is skipped at
// once (lockedFailure).

// hostHold is one delivery's hold on a host.
type hostHold struct {
	turn   func() // lets the next delivery of this client at the host
	unlock func() // the host's lock; passes to a connection that goes idle
}

// release lets the host go: the lock (unless an idle connection took
// it), then the turn. A nil hold (SingleThreadDelivery off) is a no-op.
func (h *hostHold) release() {
	if h == nil {
		return
	}
	if h.unlock != nil {
		h.unlock()
		h.unlock = nil
	}
	if h.turn != nil {
		h.turn()
		h.turn = nil
	}
}

// take hands the lock to an idle connection, which drops it when it is
// closed.
func (h *hostHold) take() func() {
	if h == nil {
		return nil
	}
	u := h.unlock
	h.unlock = nil
	return u
}

// awaitTurn waits for this client's turn at host t; nil when
// SingleThreadDelivery is off.
func (dl *delivery) awaitTurn(ctx context.Context, t target) (*hostHold, *failure) {
	if dl.c.cfg.HostLocks == nil {
		return nil, nil
	}
	turn, err := dl.c.turns.acquire(ctx, t.key())
	if err != nil {
		return nil, interrupted(ctx, t.name, t.name)
	}
	return &hostHold{turn: turn}, nil
}

// lock takes the host's lock for a new connection, unless h already has
// it (from the idle connection just closed).
func (dl *delivery) lock(h *hostHold, t target) *failure {
	if h == nil || h.unlock != nil {
		return nil
	}
	// An idle connection to the host that this delivery cannot reuse
	// (another port or EHLO rule) holds the lock for this process: close
	// it, rather than find the host locked and defer. The turn is ours,
	// so no delivery of this client is using the host.
	for _, sc := range dl.c.cache.takeHost(t.key()) {
		sc.quit(dl.c.to.Quit)
	}
	unlock, err := dl.c.cfg.HostLocks.Lock(t.key())
	switch {
	case errors.Is(err, hoststat.ErrLocked):
		return lockedFailure(t.name)
	case err != nil:
		// sendmail's syserr, after which it connects without the lock.
		text := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			text = pe.Path + ": " + upperFirst(pe.Err.Error())
		}
		dl.c.log.Errf(dl.qid(), "SYSERR(root): mci_lock_host: cannot create host lock file %s", text)
		return nil
	}
	h.unlock = unlock
	return nil
}

// lockedFailure is a host another process holds: sendmail's
// mci_setstat(mci, EX_TEMPFAIL, "4.4.5", NULL) with goodmxfound set, so
// the next MX is tried, and after the last the recipients are deferred
// with giveresponse's text for EX_TEMPFAIL without errno, "Deferred"
// (logged stat=Deferred, dsn=4.4.5, relay= the host without address).
// Nothing is recorded: the holder records the host's real outcome.
func lockedFailure(name string) *failure {
	return &failure{st: status.New(451, "4.4.5", "Deferred"), relay: name, remote: name, exit: exitTempFail}
}
