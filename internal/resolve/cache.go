package resolve

import (
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxTTL caps how long an answer is kept, as sendmail caps its host
// signatures (SM_DEFAULT_TTL, one hour), so a changed MX is seen within the
// hour even behind a resolver that hands out week-long TTLs.
const maxTTL = time.Hour

// defaultCacheSize bounds the cache when Config.CacheSize is 0.
const defaultCacheSize = 4096

// answer is the outcome of one (name, type) question after CNAMEs: the
// records of that type at the end of the chain, or none with NXDOMAIN or
// NODATA.
type answer struct {
	nxdomain bool
	rrs      []dns.RR // of the asked type; owned by the cache, never modified
	ttl      time.Duration
	// secure: authenticated by DNSSEC, as a server marked validating said
	// with the AD bit (the whole CNAME chain).
	secure bool
}

type cacheKey struct {
	name  string // lower case, no trailing dot
	qtype uint16
}

type cacheEntry struct {
	a       answer
	expires time.Time
}

// cache keeps answers for their TTL. Temporary failures are not kept: the
// next delivery attempt asks again.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[cacheKey]cacheEntry
}

func newCache(size int) *cache {
	if size <= 0 {
		size = defaultCacheSize
	}
	return &cache{max: size, entries: make(map[cacheKey]cacheEntry)}
}

func (c *cache) get(k cacheKey, now time.Time) (answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return answer{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, k)
		return answer{}, false
	}
	return e.a, true
}

func (c *cache) put(k cacheKey, a answer, now time.Time) {
	if a.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		for key, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, key)
			}
		}
		// Still full: drop arbitrary entries (map order) rather than keep
		// an LRU list; a miss only costs one question.
		for key := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, key)
		}
	}
	c.entries[k] = cacheEntry{a: a, expires: now.Add(min(a.ttl, maxTTL))}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
