package resolve

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS is an in-process authoritative server on 127.0.0.1 (UDP and TCP
// on one port) with a zone written as text records, and per-name
// behaviours: SERVFAIL, no answer, truncated UDP answers, FORMERR to EDNS0.
type fakeDNS struct {
	addr string

	mu       sync.Mutex
	rrs      []dns.RR
	servfail map[string]bool
	drop     map[string]bool
	truncate map[string]bool
	noEDNS   bool // answer FORMERR to any query with an OPT record
	chase    bool // follow CNAMEs inside the zone in one answer
	queries  []string
	// ad sets the AD bit in answers about these names (a validating
	// resolver's "secure"); adAsked records whether the question had it.
	ad      map[string]bool
	adAsked []bool
}

const soaRR = "example. 3600 IN SOA ns.example. hostmaster.example. 1 3600 600 86400 60"

func newFakeDNS(t testing.TB, records ...string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{servfail: map[string]bool{}, drop: map[string]bool{}, truncate: map[string]bool{}, ad: map[string]bool{}, chase: true}
	f.add(t, records...)
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
	f.addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: f}, {Listener: l, Handler: f}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return f
}

func (f *fakeDNS) add(t testing.TB, records ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		f.rrs = append(f.rrs, rr)
	}
}

func (f *fakeDNS) set(m map[string]bool, names ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range names {
		m[dns.Fqdn(n)] = true
	}
}

// with changes f's behaviour while it serves.
func (f *fakeDNS) with(change func(*fakeDNS)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// log returns the questions asked so far, as "udp MX name.".
func (f *fakeDNS) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.queries...)
}

func (f *fakeDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	proto := w.RemoteAddr().Network()
	f.queries = append(f.queries, proto+" "+dns.TypeToString[q.Qtype]+" "+name)
	f.adAsked = append(f.adAsked, req.AuthenticatedData)
	if f.drop[name] {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	switch {
	case f.noEDNS && req.IsEdns0() != nil:
		m.Rcode = dns.RcodeFormatError
	case f.servfail[name]:
		m.Rcode = dns.RcodeServerFailure
	case f.truncate[name] && proto == "udp":
		m.Truncated = true
	default:
		f.answer(m, name, q.Qtype)
		m.AuthenticatedData = f.ad[name]
	}
	w.WriteMsg(m)
}

func (f *fakeDNS) answer(m *dns.Msg, name string, qtype uint16) {
	for hops := 0; hops < 20; hops++ {
		exists, cname := false, ""
		for _, rr := range f.rrs {
			h := rr.Header()
			if !strings.EqualFold(h.Name, name) {
				continue
			}
			exists = true
			if h.Rrtype == qtype {
				m.Answer = append(m.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c.Target
				m.Answer = append(m.Answer, rr)
			}
		}
		if !exists {
			m.Rcode = dns.RcodeNameError
		}
		if cname == "" || !f.chase {
			break
		}
		name = strings.ToLower(cname)
	}
	if len(m.Answer) == 0 || m.Rcode == dns.RcodeNameError {
		soa, _ := dns.NewRR(soaRR)
		m.Ns = append(m.Ns, soa)
	}
}

// testResolver is a Resolver asking only f, with short timeouts, a fixed
// clock and "us.example"/"localhost" as our names.
func testResolver(f *fakeDNS, clock *time.Time) *Resolver {
	return New(Config{
		Servers: []string{f.addr},
		IsLocal: func(h string) bool { return h == "us.example" || h == "localhost" },
		Timeout: time.Second, // generous: the test machine may be loaded; no test measures it
		Retries: 1,
		Now:     func() time.Time { return *clock },
		Shuffle: func(int, func(i, j int)) {},
	})
}
