package sts

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/tlspolicy/testca"
)

const goodPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 3600\r\n"

// policyServer is an HTTPS server on 127.0.0.x for mta-sts.<domain>,
// reached through the Fetcher's Dial hook: nothing leaves loopback.
type policyServer struct {
	mu      sync.Mutex
	body    string
	ctype   string
	status  int
	hits    int
	srv     *httptest.Server
	fetcher *Fetcher
}

func newPolicyServer(t *testing.T, ip string, cert tls.Certificate, ca *testca.CA) *policyServer {
	t.Helper()
	ps := &policyServer{body: goodPolicy, ctype: "text/plain; charset=utf-8", status: 200}
	ps.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		ps.hits++
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		if ps.status == http.StatusFound {
			w.Header().Set("Location", "https://elsewhere.example/")
		}
		w.Header().Set("Content-Type", ps.ctype)
		w.WriteHeader(ps.status)
		w.Write([]byte(ps.body))
	}))
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	ps.srv.Listener = l
	ps.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ps.srv.StartTLS()
	t.Cleanup(ps.srv.Close)
	addr := l.Addr().String()
	ps.fetcher = &Fetcher{
		Resolve: func(ctx context.Context, host string) ([]netip.Addr, error) {
			if !strings.HasPrefix(host, "mta-sts.") {
				return nil, errors.New("unexpected host " + host)
			}
			return []netip.Addr{netip.MustParseAddr(ip)}, nil
		},
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			if address != net.JoinHostPort(ip, "443") {
				return nil, errors.New("dial to " + address + " outside the test")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
		RootCAs: ca.Pool(),
		Timeout: 5 * time.Second,
	}
	return ps
}

func (ps *policyServer) set(f func(*policyServer)) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	f(ps)
}

func (ps *policyServer) count() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.hits
}

func TestFetch(t *testing.T) {
	ca := testca.New(t, "Test Root", time.Now())
	good := ca.Valid(t, "mta-sts.example.com")
	for _, tt := range []struct {
		name   string
		cert   tls.Certificate
		change func(*policyServer)
		result string // "" success, else the RFC 8460 result type
	}{
		{name: "good", cert: good.TLS},
		{name: "wrong name", cert: ca.Valid(t, "www.example.com").TLS, result: "sts-webpki-invalid"},
		{name: "expired", cert: ca.Expired(t, "mta-sts.example.com").TLS, result: "sts-webpki-invalid"},
		{name: "another CA", cert: testca.New(t, "Other", time.Now()).Valid(t, "mta-sts.example.com").TLS, result: "sts-webpki-invalid"},
		{name: "404", cert: good.TLS, change: func(p *policyServer) { p.status = 404 }, result: "sts-policy-fetch-error"},
		{name: "redirect", cert: good.TLS, change: func(p *policyServer) { p.status = http.StatusFound }, result: "sts-policy-fetch-error"},
		{name: "HTML", cert: good.TLS, change: func(p *policyServer) { p.ctype = "text/html" }, result: "sts-policy-invalid"},
		{name: "too large", cert: good.TLS, change: func(p *policyServer) { p.body += strings.Repeat("x: y\n", MaxPolicySize/5+1) }, result: "sts-policy-invalid"},
		{name: "invalid", cert: good.TLS, change: func(p *policyServer) { p.body = "version: STSv1\n" }, result: "sts-policy-invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ps := newPolicyServer(t, "127.0.0.61", tt.cert, ca)
			if tt.change != nil {
				ps.set(tt.change)
			}
			p, body, err := ps.fetcher.Fetch(context.Background(), "example.com")
			if tt.result == "" {
				if err != nil || p.Mode != Enforce || string(body) != goodPolicy {
					t.Fatalf("%+v %q %v", p, body, err)
				}
				return
			}
			var fe *FetchError
			if !errors.As(err, &fe) || fe.Result != tt.result {
				t.Fatalf("error %v, want %s", err, tt.result)
			}
		})
	}
}

// The fetch has a time limit: a server that never answers fails it.
func TestFetchTimeout(t *testing.T) {
	ca := testca.New(t, "Test Root", time.Now())
	ps := newPolicyServer(t, "127.0.0.62", ca.Valid(t, "mta-sts.example.com").TLS, ca)
	l, err := net.Listen("tcp", "127.0.0.62:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accepted, never answered
		}
	}()
	ps.fetcher.Dial = func(ctx context.Context, network, address string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, l.Addr().String())
	}
	ps.fetcher.Timeout = 300 * time.Millisecond
	if _, _, err := ps.fetcher.Fetch(context.Background(), "example.com"); err == nil {
		t.Fatal("no error")
	}
}

