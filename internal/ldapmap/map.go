package ldapmap

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Options configure a Map.
type Options struct {
	Name     string        // for messages: "AliasFile", "mailertable"
	CacheTTL time.Duration // 0: 30 s; negative: no cache
	TLS      *tls.Config   // ldaps:// and -x (nil: the system's roots)
	Now      func() time.Time
}

// Map is one LDAP map. It is safe for concurrent use; it keeps one
// connection, opened at the first lookup and again after a failure.
type Map struct {
	spec *Spec
	opts Options

	mu    sync.Mutex
	conn  *ldap.Conn
	cache map[string]cached
}

type cached struct {
	value string
	ok    bool
	until time.Time
}

// maxCache bounds the cache; when full it is emptied.
const maxCache = 10000

// New returns a Map for a parsed spec. It does not connect.
func New(spec *Spec, opts Options) *Map {
	if opts.CacheTTL == 0 {
		opts.CacheTTL = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Map{spec: spec, opts: opts, cache: map[string]cached{}}
}

// Spec is the map's specification.
func (m *Map) Spec() *Spec { return m.spec }

// Lookup finds key: the value (several joined with the delimiter), and
// whether there is one. An error is a temporary failure: no server
// answered, or the search failed.
func (m *Map) Lookup(key string) (string, bool, error) {
	ck := strings.ToLower(key)
	now := m.opts.Now()
	m.mu.Lock()
	if c, ok := m.cache[ck]; ok && now.Before(c.until) {
		m.mu.Unlock()
		return c.value, c.ok, nil
	}
	m.mu.Unlock()
	v, ok, err := m.search(key)
	if err != nil {
		return "", false, err
	}
	if m.opts.CacheTTL > 0 {
		m.mu.Lock()
		if len(m.cache) >= maxCache {
			m.cache = map[string]cached{}
		}
		m.cache[ck] = cached{value: v, ok: ok, until: now.Add(m.opts.CacheTTL)}
		m.mu.Unlock()
	}
	return v, ok, nil
}

// Get is Lookup for the route tables (route.Map).
func (m *Map) Get(key string) (string, bool, error) { return m.Lookup(key) }

// Close ends the connection.
func (m *Map) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		m.conn.Close()
		m.conn = nil
	}
	return nil
}

// Filter is the search filter for key: %0 replaced by the escaped key.
func (s *Spec) filterFor(key string) string {
	var b strings.Builder
	f := s.Filter
	for i := 0; i < len(f); i++ {
		if f[i] == '%' && i+1 < len(f) {
			switch f[i+1] {
			case '0':
				b.WriteString(ldap.EscapeFilter(key))
				i++
				continue
			case '%':
				b.WriteByte('%')
				i++
				continue
			}
		}
		b.WriteByte(f[i])
	}
	return b.String()
}

// search asks the directory, reconnecting once when the kept connection
// has failed.
func (m *Map) search(key string) (string, bool, error) {
	req := ldap.NewSearchRequest(m.spec.Base, m.spec.Scope, ldap.NeverDerefAliases, m.spec.SizeLimit,
		int(m.spec.Timeout/time.Second), false, m.spec.filterFor(key), m.spec.Attrs, nil)
	if m.spec.Single {
		req.SizeLimit = 2
	}
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		c, err := m.connection()
		if err != nil {
			return "", false, err
		}
		res, err := c.Search(req)
		if err == nil || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && res != nil {
			return m.result(res)
		}
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return "", false, nil
		}
		lastErr = err
		m.drop(c)
		if !isConnError(err) {
			break
		}
	}
	return "", false, fmt.Errorf("%s: LDAP search: %w", m.opts.Name, lastErr)
}

func isConnError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || ldap.IsErrorWithCode(err, ldap.ErrorNetwork) ||
		ldap.IsErrorWithCode(err, ldap.LDAPResultServerDown) || ldap.IsErrorWithCode(err, ldap.LDAPResultUnavailable) ||
		ldap.IsErrorWithCode(err, ldap.LDAPResultBusy) || ldap.IsErrorWithCode(err, ldap.LDAPResultTimeout)
}

// result joins the values of the requested attributes of the entries.
func (m *Map) result(res *ldap.SearchResult) (string, bool, error) {
	if len(res.Entries) == 0 || m.spec.Single && len(res.Entries) > 1 {
		return "", false, nil
	}
	var vals []string
	for _, e := range res.Entries {
		if len(m.spec.Attrs) == 0 {
			vals = append(vals, e.DN)
			continue
		}
		for _, a := range m.spec.Attrs {
			vals = append(vals, e.GetAttributeValues(a)...)
		}
	}
	if len(vals) == 0 {
		return "", false, nil
	}
	if m.spec.Delim == "" {
		return vals[0], true, nil
	}
	return strings.Join(vals, m.spec.Delim), true, nil
}

func (m *Map) drop(c *ldap.Conn) {
	m.mu.Lock()
	if m.conn == c {
		m.conn = nil
	}
	m.mu.Unlock()
	c.Close()
}

// connection is the kept connection, or a new one to the first URI that
// answers (and binds).
func (m *Map) connection() (*ldap.Conn, error) {
	m.mu.Lock()
	if c := m.conn; c != nil && !c.IsClosing() {
		m.mu.Unlock()
		return c, nil
	}
	m.mu.Unlock()
	var errs []error
	for _, uri := range m.spec.URIs {
		c, err := m.dial(uri)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.mu.Lock()
		if m.conn != nil && !m.conn.IsClosing() {
			// Another lookup connected meanwhile.
			old := m.conn
			m.mu.Unlock()
			c.Close()
			return old, nil
		}
		m.conn = c
		m.mu.Unlock()
		return c, nil
	}
	return nil, fmt.Errorf("%s: no LDAP server: %w", m.opts.Name, errors.Join(errs...))
}

func (m *Map) dial(uri string) (*ldap.Conn, error) {
	tc := m.opts.TLS
	if tc == nil {
		tc = &tls.Config{}
	}
	tc = tc.Clone()
	host := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(uri), "ldaps://"), "ldap://")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if tc.ServerName == "" {
		tc.ServerName = strings.Trim(host, "[]")
	}
	d := &net.Dialer{Timeout: m.spec.Timeout}
	c, err := ldap.DialURL(uri, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, err
	}
	c.SetTimeout(m.spec.Timeout)
	if m.spec.StartTLS && strings.HasPrefix(strings.ToLower(uri), "ldap://") {
		if err := c.StartTLS(tc); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: StartTLS: %w", uri, err)
		}
	}
	if m.spec.Simple {
		if err := c.Bind(m.spec.BindDN, m.spec.Secret); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: bind as %s: %w", uri, m.spec.BindDN, err)
		}
	}
	return c, nil
}
