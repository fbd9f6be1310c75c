package sts

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/resolve"
)

// FailureDelay is how long a process waits before fetching a policy
// again after a failed fetch.
const FailureDelay = 5 * time.Minute

// DNS answers the TXT question; *resolve.Resolver satisfies it.
type DNS interface {
	TXT(ctx context.Context, name string) (resolve.TXTResult, error)
}

// Client finds the policy that applies to a domain (see Cache in the
// package comment). It is safe for concurrent use.
type Client struct {
	DNS     DNS
	Fetcher *Fetcher
	Cache   *Cache
	Now     func() time.Time // nil: time.Now
	// Logf, when set, is told about fetches and their failures.
	Logf func(format string, args ...any)

	mu     sync.Mutex
	failed map[string]failure // domain: last failed fetch
	locks  map[string]*sync.Mutex
}

type failure struct {
	at  time.Time
	err error
	id  string
}

// Result is the policy that applies to a domain, and how it was found.
type Result struct {
	Policy *Policy // nil: none (mode none is a policy)
	ID     string  // the id it was fetched under
	// Source is "cache" or "fetched" when Policy is set.
	Source  string
	Expires time.Time
	// Err is why a published policy is not in force or not fresh: an
	// invalid TXT record, a failed fetch (a *FetchError). With a cached
	// policy still in force it is only for the report.
	Err error
}

// TLSRPTResult is the RFC 8460 result type of Err ("" when none).
func (r Result) TLSRPTResult() string {
	var fe *FetchError
	switch {
	case r.Err == nil:
		return ""
	case errors.As(r.Err, &fe):
		return fe.Result
	}
	return "sts-policy-invalid"
}

func (c *Client) now() time.Time {
	if c.Now == nil {
		return time.Now()
	}
	return c.Now()
}

func (c *Client) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

// lock serialises the work for one domain, so that concurrent deliveries
// fetch once.
func (c *Client) lock(domain string) func() {
	c.mu.Lock()
	if c.locks == nil {
		c.locks = map[string]*sync.Mutex{}
	}
	l := c.locks[domain]
	if l == nil {
		l = &sync.Mutex{}
		c.locks[domain] = l
	}
	c.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Lookup returns the policy in force for domain.
func (c *Client) Lookup(ctx context.Context, domain string) Result {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	defer c.lock(domain)()
	now := c.now()

	var cached Result
	if c.Cache != nil {
		e, p, ok, err := c.Cache.Load(domain)
		if err != nil {
			c.logf("%v", err)
		}
		if ok && now.Before(e.Expires(p)) {
			cached = Result{Policy: p, ID: e.ID, Source: "cache", Expires: e.Expires(p)}
		} else if ok {
			c.Cache.Remove(domain)
		}
	}

	txt, err := c.DNS.TXT(ctx, "_mta-sts."+domain)
	if err != nil {
		cached.Err = fmt.Errorf("_mta-sts.%s: %w", domain, err)
		return cached
	}
	id, found, err := ParseTXT(txt.Texts)
	switch {
	case err != nil:
		cached.Err = fmt.Errorf("_mta-sts.%s: %w", domain, err)
		return cached
	case !found:
		return cached
	case cached.Policy != nil && cached.ID == id:
		return cached
	}

	c.mu.Lock()
	f, recent := c.failed[domain]
	c.mu.Unlock()
	if recent && f.id == id && now.Sub(f.at) < FailureDelay {
		cached.Err = f.err
		return cached
	}
	if c.Fetcher == nil {
		cached.Err = &FetchError{Result: "sts-policy-fetch-error", Err: errors.New("no fetcher")}
		return cached
	}
	p, body, err := c.Fetcher.Fetch(ctx, domain)
	if err != nil {
		c.logf("MTA-STS policy of %s: %v", domain, err)
		c.mu.Lock()
		if c.failed == nil {
			c.failed = map[string]failure{}
		}
		c.failed[domain] = failure{at: now, err: err, id: id}
		c.mu.Unlock()
		cached.Err = err
		return cached
	}
	c.mu.Lock()
	delete(c.failed, domain)
	c.mu.Unlock()
	e := Entry{Domain: domain, ID: id, Fetched: now, Policy: string(body)}
	if c.Cache != nil {
		if err := c.Cache.Store(e); err != nil {
			c.logf("%v", err)
		}
	}
	c.logf("MTA-STS policy of %s fetched: id=%s, mode=%s, max_age=%d", domain, id, p.Mode, int64(p.MaxAge/time.Second))
	return Result{Policy: p, ID: id, Source: "fetched", Expires: e.Expires(p)}
}