type fakeTXT struct {
	mu  sync.Mutex
	txt map[string][]string
	err error
}

func (f *fakeTXT) TXT(ctx context.Context, name string) (resolve.TXTResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return resolve.TXTResult{}, f.err
	}
	return resolve.TXTResult{Texts: f.txt[name]}, nil
}

func (f *fakeTXT) set(name string, records ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.txt[name] = records
}

// The cache: kept for max_age on disk, refetched when the id changes,
// kept when the TXT record disappears or the fetch fails, dropped when it
// expires.
func TestClientCache(t *testing.T) {
	ca := testca.New(t, "Test Root", time.Now())
	ps := newPolicyServer(t, "127.0.0.63", ca.Valid(t, "mta-sts.example.com").TLS, ca)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	dns := &fakeTXT{txt: map[string][]string{}}
	dns.set("_mta-sts.example.com", "v=STSv1; id=one;")
	dir := t.TempDir()
	newClient := func() *Client {
		return &Client{DNS: dns, Fetcher: ps.fetcher, Cache: &Cache{Dir: dir}, Now: func() time.Time { return now }}
	}
	c := newClient()
	lookup := func(wantSource, wantID string, wantHits int) Result {
		t.Helper()
		r := c.Lookup(context.Background(), "Example.COM.")
		if r.Source != wantSource || r.ID != wantID || ps.count() != wantHits {
			t.Fatalf("source %q id %q after %d fetches (err %v); want %q %q %d", r.Source, r.ID, ps.count(), r.Err, wantSource, wantID, wantHits)
		}
		return r
	}
	r := lookup("fetched", "one", 1)
	if r.Policy.Mode != Enforce || !r.Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("%+v", r)
	}
	lookup("cache", "one", 1)
	// Another process reads the same file.
	c = newClient()
	lookup("cache", "one", 1)
	// A new id: fetched again.
	dns.set("_mta-sts.example.com", "v=STSv1; id=two;")
	ps.set(func(p *policyServer) { p.body = strings.Replace(goodPolicy, "enforce", "testing", 1) })
	now = now.Add(10 * time.Minute)
	if r := lookup("fetched", "two", 2); r.Policy.Mode != Testing || !r.Expires.Equal(now.Add(time.Hour)) {
		t.Errorf("%+v", r)
	}
	// The record removed: the cached policy stays in force.
	dns.set("_mta-sts.example.com")
	lookup("cache", "two", 2)
	// A TXT lookup failure: the same.
	dns.mu.Lock()
	dns.err = errors.New("SERVFAIL")
	dns.mu.Unlock()
	if r := lookup("cache", "two", 2); r.Err == nil {
		t.Error("the lookup failure is not reported")
	}
	dns.mu.Lock()
	dns.err = nil
	dns.mu.Unlock()
	// A new id whose fetch fails: the cached policy, and the error for
	// the report; not fetched again before FailureDelay.
	dns.set("_mta-sts.example.com", "v=STSv1; id=three;")
	ps.set(func(p *policyServer) { p.status = 500 })
	if r := lookup("cache", "two", 3); r.TLSRPTResult() != "sts-policy-fetch-error" {
		t.Errorf("result type %q", r.TLSRPTResult())
	}
	lookup("cache", "two", 3)
	now = now.Add(FailureDelay)
	lookup("cache", "two", 4)
	// Expired: gone; without a TXT record nothing applies.
	dns.set("_mta-sts.example.com")
	now = now.Add(time.Hour)
	if r := lookup("", "", 4); r.Policy != nil {
		t.Errorf("expired policy applies: %+v", r)
	}
	if _, _, ok, _ := (&Cache{Dir: dir}).Load("example.com"); ok {
		t.Error("expired entry still on disk")
	}
	// A published record whose policy cannot be fetched, nothing cached:
	// no policy, the error reported.
	dns.set("_mta-sts.example.com", "v=STSv1; id=four;")
	if r := lookup("", "", 5); r.Policy != nil || r.TLSRPTResult() != "sts-policy-fetch-error" {
		t.Errorf("%+v", r)
	}
	// An invalid record is no record.
	dns.set("_mta-sts.example.com", "v=STSv1; id=a", "v=STSv1; id=b")
	if r := lookup("", "", 5); r.Err == nil || r.TLSRPTResult() != "sts-policy-invalid" {
		t.Errorf("%+v", r)
	}
}

func TestCacheRefusesBadNames(t *testing.T) {
	c := &Cache{Dir: t.TempDir()}
	for _, d := range []string{"../etc", "a/b", "", ".", "*.example"} {
		if err := c.Store(Entry{Domain: d, Policy: goodPolicy}); err == nil {
			t.Errorf("stored %q", d)
		}
	}
}
