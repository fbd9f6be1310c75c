package queue

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// idChars is the alphabet of queue IDs. The time characters index all 62
// symbols; the two sequence characters use only the first 60 (no y, z).
const idChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// seqSpace is how many IDs one process can make per second: two base-60
// digits.
const seqSpace = 60 * 60

// EncodeID builds a queue ID from a time (converted to UTC), a sequence
// number (taken mod 3600) and a process ID, exactly as sendmail 8 does:
// 2026-11-25 04:29:09 UTC, sequence 33*60+33, pid 5913 → "6AP4T9XX005913".
func EncodeID(t time.Time, seq int, pid int) string {
	t = t.UTC()
	seq %= seqSpace
	if seq < 0 {
		seq += seqSpace
	}
	year := (t.Year() - 1900) % 60
	if year < 0 {
		year += 60
	}
	var b [32]byte
	id := b[:0]
	id = append(id,
		idChars[year],
		idChars[int(t.Month())-1],
		idChars[t.Day()],
		idChars[t.Hour()],
		idChars[t.Minute()%62],
		idChars[t.Second()%62],
		idChars[seq/60],
		idChars[seq%60])
	p := strconv.Itoa(pid)
	for i := len(p); i < 6; i++ {
		id = append(id, '0')
	}
	id = append(id, p...)
	return string(id)
}

// IDGen hands out queue IDs for one process. It is safe for concurrent use.
//
// IDs are unique within the process: the time part never goes backwards
// (a clock stepped back keeps the last second) and when the 3600 sequence
// numbers of a second are used up, the next second is taken early rather
// than sleeping as sendmail does. Between processes the pid tells IDs apart;
// a later process that gets the same pid in the same second (a container
// restarted at once) is caught by the store, which creates every tf with
// O_EXCL and checks for an existing qf before it uses an ID.
type IDGen struct {
	pid int
	now func() time.Time

	mu     sync.Mutex
	sec    int64 // second of the time part of the last ID
	count  int   // IDs made in that second
	offset int   // random start of the sequence, fixed per process
}

// NewIDGen returns a generator for process pid; now is the clock (nil =
// time.Now).
func NewIDGen(pid int, now func() time.Time) *IDGen {
	if now == nil {
		now = time.Now
	}
	return &IDGen{pid: pid, now: now, offset: rand.IntN(seqSpace)}
}

// Next returns a new queue ID.
func (g *IDGen) Next() string {
	g.mu.Lock()
	s := g.now().Unix()
	switch {
	case s > g.sec:
		g.sec, g.count = s, 0
	case g.count >= seqSpace:
		g.sec, g.count = g.sec+1, 0
	}
	seq := g.count + g.offset
	g.count++
	sec := g.sec
	g.mu.Unlock()
	return EncodeID(time.Unix(sec, 0), seq, g.pid)
}
