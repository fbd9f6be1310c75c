package tlspolicy_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/tlspolicy"
	"github.com/posthorn/posthorn/internal/tlspolicy/sts"
	"github.com/posthorn/posthorn/internal/tlspolicy/testca"
	"github.com/posthorn/posthorn/internal/tlspolicy/tlsrpt"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// world is the loopback setting of the in-process tests: a DNS server
// that answers like a validating resolver (AD set, except for the names
// made insecure), SMTP servers on 127.0.0.x reached on "port 25" through
// the relay's Dial hook, HTTPS servers for MTA-STS policies reached on
// "port 443" through the fetcher's, a test CA, the relay client with the
// engine, a TLS report store. Nothing leaves loopback.
type world struct {
	t      testing.TB
	ca     *testca.CA
	dns    *zoneDNS
	res    *resolve.Resolver
	mu     sync.Mutex
	ports  map[string]string // "ip:25" and "ip:443": the real listener
	log    *syncBuf
	engine *tlspolicy.Engine
	client *relay.Client
	store  *tlsrpt.Store
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newWorld(t testing.TB, mod func(*tlspolicy.Engine)) *world {
	t.Helper()
	w := &world{t: t, ca: testca.New(t, "posthorn test root", time.Now()), ports: map[string]string{}, log: &syncBuf{}}
	w.dns = startZone(t)
	// The server is marked validating: its AD bit counts.
	w.res = resolve.New(resolve.Config{Servers: []string{w.dns.addr}, Validating: []string{w.dns.addr},
		Timeout: 2 * time.Second, Retries: 1})
	w.store = &tlsrpt.Store{Dir: t.TempDir(), DNS: w.res}
	w.engine = &tlspolicy.Engine{Default: tlspolicy.May, DANE: true, DNS: w.res, Roots: w.ca.Pool(), Reports: w.store,
		STS: &sts.Client{DNS: w.res, Cache: &sts.Cache{Dir: t.TempDir()},
			Fetcher: &sts.Fetcher{Resolve: w.res.Addrs, Dial: w.dial, RootCAs: w.ca.Pool(), Timeout: 5 * time.Second}}}
	if mod != nil {
		mod(w.engine)
	}
	w.client = relay.New(relay.Config{Hostname: "client.test", Resolver: w.res, TLS: &tls.Config{RootCAs: w.ca.Pool()},
		TLSPolicy: w.engine.Require, Dial: w.dial, ConnectionCacheSize: -1, Logger: maillog.New(w.log, "sm-mta"),
		Timeouts: relay.Timeouts{Connect: 5 * time.Second, Initial: 10 * time.Second, Helo: 10 * time.Second, StartTLS: 10 * time.Second}})
	t.Cleanup(func() { w.client.Close() })
	return w
}

// dial maps the virtual "ip:port" to the listener there.
func (w *world) dial(ctx context.Context, network, address string) (net.Conn, error) {
	w.mu.Lock()
	real, ok := w.ports[address]
	w.mu.Unlock()
	if !ok {
		return nil, errors.New("connection refused (nothing at " + address + " in the test)")
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

func (w *world) listen(ip, port string) net.Listener {
	w.t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	w.ports[net.JoinHostPort(ip, port)] = l.Addr().String()
	w.mu.Unlock()
	return l
}

// mx is an SMTP server for a host: STARTTLS with cert, or none.
type mx struct {
	mu        sync.Mutex
	mails     []string // MAIL FROM, each
	data      [][]byte
	tlsMails  int // MAIL FROM on a TLS connection
	sessions  int
	tlsServer bool
}

func (m *mx) NewSession(c *smtp.Conn) (smtp.Session, error) {
	m.mu.Lock()
	m.sessions++
	m.mu.Unlock()
	return &mxSession{m: m, c: c}, nil
}

type mxSession struct {
	m *mx
	c *smtp.Conn
}

func (s *mxSession) Mail(from string, _ *smtp.MailOptions) error {
	_, tlsOK := s.c.TLSConnectionState()
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.mails = append(s.m.mails, from)
	if tlsOK {
		s.m.tlsMails++
	}
	return nil
}
func (s *mxSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mxSession) Data(r io.Reader) error {
	b, _ := io.ReadAll(r)
	s.m.mu.Lock()
	s.m.data = append(s.m.data, b)
	s.m.mu.Unlock()
	return nil
}
func (s *mxSession) Reset()        {}
func (s *mxSession) Logout() error { return nil }

func (m *mx) counts() (mails, tlsMails, sessions int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.mails), m.tlsMails, m.sessions
}

// host starts an SMTP server for name at ip (A record added), with
// STARTTLS when cert is not nil.
func (w *world) host(name, ip string, cert *tls.Certificate) *mx {
	w.t.Helper()
	m := &mx{tlsServer: cert != nil}
	srv := smtp.NewServer(m)
	srv.Domain = name
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l := w.listen(ip, "25")
	go srv.Serve(l)
	w.t.Cleanup(func() { srv.Close() })
	w.dns.add(w.t, name+". 300 IN A "+ip)
	return m
}

// stsPolicy serves domain's MTA-STS policy at ip, with cert (nil: one
// valid for mta-sts.<domain> from the test CA).
func (w *world) stsPolicy(domain, ip, id, policy string, cert *tls.Certificate) {
	w.t.Helper()
	if cert == nil {
		c := w.ca.Valid(w.t, "mta-sts."+domain).TLS
		cert = &c
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain")
		io.WriteString(rw, policy)
	}))
	srv.Listener = w.listen(ip, "443")
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{*cert}}
	srv.StartTLS()
	w.t.Cleanup(srv.Close)
	w.dns.add(w.t, "mta-sts."+domain+". 300 IN A "+ip, "_mta-sts."+domain+". 300 IN TXT \"v=STSv1; id="+id+";\"")
}

