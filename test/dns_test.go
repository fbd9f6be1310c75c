package test

import (
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// testDNS is a DNS server on 127.0.0.1 answering from a table of A and MX
// records: a name it does not know is NXDOMAIN, a name listed as
// "servfail" gets SERVFAIL. It is the ResolverServers of a test root.
type testDNS struct {
	addr string
}

func startGoDNS(t *testing.T, records map[string]string) *testDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		name := strings.TrimSuffix(strings.ToLower(q.Question[0].Name), ".")
		v, ok := records[name]
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case v == "servfail":
			m.Rcode = dns.RcodeServerFailure
		default:
			for _, rr := range strings.Split(v, ";") {
				if r, err := dns.NewRR(q.Question[0].Name + " 60 IN " + strings.TrimSpace(rr)); err == nil && r.Header().Rrtype == q.Question[0].Qtype {
					m.Answer = append(m.Answer, r)
				}
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return &testDNS{addr: pc.LocalAddr().String()}
}

// TestSenderDomain: sendmail's check that the MAIL FROM domain exists,
// answered at each RCPT that passed the relay check (as
// 01-smtp-rcpt-relay-denied.txt shows it), not for relay clients, and off
// with AcceptUnresolvableDomains.
func TestSenderDomain(t *testing.T) {
	d := startGoDNS(t, map[string]string{"client.example": "A 127.0.0.67", "broken.example": "servfail"})
	r := newRoot(t, "O DeliveryMode=queueonly", "O RelayHosts=127.0.0.1/32", "O ResolverServers="+d.addr)
	writeAliases(t, r, "postmaster: root\n")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	host, port, _ := strings.Cut(r.addr(), ":")
	session := func(src, from string) string {
		args := []string{host, port}
		if src != "" {
			args = append([]string{"--src", src}, args...)
		}
		return transcript(t, "> EHLO client.example\n> MAIL FROM:<"+from+">\n> RCPT TO:<someone@remote.example>\n> RCPT TO:<root@localhost>\n> QUIT\n", args...)
	}
	for _, tt := range []struct{ src, from, want string }{
		{"127.0.0.66", "someone@client.example", "S: 250 2.1.5 <root@localhost>... Recipient ok\n"},
		{"127.0.0.66", "someone@nxdomain.invalid", "S: 553 5.1.8 <root@localhost>... Domain of sender address someone@nxdomain.invalid does not exist\n"},
		{"127.0.0.66", "someone@broken.example", "S: 451 4.1.8 <root@localhost>... Domain of sender address someone@broken.example does not resolve\n"},
		{"127.0.0.66", "", "S: 250 2.1.5 <root@localhost>... Recipient ok\n"},               // the null sender
		{"", "someone@nxdomain.invalid", "S: 250 2.1.5 <root@localhost>... Recipient ok\n"}, // a relay client
	} {
		got := session(tt.src, tt.from)
		if !strings.Contains(got, tt.want) {
			t.Errorf("from %q via %q: no %q in\n%s", tt.from, tt.src, tt.want, got)
		}
		if tt.src != "" && !strings.Contains(got, "S: 550 5.7.1 <someone@remote.example>... Relaying denied") {
			t.Errorf("from %q: the relay check comes first:\n%s", tt.from, got)
		}
	}
	// AcceptUnresolvableDomains turns the check off.
	r2 := newRoot(t, "O DeliveryMode=queueonly", "O RelayHosts=127.0.0.1/32", "O ResolverServers="+d.addr, "O AcceptUnresolvableDomains=True")
	startDaemon(t, r2)
	c, _, _ = waitGreeting(t, r2.addr())
	c.Close()
	host, port, _ = strings.Cut(r2.addr(), ":")
	if got := session("127.0.0.66", "someone@nxdomain.invalid"); !strings.Contains(got, "S: 250 2.1.5 <root@localhost>... Recipient ok\n") {
		t.Errorf("AcceptUnresolvableDomains=True:\n%s", got)
	}
}
