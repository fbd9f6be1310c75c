package relay

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// world is a client with a fake DNS, next hops on loopback addresses
// reached through the Dial hook, a host status table and a log.
type world struct {
	t      *testing.T
	dns    *fakeDNS
	net    *netmap
	hs     *memStatus
	logBuf *syncBuffer
	client *Client
	clock  *clock
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const testPort = 2526 // the port of the capture's sinks

func newWorld(t *testing.T, mod func(*Config)) *world {
	t.Helper()
	w := &world{t: t, dns: &fakeDNS{mx: map[string][]resolve.MX{}, mxErr: map[string]error{}, a: map[string][]netip.Addr{}},
		net: &netmap{}, logBuf: &syncBuffer{}, clock: &clock{now: time.Now().Truncate(time.Second)}}
	w.hs = &memStatus{m: map[string]hoststat.Status{}, expire: 30 * time.Minute, now: w.clock.Now}
	cfg := Config{
		Hostname:            "refhost.example.org",
		Resolver:            w.dns,
		HostStatus:          w.hs,
		Port:                testPort,
		Dial:                w.net.dial,
		ConnectionCacheSize: -1,
		Logger:              maillog.New(w.logBuf, "sm-mta"),
		Now:                 w.clock.Now,
	}
	if mod != nil {
		mod(&cfg)
	}
	w.client = New(cfg)
	t.Cleanup(func() { w.client.Close() })
	return w
}

// host gives name the address ip and, when s is not nil, starts s there
// on the test port.
func (w *world) host(name, ip string, s *sink) *sink {
	w.dns.a[name] = addrs(ip)
	if s != nil {
		s.start(w.t, ip)
		w.net.add(net.JoinHostPort(ip, "2526"), s.ln.Addr())
	}
	return s
}

// mx gives domain MX records, best first, with preferences 10, 20...
func (w *world) mx(domain string, hosts ...string) {
	var mx []resolve.MX
	for i, h := range hosts {
		mx = append(mx, resolve.MX{Host: h, Pref: uint16(10 * (i + 1))})
	}
	w.dns.mx[domain] = mx
}

// msg is a delivery to rcpts (qf form "<a@b>" or bare) at host.
type msg struct {
	d          *runner.Delivery
	transcript bytes.Buffer // what the DSN transcript would get
	verbose    bytes.Buffer // -v
}

func newMsg(host string, header, body string, rcpts ...string) *msg {
	m := &msg{}
	j := &queue.Job{ID: "6AP4WWik011158", Sender: "<alice@refhost.example.org>", Priority: 30000}
	m.d = &runner.Delivery{Job: j, Sender: "alice@refhost.example.org", Mailer: "esmtp", Host: host,
		Header: []byte(header), Body: bytes.NewReader([]byte(body)), Transcript: &m.transcript, Verbose: &m.verbose}
	for _, r := range rcpts {
		user := strings.TrimSuffix(strings.TrimPrefix(r, "<"), ">")
		m.d.Rcpts = append(m.d.Rcpts, runner.Rcpt{
			Route:     runner.Route{Mailer: "esmtp", Host: host, User: user},
			Recipient: &queue.Recipient{Addr: r, Flags: "PFD"},
		})
	}
	return m
}

const simpleHeader = "Received: (from root@localhost)\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) id 6AP4WWik011158;\n\tWed, 25 Nov 2026 04:32:32 GMT\nDate: Wed, 25 Nov 2026 04:32:32 GMT\nFrom: Alice Example <alice@refhost.example.org>\nMessage-Id: <202611250432.6AP4WWik011158@refhost.example.org>\nSubject: host status demo\n"

func (w *world) deliver(m *msg) []runner.Result {
	w.t.Helper()
	res := w.client.Deliver(context.Background(), m.d)
	if len(res) != len(m.d.Rcpts) {
		w.t.Fatalf("%d results for %d recipients", len(res), len(m.d.Rcpts))
	}
	return res
}

// memStatus is an in-memory host status table with sendmail's expiry
// (the tests do not depend on the hoststat package's store).
type memStatus struct {
	mu     sync.Mutex
	m      map[string]hoststat.Status
	expire time.Duration
	now    func() time.Time
}

func (s *memStatus) Lookup(host string) (hoststat.Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.m[host]
	if !ok || s.now().Sub(st.Updated) >= s.expire {
		return hoststat.Status{}, false
	}
	return st, true
}

func (s *memStatus) Record(st hoststat.Status) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[st.Host] = st
	return nil
}
