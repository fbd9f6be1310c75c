package relay

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// gsBackend is a go-smtp server backend that records what it receives
// and answers RCPT and DATA as its hooks say.
type gsBackend struct {
	mu    sync.Mutex
	rcpt  func(n int, to string) error // nil: accept
	data  func(n int) error            // nil: accept
	nrcpt int
	ndata int
	msgs  []gsMsg
	mails []string
}

type gsMsg struct {
	from  string
	opts  smtp.MailOptions
	rcpts []string
	ropts []*smtp.RcptOptions
	data  []byte
}

func (b *gsBackend) NewSession(c *smtp.Conn) (smtp.Session, error) { return &gsSession{b: b}, nil }

func (b *gsBackend) messages() []gsMsg {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]gsMsg(nil), b.msgs...)
}

type gsSession struct {
	b   *gsBackend
	cur gsMsg
}

func (s *gsSession) Mail(from string, opts *smtp.MailOptions) error {
	s.b.mu.Lock()
	s.b.mails = append(s.b.mails, from)
	s.b.mu.Unlock()
	s.cur = gsMsg{from: from}
	if opts != nil {
		s.cur.opts = *opts
	}
	return nil
}

func (s *gsSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.b.mu.Lock()
	n := s.b.nrcpt
	s.b.nrcpt++
	hook := s.b.rcpt
	s.b.mu.Unlock()
	if hook != nil {
		if err := hook(n, to); err != nil {
			return err
		}
	}
	s.cur.rcpts = append(s.cur.rcpts, to)
	s.cur.ropts = append(s.cur.ropts, opts)
	return nil
}

func (s *gsSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	n := s.b.ndata
	s.b.ndata++
	hook := s.b.data
	s.b.mu.Unlock()
	if hook != nil {
		if err := hook(n); err != nil {
			return err
		}
	}
	s.cur.data = b
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *gsSession) Reset()        { s.cur = gsMsg{} }
func (s *gsSession) Logout() error { return nil }

// goSMTP starts a go-smtp server for name at ip, reached on the test port.
func (w *world) goSMTP(name, ip string, be *gsBackend, mod func(*smtp.Server)) *smtp.Server {
	w.t.Helper()
	srv := smtp.NewServer(be)
	srv.Domain = name
	srv.EnableDSN = true
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	if mod != nil {
		mod(srv)
	}
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		w.t.Fatal(err)
	}
	go srv.Serve(ln)
	w.t.Cleanup(func() { srv.Close() })
	w.dns.a[name] = addrs(ip)
	w.net.add(net.JoinHostPort(ip, "2526"), ln.Addr())
	return srv
}

// selfSigned makes a certificate for name and ip.
func selfSigned(t *testing.T, name, ip string) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, cert
}
