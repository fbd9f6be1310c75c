package relay

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// discard is a go-smtp backend that reads and drops messages.
type discard struct{}

func (discard) NewSession(*smtp.Conn) (smtp.Session, error) { return discard{}, nil }
func (discard) Mail(string, *smtp.MailOptions) error        { return nil }
func (discard) Rcpt(string, *smtp.RcptOptions) error        { return nil }
func (discard) Data(r io.Reader) error                      { _, err := io.Copy(io.Discard, r); return err }
func (discard) Reset()                                      {}
func (discard) Logout() error                               { return nil }

// BenchmarkDeliver measures Deliver to an in-process sink: one 4 KiB
// message to one recipient per call, with the connection cache (one
// connection, RSET between messages) and without (a connection each).
func BenchmarkDeliver(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"cached", 2}, {"new-connection", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := smtp.NewServer(discard{})
			srv.Domain = "mx.bench.example"
			ln, err := net.Listen("tcp", "127.0.0.50:0")
			if err != nil {
				b.Fatal(err)
			}
			go srv.Serve(ln)
			defer srv.Close()
			nm := &netmap{}
			nm.add("127.0.0.50:25", ln.Addr())
			dns := &fakeDNS{mx: map[string][]resolve.MX{"bench.example": {{Host: "mx.bench.example", Pref: 10}}},
				a: map[string][]netip.Addr{"mx.bench.example": addrs("127.0.0.50")}}
			c := New(Config{Hostname: "refhost.example.org", Resolver: dns, Dial: nm.dial, ConnectionCacheSize: bc.cache})
			defer c.Close()
			body := []byte(strings.Repeat("a line of a message body, sixty-four octets long, more or less\n", 64))
			job := &queue.Job{ID: "6AP4WWik011158", Sender: "<alice@refhost.example.org>"}
			rc := runner.Rcpt{Route: runner.Route{Mailer: "esmtp", Host: "bench.example", User: "user@bench.example"},
				Recipient: &queue.Recipient{Addr: "<user@bench.example>", Flags: "PFD"}}
			b.ReportAllocs()
			b.SetBytes(int64(len(body) + len(simpleHeader)))
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				d := &runner.Delivery{Job: job, Sender: "alice@refhost.example.org", Mailer: "esmtp", Host: "bench.example",
					Rcpts: []runner.Rcpt{rc}, Header: []byte(simpleHeader), Body: bytes.NewReader(body),
					Transcript: io.Discard, Verbose: io.Discard}
				if res := c.Deliver(context.Background(), d); res[0].Err != nil {
					b.Fatal(res[0].Err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