// tlsa is the DANE record for c: usage, selector, matching type.
func tlsa(usage, selector, mtype int, cert []byte, spki []byte) string {
	data := cert
	if selector == 1 {
		data = spki
	}
	if mtype == 1 {
		d := sha256.Sum256(data)
		data = d[:]
	}
	return strings.Join([]string{itoa(usage), itoa(selector), itoa(mtype), hex.EncodeToString(data)}, " ")
}

func itoa(n int) string { return string(rune('0' + n)) }

// send delivers one message to rcpt's domain and returns its result.
func (w *world) send(host, rcpt string) runner.Result {
	w.t.Helper()
	job := &queue.Job{ID: "TLS" + strings.ReplaceAll(host, ".", ""), Sender: "<alice@client.test>"}
	var transcript bytes.Buffer
	d := &runner.Delivery{Job: job, Sender: "alice@client.test", Mailer: "esmtp", Host: host,
		Header: []byte("From: alice@client.test\nSubject: secret\n"), Body: strings.NewReader("the secret body\n"),
		Transcript: &transcript, Verbose: io.Discard,
		Rcpts: []runner.Rcpt{{Route: runner.Route{Mailer: "esmtp", Host: host, User: rcpt}, Recipient: &queue.Recipient{Addr: "<" + rcpt + ">", Flags: "PFD"}}}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := w.client.Deliver(ctx, d)
	if len(res) != 1 {
		w.t.Fatalf("%d results", len(res))
	}
	return res[0]
}

// zoneDNS is an in-process DNS server on 127.0.0.1 (UDP and TCP) that
// answers like a validating resolver: AD on every answer except for the
// names in insecure; SERVFAIL for the names in servfail.
type zoneDNS struct {
	addr     string
	mu       sync.Mutex
	rrs      []dns.RR
	insecure map[string]bool
	servfail map[string]bool
}

func startZone(t testing.TB) *zoneDNS {
	t.Helper()
	z := &zoneDNS{insecure: map[string]bool{}, servfail: map[string]bool{}}
	var pc net.PacketConn
	var l net.Listener
	for i := 0; ; i++ {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp4", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatal(err)
		}
	}
	z.addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: z}, {Listener: l, Handler: z}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return z
}

func (z *zoneDNS) add(t testing.TB, records ...string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("%q: %v", r, err)
		}
		z.rrs = append(z.rrs, rr)
	}
}

func (z *zoneDNS) set(m map[string]bool, names ...string) {
	z.mu.Lock()
	defer z.mu.Unlock()
	for _, n := range names {
		m[dns.Fqdn(strings.ToLower(n))] = true
	}
}

func (z *zoneDNS) ServeDNS(rw dns.ResponseWriter, req *dns.Msg) {
	z.mu.Lock()
	defer z.mu.Unlock()
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	m := new(dns.Msg)
	m.SetReply(req)
	if z.servfail[name] {
		m.Rcode = dns.RcodeServerFailure
		rw.WriteMsg(m)
		return
	}
	exists := false
	for _, rr := range z.rrs {
		h := rr.Header()
		if !strings.EqualFold(h.Name, name) {
			continue
		}
		exists = true
		if h.Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		soa, _ := dns.NewRR("test. 60 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60")
		m.Ns = append(m.Ns, soa)
	}
	m.AuthenticatedData = !z.insecure[name]
	rw.WriteMsg(m)
}

type tlsrptSession = tlsrpt.Session

func testcaNew(t *testing.T) *testca.CA { return testca.New(t, "another root", time.Now()) }

// newWorldWithResolver is w with its relay and engine asking a resolver
// that does or does not trust the server's AD bit.
func newWorldWithResolver(t *testing.T, w *world, validating bool) *world {
	t.Helper()
	cfg := resolve.Config{Servers: []string{w.dns.addr}, Timeout: 2 * time.Second, Retries: 1}
	if validating {
		cfg.Validating = cfg.Servers
	}
	w.res = resolve.New(cfg)
	w.engine.DNS = w.res
	w.engine.STS.DNS = w.res
	w.store.DNS = w.res
	w.client.Close()
	w.client = relay.New(relay.Config{Hostname: "client.test", Resolver: w.res, TLS: &tls.Config{RootCAs: w.ca.Pool()},
		TLSPolicy: w.engine.Require, Dial: w.dial, ConnectionCacheSize: -1, Logger: maillog.New(w.log, "sm-mta"),
		Timeouts: relay.Timeouts{Connect: 5 * time.Second, Initial: 10 * time.Second, Helo: 10 * time.Second, StartTLS: 10 * time.Second}})
	t.Cleanup(func() { w.client.Close() })
	return w
}
