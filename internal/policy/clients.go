package policy

import (
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/status"
)

// Per-client connection limits: sendmail's FEATURE(ratecontrol) and
// FEATURE(conncontrol), read from the access file:
//
//	ClientRate:10.1.2.3   2     at most 2 connections per ConnectionRateWindowSize
//	ClientRate:10.1       10    the same for a network (most specific key first)
//	ClientRate:           20    everyone else
//	ClientRate:127.0.0.1  0     no limit
//	ClientConn:10.1.2.3   3     at most 3 sessions open at once
//
// Keys are looked up as Connect: keys (10.1.2.3, 10.1.2, 10.1, 10, then
// the empty key; "IPv6:addr" for IPv6). A client over a limit is answered
// as sendmail's features answer it, and the connection is closed
// (conncontrol/ratecontrol with "terminate"):
//
//	421 4.3.2 Connection rate limit exceeded.
//	421 4.3.2 Too many open connections.

// ErrClientRate and ErrClientConn are the replies to a client over its
// ClientRate: or ClientConn: limit.
var (
	ErrClientRate = status.New(421, "4.3.2", "Connection rate limit exceeded.")
	ErrClientConn = status.New(421, "4.3.2", "Too many open connections.")
)

// ClientLimit returns the limit the access file sets for ip under tag
// ("ClientRate" or "ClientConn"); 0 when there is none or it is 0 (no
// limit).
func (a *Access) ClientLimit(tag string, ip netip.Addr) int {
	if a == nil || !ip.IsValid() {
		return 0
	}
	t := strings.ToLower(tag) + ":"
	for _, k := range append(ipKeys(ip), "") {
		if d, ok := a.get(t + k); ok {
			n, err := strconv.Atoi(strings.TrimSpace(d.Value))
			if err != nil || n < 0 {
				return 0
			}
			return n
		}
	}
	return 0
}

// ipKeys are the access keys of an address, most specific first.
func ipKeys(ip netip.Addr) []string {
	ip = ip.Unmap()
	if !ip.Is4() {
		return []string{"ipv6:" + ip.String()}
	}
	parts := strings.Split(ip.String(), ".")
	var keys []string
	for n := 4; n > 0; n-- {
		keys = append(keys, strings.Join(parts[:n], "."))
	}
	return keys
}

// rateSlots is how finely the window is counted: a connection leaves the
// count between (slots-1)/slots and one window after it came.
const rateSlots = 16

// ClientCounter counts, for each client address, its open sessions and
// its connections in the last Window: sendmail's {client_connections}
// and {client_rate}. One counter serves every listener of a daemon and
// outlives a SIGHUP. Memory is bounded by the clients seen in the last
// window: quiet ones are forgotten.
type ClientCounter struct {
	Window time.Duration // ConnectionRateWindowSize; 0 means 60s

	mu      sync.Mutex
	clients map[netip.Addr]*clientCount
	swept   time.Time
}

type clientCount struct {
	open  int
	slot  [rateSlots]int64 // the slot number each count belongs to
	count [rateSlots]int
}

func (c *ClientCounter) window() time.Duration {
	if c.Window > 0 {
		return c.Window
	}
	return time.Minute
}

// Arrive records a connection from ip at now. It returns the client's
// open sessions and its connections within the window, both counting this
// one, and the function to call when the session ends.
func (c *ClientCounter) Arrive(ip netip.Addr, now time.Time) (open, rate int, leave func()) {
	ip = ip.Unmap()
	width := c.window() / rateSlots
	slot := now.UnixNano() / int64(max(width, 1))
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.clients == nil {
		c.clients = map[netip.Addr]*clientCount{}
	}
	if now.Sub(c.swept) > c.window() {
		c.sweep(slot)
		c.swept = now
	}
	cc := c.clients[ip]
	if cc == nil {
		cc = &clientCount{}
		c.clients[ip] = cc
	}
	i := slot % rateSlots
	if cc.slot[i] != slot {
		cc.slot[i], cc.count[i] = slot, 0
	}
	cc.count[i]++
	cc.open++
	for k := range cc.slot {
		if slot-cc.slot[k] < rateSlots {
			rate += cc.count[k]
		}
	}
	var once sync.Once
	return cc.open, rate, func() {
		once.Do(func() {
			c.mu.Lock()
			cc.open--
			c.mu.Unlock()
		})
	}
}

// sweep forgets clients with no open session and no connection in the
// window.
func (c *ClientCounter) sweep(slot int64) {
	for ip, cc := range c.clients {
		if cc.open > 0 {
			continue
		}
		recent := false
		for _, s := range cc.slot {
			if slot-s < rateSlots {
				recent = true
			}
		}
		if !recent {
			delete(c.clients, ip)
		}
	}
}

// SetWindow changes the window, as a SIGHUP does.
func (c *ClientCounter) SetWindow(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.Window = d
}

// Clients is the number of addresses the counter remembers.
func (c *ClientCounter) Clients() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.clients)
}

// CheckClient applies the access file's ClientConn: and ClientRate:
// limits to a client with open sessions and rate connections in the
// window (from ClientCounter.Arrive); nil when it may be served.
func (a *Access) CheckClient(ip netip.Addr, open, rate int) *status.Error {
	if n := a.ClientLimit("ClientConn", ip); n > 0 && open > n {
		return ErrClientConn
	}
	if n := a.ClientLimit("ClientRate", ip); n > 0 && rate > n {
		return ErrClientRate
	}
	return nil
}
