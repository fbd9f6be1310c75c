package relay

import (
	"context"
	"io"
	"sync"
	"time"
)

// cacheKey names the connections one delivery may reuse: the same host
// (as sendmail's connection cache, by name), port and EHLO rule.
type cacheKey struct {
	name       string
	port       int
	alwaysEHLO bool
}

// connCache holds idle connections, least recently used first (sendmail's
// ConnectionCacheSize and ConnectionCacheTimeout).
type connCache struct {
	mu     sync.Mutex
	size   int
	idle   time.Duration
	conns  []*conn
	closed bool
}

// take removes and returns the most recently used idle connection for k
// that has not expired, or nil.
func (cc *connCache) take(k cacheKey, now time.Time) (*conn, []*conn) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	old := cc.expiredLocked(now)
	for i := len(cc.conns) - 1; i >= 0; i-- {
		if sc := cc.conns[i]; sc.key == k {
			cc.conns = append(cc.conns[:i], cc.conns[i+1:]...)
			return sc, old
		}
	}
	return nil, old
}

// put adds an idle connection and returns those that no longer fit (the
// oldest) or have expired, for the caller to close.
func (cc *connCache) put(sc *conn, now time.Time) []*conn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed || cc.size == 0 {
		return []*conn{sc}
	}
	out := cc.expiredLocked(now)
	sc.lastUse = now
	cc.conns = append(cc.conns, sc)
	if n := len(cc.conns) - cc.size; n > 0 {
		out = append(out, cc.conns[:n]...)
		cc.conns = append([]*conn(nil), cc.conns[n:]...)
	}
	return out
}

func (cc *connCache) expired(now time.Time) []*conn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.expiredLocked(now)
}

func (cc *connCache) expiredLocked(now time.Time) []*conn {
	var out []*conn
	kept := cc.conns[:0]
	for _, sc := range cc.conns {
		if now.Sub(sc.lastUse) >= cc.idle {
			out = append(out, sc)
		} else {
			kept = append(kept, sc)
		}
	}
	cc.conns = kept
	return out
}

// takeHost removes and returns the idle connections to host (a target
// key) under any port or EHLO rule.
func (cc *connCache) takeHost(host string) []*conn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	var out []*conn
	kept := cc.conns[:0]
	for _, sc := range cc.conns {
		if (target{name: sc.key.name}).key() == host {
			out = append(out, sc)
		} else {
			kept = append(kept, sc)
		}
	}
	cc.conns = kept
	return out
}

// drain empties the cache for good.
func (cc *connCache) drain() []*conn {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.closed = true
	out := cc.conns
	cc.conns = nil
	return out
}

// takeIdle returns a cached connection for k, closing expired ones.
func (c *Client) takeIdle(k cacheKey) *conn {
	sc, old := c.cache.take(k, c.now())
	for _, o := range old {
		o.quit(c.to.Quit)
	}
	return sc
}

// putIdle keeps a healthy connection after a delivery. One pushed out by
// it is closed with sendmail's "Closing connection to" line on the -v
// output of the delivery that pushed it.
func (c *Client) putIdle(sc *conn, v io.Writer, who string) {
	sc.release()
	sc.lastV = v
	for _, o := range c.cache.put(sc, c.now()) {
		if o != sc {
			io.WriteString(v, who+"... Closing connection to "+o.name+"\n")
		}
		o.v = v
		o.quit(c.to.Quit)
	}
}

// destSlots bounds concurrent deliveries per destination.
type destSlots struct {
	mu    sync.Mutex
	limit int
	m     map[string]*destSlot
}

type destSlot struct {
	ch   chan struct{}
	refs int
}

// acquire waits for a slot for key; release gives it back.
func (ds *destSlots) acquire(ctx context.Context, key string) (release func(), err error) {
	ds.mu.Lock()
	s := ds.m[key]
	if s == nil {
		s = &destSlot{ch: make(chan struct{}, ds.limit)}
		ds.m[key] = s
	}
	s.refs++
	ds.mu.Unlock()
	drop := func() {
		ds.mu.Lock()
		if s.refs--; s.refs == 0 {
			delete(ds.m, key)
		}
		ds.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; drop() }, nil
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
}
