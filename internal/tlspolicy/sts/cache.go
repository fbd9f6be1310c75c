package sts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Entry is one cached policy.
type Entry struct {
	Domain  string    `json:"domain"`
	ID      string    `json:"id"`      // the TXT record's id when it was fetched
	Fetched time.Time `json:"fetched"` // its max_age counts from here
	Policy  string    `json:"policy"`  // the body as fetched
}

// Expires is when a policy fetched at e.Fetched stops applying.
func (e Entry) Expires(p *Policy) time.Time { return e.Fetched.Add(p.MaxAge) }

// Cache keeps policies on disk, one file per domain, shared by every
// process; with Dir "" it keeps them in memory only.
type Cache struct {
	Dir string

	mu  sync.Mutex
	mem map[string]Entry
}

// fileName is the file of a domain. Domains are validated host names, so
// they make safe file names; anything else is refused.
func (c *Cache) fileName(domain string) (string, error) {
	if !validPattern(domain) || strings.HasPrefix(domain, "*") {
		return "", fmt.Errorf("mta-sts cache: bad domain %q", domain)
	}
	return filepath.Join(c.Dir, domain+".json"), nil
}

// Load returns the cached entry for domain and its parsed policy; ok is
// false when there is none (or it cannot be read, which is reported).
func (c *Cache) Load(domain string) (Entry, *Policy, bool, error) {
	var e Entry
	if c.Dir == "" {
		c.mu.Lock()
		e, ok := c.mem[domain]
		c.mu.Unlock()
		if !ok {
			return e, nil, false, nil
		}
		p, err := Parse([]byte(e.Policy))
		return e, p, err == nil, err
	}
	name, err := c.fileName(domain)
	if err != nil {
		return e, nil, false, err
	}
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil, false, nil
	}
	if err != nil {
		return e, nil, false, fmt.Errorf("mta-sts cache: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Domain != domain {
		return e, nil, false, fmt.Errorf("mta-sts cache: %s is damaged", name)
	}
	p, err := Parse([]byte(e.Policy))
	if err != nil {
		return e, nil, false, fmt.Errorf("mta-sts cache: %s: %w", name, err)
	}
	return e, p, true, nil
}

// Store writes an entry: a temporary file, synced, renamed over the old
// one, the directory synced.
func (c *Cache) Store(e Entry) error {
	if c.Dir == "" {
		c.mu.Lock()
		if c.mem == nil {
			c.mem = map[string]Entry{}
		}
		c.mem[e.Domain] = e
		c.mu.Unlock()
		return nil
	}
	name, err := c.fileName(e.Domain)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return fmt.Errorf("mta-sts cache: %w", err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(c.Dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("mta-sts cache: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("mta-sts cache: %w", err)
	}
	if d, err := os.Open(c.Dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Remove forgets domain's policy (an expired entry).
func (c *Cache) Remove(domain string) {
	if c.Dir == "" {
		c.mu.Lock()
		delete(c.mem, domain)
		c.mu.Unlock()
		return
	}
	if name, err := c.fileName(domain); err == nil {
		os.Remove(name)
	}
}
