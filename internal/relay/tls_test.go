package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
)

// countingListener counts the connections accepted.
type countingListener struct {
	net.Listener
	n atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// A cached connection serves a TLSVerify requirement only when it was
// authenticated for the same Key; any connection serves an opportunistic
// one.
func TestTLSRequirementAndCache(t *testing.T) {
	cert, _ := selfSigned(t, "mx.cache.example", "127.0.0.38")
	var key atomic.Value
	key.Store("dane:a")
	var reports []TLSReport
	w := newWorld(t, func(c *Config) {
		c.ConnectionCacheSize = 2
		c.TLSPolicy = func(_ context.Context, q TLSQuery) TLSRequirement {
			if q.Domain != "cache.example" || q.Host != "mx.cache.example" || q.NextHop != "cache.example" || q.Port != testPort {
				t.Errorf("query %+v", q)
			}
			return TLSRequirement{Mode: TLSVerify, Policy: "dane", Label: "DANE", Key: key.Load().(string),
				Verify: func(cs tls.ConnectionState) (string, error) {
					if len(cs.PeerCertificates) == 0 {
						return "", errors.New("no certificate")
					}
					return "TRUSTED", nil
				},
				Report: func(r TLSReport) { reports = append(reports, r) }}
		}
	})
	srv := smtp.NewServer(&gsBackend{})
	srv.Domain = "mx.cache.example"
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	conns := w.serve(t, srv, "mx.cache.example", "127.0.0.38")
	w.mx("cache.example", "mx.cache.example")
	send := func() {
		t.Helper()
		wantSent(t, w.deliver(newMsg("cache.example", simpleHeader, "x\n", "<a@cache.example>"))[0], "mx.cache.example. [127.0.0.38]")
	}
	send()
	send()
	if n := conns.n.Load(); n != 1 {
		t.Errorf("same key: %d connections", n)
	}
	key.Store("dane:b")
	send()
	if n := conns.n.Load(); n != 2 {
		t.Errorf("another key: %d connections", n)
	}
	if len(reports) != 2 || !reports[0].TLS || !reports[0].Authenticated || reports[0].Host != "mx.cache.example" || reports[0].Addr.String() != "127.0.0.38" {
		t.Errorf("reports %+v", reports)
	}
	if log := w.logBuf.String(); strings.Count(log, "verify=TRUSTED, cipher=") != 2 || !strings.Contains(log, ", policy=dane\n") {
		t.Errorf("log:\n%s", log)
	}
}

// Refuse: the host is not tried; its text is the result.
func TestTLSRequirementRefuse(t *testing.T) {
	w := newWorld(t, func(c *Config) {
		c.TLSPolicy = func(context.Context, TLSQuery) TLSRequirement {
			return TLSRequirement{Policy: "sts", Refuse: errors.New("not this one")}
		}
	})
	s := w.host("mx.refuse.example", "127.0.0.39", &sink{})
	w.mx("refuse.example", "mx.refuse.example")
	res := w.deliver(newMsg("refuse.example", simpleHeader, "x\n", "<a@refuse.example>"))
	if st := statOf(t, res[0]); !st.Temporary() {
		t.Errorf("%+v", st)
	}
	if s.connections() != 0 {
		t.Errorf("%d connections", s.connections())
	}
	if !strings.Contains(w.logBuf.String(), "STARTTLS=client, relay=mx.refuse.example., policy=sts, not tried: ") {
		t.Errorf("log:\n%s", w.logBuf.String())
	}
}

// serve runs srv for name at ip on the test port.
func (w *world) serve(t *testing.T, srv *smtp.Server, name, ip string) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	go srv.Serve(cl)
	t.Cleanup(func() { srv.Close() })
	w.dns.a[name] = addrs(ip)
	w.net.add(net.JoinHostPort(ip, "2526"), ln.Addr())
	return cl
}
