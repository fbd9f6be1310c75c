package policy

import (
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/status"
)

// Limiter applies MaxDaemonChildren and ConnectionRateThrottle to one
// listener. The daemon asks it before serving each accepted connection.
// It holds only its own counters (one per listener, made by the daemon).
type Limiter struct {
	MaxChildren int // MaxDaemonChildren: simultaneous sessions, 0 = no limit
	RatePerSec  int // ConnectionRateThrottle: connections per second, 0 = no limit

	mu     sync.Mutex
	active int
	second int64 // the Unix second the rate counter belongs to
	count  int   // connections accepted during that second
}

// Admit decides about a connection arriving at now. When the server is
// full it returns the reply to send before closing ("421 4.3.2 Too many
// open connections"); otherwise it returns a release function to call
// when the session ends, and how long to wait before serving the
// connection: sendmail does not refuse connections over
// ConnectionRateThrottle, it slows them down, one second per excess
// batch.
func (l *Limiter) Admit(now time.Time) (release func(), delay time.Duration, err *status.Error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.MaxChildren > 0 && l.active >= l.MaxChildren {
		return nil, 0, status.New(421, "4.3.2", "Too many open connections")
	}
	if l.RatePerSec > 0 {
		sec := now.Unix()
		if sec != l.second {
			l.second, l.count = sec, 0
		}
		l.count++
		if over := l.count - l.RatePerSec; over > 0 {
			delay = time.Duration((over+l.RatePerSec-1)/l.RatePerSec) * time.Second
		}
	}
	l.active++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.active--
			l.mu.Unlock()
		})
	}, delay, nil
}

// SetLimits changes the bounds, as a SIGHUP does, keeping the counts: the
// sessions admitted before still count against the new MaxChildren.
func (l *Limiter) SetLimits(maxChildren, ratePerSec int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.MaxChildren, l.RatePerSec = maxChildren, ratePerSec
}

// Active returns the number of sessions admitted and not yet released.
func (l *Limiter) Active() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.active
}
