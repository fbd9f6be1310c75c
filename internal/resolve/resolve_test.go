package resolve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/status"
)

var ctx = context.Background()

// zone is the test data most cases share.
var zone = []string{
	// preference order, given out of order
	"pref.example. 300 IN MX 30 mx3.pref.example.",
	"pref.example. 300 IN MX 10 MX1.Pref.Example.",
	"pref.example. 300 IN MX 20 mx2.pref.example.",
	// equal preferences
	"equal.example. 300 IN MX 10 a.equal.example.",
	"equal.example. 300 IN MX 10 b.equal.example.",
	"equal.example. 300 IN MX 10 c.equal.example.",
	"equal.example. 300 IN MX 20 d.equal.example.",
	// implicit MX
	"nomx.example. 300 IN A 192.0.2.15",
	"v6only.example. 300 IN AAAA 2001:db8::15",
	"txtonly.example. 300 IN TXT \"no mail here\"",
	// null MX, alone and among real ones
	"nullmx.example. 300 IN MX 0 .",
	"mixednull.example. 300 IN MX 0 .",
	"mixednull.example. 300 IN MX 10 mx.mixednull.example.",
	// our own names in the list
	"backup.example. 300 IN MX 10 mx1.backup.example.",
	"backup.example. 300 IN MX 20 US.Example.",
	"backup.example. 300 IN MX 20 mx2.backup.example.",
	"backup.example. 300 IN MX 30 mx3.backup.example.",
	"primary.example. 300 IN MX 10 us.example.",
	"primary.example. 300 IN MX 20 mx2.primary.example.",
	"tolocalhost.example. 300 IN MX 10 localhost.",
	"us.example. 300 IN A 192.0.2.1",
	// duplicates
	"dup.example. 300 IN MX 10 mx.dup.example.",
	"dup.example. 300 IN MX 20 MX.dup.example.",
	"dup.example. 300 IN MX 30 other.dup.example.",
	// CNAMEs
	"alias.example. 300 IN CNAME real.example.",
	"real.example. 300 IN MX 10 mx.real.example.",
	"mx.real.example. 60 IN CNAME host.real.example.",
	"host.real.example. 300 IN A 192.0.2.20",
	"host.real.example. 300 IN AAAA 2001:db8::20",
	"loop1.example. 300 IN CNAME loop2.example.",
	"loop2.example. 300 IN CNAME loop1.example.",
	// addresses
	"dual.example. 300 IN A 192.0.2.31",
	"dual.example. 300 IN A 192.0.2.30",
	"dual.example. 300 IN AAAA 2001:db8::31",
	"dual.example. 300 IN AAAA 2001:db8::30",
	// only an MX (a sender domain that exists without an address)
	"mxonly.example. 300 IN MX 10 mx.elsewhere.example.",
}

func hosts(mxs []MX) []string {
	var out []string
	for _, m := range mxs {
		out = append(out, fmt.Sprintf("%d %s", m.Pref, m.Host))
	}
	return out
}

func TestExchangers(t *testing.T) {
	f := newFakeDNS(t, zone...)
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	for _, tc := range []struct {
		domain string
		want   []string
	}{
		{"pref.example", []string{"10 mx1.pref.example", "20 mx2.pref.example", "30 mx3.pref.example"}},
		{"PREF.example.", []string{"10 mx1.pref.example", "20 mx2.pref.example", "30 mx3.pref.example"}},
		// With the identity shuffle equal preferences keep the server's order.
		{"equal.example", []string{"10 a.equal.example", "10 b.equal.example", "10 c.equal.example", "20 d.equal.example"}},
		{"mixednull.example", []string{"10 mx.mixednull.example"}},
		// us.example has preference 20: mx2 (20) and mx3 (30) go with it.
		{"backup.example", []string{"10 mx1.backup.example"}},
		{"dup.example", []string{"10 mx.dup.example", "30 other.dup.example"}},
		// The CNAME at the domain is followed; the MX host is returned as
		// named, its CNAME is for Addrs.
		{"alias.example", []string{"10 mx.real.example"}},
		{"[192.0.2.9]", []string{"0 192.0.2.9"}},
		{"[IPv6:2001:db8::9]", []string{"0 2001:db8::9"}},
	} {
		got, err := r.Exchangers(ctx, tc.domain)
		if err != nil {
			t.Errorf("%s: %v", tc.domain, err)
			continue
		}
		if !reflect.DeepEqual(hosts(got), tc.want) {
			t.Errorf("%s: got %q, want %q", tc.domain, hosts(got), tc.want)
		}
	}
}

func TestImplicitMX(t *testing.T) {
	f := newFakeDNS(t, zone...)
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	for _, d := range []string{"nomx.example", "v6only.example"} {
		got, err := r.Exchangers(ctx, d)
		if err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if want := []MX{{Host: d, Implicit: true}}; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", d, got, want)
		}
	}
}

// wantStatus checks that err is a *status.Error with the given reply.
func wantStatus(t *testing.T, what string, err error, want string) {
	t.Helper()
	var se *status.Error
	if !errors.As(err, &se) {
		t.Errorf("%s: error %v (%T), want %q", what, err, err, want)
		return
	}
	if se.Error() != want {
		t.Errorf("%s: got %q, want %q", what, se.Error(), want)
	}
}

func TestExchangersErrors(t *testing.T) {
	f := newFakeDNS(t, zone...)
	f.set(f.servfail, "servfail.example")
	f.set(f.drop, "timeout.example")
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	for _, tc := range []struct {
		domain, want string
		temporary    bool
	}{
		{"nxdomain.invalid", "550 5.1.2 Host unknown (Name server: nxdomain.invalid: host not found)", false},
		{"txtonly.example", "550 5.1.2 Host unknown (Name server: txtonly.example: no data known)", false},
		{"nullmx.example", "556 5.1.10 Host does not accept mail: MX 0 .", false},
		{"primary.example", "554 5.3.5 primary.example config error: mail loops back to me (MX problem?)", false},
		{"tolocalhost.example", "554 5.3.5 tolocalhost.example config error: mail loops back to me (MX problem?)", false},
		// An implicit MX that is one of our names is the same loop.
		{"us.example", "554 5.3.5 us.example config error: mail loops back to me (MX problem?)", false},
		{"servfail.example", "451 4.4.3 Deferred: Name server: servfail.example: host name lookup failure", true},
		{"timeout.example", "451 4.4.3 Deferred: Name server: timeout.example: host name lookup failure", true},
		{"loop1.example", "451 4.4.3 Deferred: DNS failure: CNAME loop for loop1.example", true},
		{"[not an address]", "550 5.1.2 Host unknown (Name server: [not an address]: host not found)", false},
	} {
		got, err := r.Exchangers(ctx, tc.domain)
		if err == nil {
			t.Errorf("%s: got %v, want an error", tc.domain, got)
			continue
		}
		wantStatus(t, tc.domain, err, tc.want)
		if se := status.From(err); se.Temporary() != tc.temporary {
			t.Errorf("%s: temporary = %v", tc.domain, se.Temporary())
		}
	}
}

// reverse is a deterministic "shuffle" that visibly reorders.
func reverse(n int, swap func(i, j int)) {
	for i := 0; i < n/2; i++ {
		swap(i, n-1-i)
	}
}

func TestEqualPreferencesShuffled(t *testing.T) {
	f := newFakeDNS(t, zone...)
	r := New(Config{Servers: []string{f.addr}, Timeout: time.Second, Retries: 1, Shuffle: reverse})
	got, err := r.Exchangers(ctx, "equal.example")
	if err != nil {
		t.Fatal(err)
	}
	// The shuffle decides among equal preferences; preference still rules.
	want := []string{"10 c.equal.example", "10 b.equal.example", "10 a.equal.example", "20 d.equal.example"}
	if !reflect.DeepEqual(hosts(got), want) {
		t.Errorf("got %q, want %q", hosts(got), want)
	}

	// The default source: every host of preference 10 comes first at times,
	// and d (20) never does. From the cache after the first call.
	r = New(Config{Servers: []string{f.addr}, Timeout: time.Second, Retries: 1})
	before := len(f.log())
	first := map[string]int{}
	for i := 0; i < 300; i++ {
		got, err := r.Exchangers(ctx, "equal.example")
		if err != nil {
			t.Fatal(err)
		}
		if got[3].Host != "d.equal.example" {
			t.Fatalf("preference 20 not last: %q", hosts(got))
		}
		first[got[0].Host]++
	}
	for _, h := range []string{"a.equal.example", "b.equal.example", "c.equal.example"} {
		if first[h] == 0 {
			t.Errorf("%s never first in 300 tries: %v", h, first)
		}
	}
	if n := len(f.log()) - before; n != 1 {
		t.Errorf("%d questions for 300 lookups, want 1 (cached)", n)
	}
}

func TestCNAMEWithoutChasingServer(t *testing.T) {
	// An authoritative server that gives only the CNAME: the resolver asks
	// again for the target.
	f := newFakeDNS(t, zone...)
	f.with(func(f *fakeDNS) { f.chase = false })
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	got, err := r.Exchangers(ctx, "alias.example")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10 mx.real.example"}; !reflect.DeepEqual(hosts(got), want) {
		t.Errorf("got %q, want %q", hosts(got), want)
	}
	want := []string{"udp MX alias.example.", "udp MX real.example."}
	if !reflect.DeepEqual(f.log(), want) {
		t.Errorf("questions %q, want %q", f.log(), want)
	}
	addrs, err := r.Addrs(ctx, "mx.real.example")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(addrs) != "[2001:db8::20 192.0.2.20]" {
		t.Errorf("addrs %v", addrs)
	}
}

func TestTruncatedAnswerRetriedOverTCP(t *testing.T) {
	var recs []string
	for i := 1; i <= 40; i++ {
		recs = append(recs, fmt.Sprintf("big.example. 300 IN MX %d mx%02d.a-rather-long-name-to-fill-the-packet.big.example.", i, i))
	}
	f := newFakeDNS(t, recs...)
	f.set(f.truncate, "big.example")
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	got, err := r.Exchangers(ctx, "big.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 || got[0].Host != "mx01.a-rather-long-name-to-fill-the-packet.big.example" || got[39].Pref != 40 {
		t.Errorf("got %d exchangers: %q", len(got), hosts(got))
	}
	if want := []string{"udp MX big.example.", "tcp MX big.example."}; !reflect.DeepEqual(f.log(), want) {
		t.Errorf("questions %q, want %q", f.log(), want)
	}

	// A server that ignores the EDNS0 size and sends the whole answer in
	// one datagram larger than asked for, without TC: also asked over TCP.
	f2 := newFakeDNS(t, recs...)
	r = testResolver(f2, &clock)
	if got, err := r.Exchangers(ctx, "big.example"); err != nil || len(got) != 40 {
		t.Fatalf("oversized datagram: %d exchangers, %v", len(got), err)
	}
	if want := []string{"udp MX big.example.", "tcp MX big.example."}; !reflect.DeepEqual(f2.log(), want) {
		t.Errorf("oversized datagram: questions %q, want %q", f2.log(), want)
	}
}

func TestServerFallback(t *testing.T) {
	bad := newFakeDNS(t)
	bad.set(bad.servfail, "pref.example")
	silent := newFakeDNS(t)
	silent.set(silent.drop, "pref.example")
	good := newFakeDNS(t, zone...)
	r := New(Config{Servers: []string{bad.addr, silent.addr, good.addr}, Timeout: time.Second, Retries: 1})
	got, err := r.Exchangers(ctx, "pref.example")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("got %q", hosts(got))
	}
	for _, s := range []*fakeDNS{bad, silent, good} {
		if len(s.log()) != 1 {
			t.Errorf("server %s asked %q", s.addr, s.log())
		}
	}
}

func TestRetriesRounds(t *testing.T) {
	f := newFakeDNS(t)
	f.set(f.servfail, "x.example")
	r := New(Config{Servers: []string{f.addr}, Timeout: time.Second, Retries: 3})
	if _, err := r.Exchangers(ctx, "x.example"); err == nil {
		t.Fatal("no error")
	}
	if n := len(f.log()); n != 3 {
		t.Errorf("%d tries, want 3", n)
	}
}

func TestFormerrToEDNSRetriedPlain(t *testing.T) {
	f := newFakeDNS(t, zone...)
	f.with(func(f *fakeDNS) { f.noEDNS = true })
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	got, err := r.Exchangers(ctx, "pref.example")
	if err != nil || len(got) != 3 {
		t.Fatalf("got %q, %v", hosts(got), err)
	}
}

func TestAddrs(t *testing.T) {
	f := newFakeDNS(t, zone...)
	f.set(f.servfail, "servfail.example")
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	for _, tc := range []struct{ host, want string }{
		{"dual.example", "[2001:db8::31 2001:db8::30 192.0.2.31 192.0.2.30]"},
		{"nomx.example", "[192.0.2.15]"},
		{"v6only.example", "[2001:db8::15]"},
		{"mx.real.example", "[2001:db8::20 192.0.2.20]"},
		{"192.0.2.77", "[192.0.2.77]"},
		{"[192.0.2.78]", "[192.0.2.78]"},
		{"2001:db8::79", "[2001:db8::79]"},
		{"nxdomain.invalid", "550 5.1.2 Host unknown (Name server: nxdomain.invalid: host not found)"},
		{"txtonly.example", "550 5.1.2 Host unknown (Name server: txtonly.example: no data known)"},
		{"servfail.example", "451 4.4.3 Deferred: Name server: servfail.example: host name lookup failure"},
		{"bücher.example", "550 5.1.2 Host unknown (Name server: bücher.example: host not found)"},
	} {
		got, err := r.Addrs(ctx, tc.host)
		if strings.HasPrefix(tc.want, "[") {
			if err != nil || fmt.Sprint(got) != tc.want {
				t.Errorf("%s: got %v, %v; want %s", tc.host, got, err, tc.want)
			}
			continue
		}
		wantStatus(t, tc.host, err, tc.want)
	}
}

func TestCacheHonoursTTL(t *testing.T) {
	f := newFakeDNS(t, zone...)
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	count := func(q string) int {
		n := 0
		for _, l := range f.log() {
			if strings.HasSuffix(l, " "+q) {
				n++
			}
		}
		return n
	}
	lookup := func(host string) {
		t.Helper()
		r.Addrs(ctx, host)
	}
	// mx.real.example's chain: CNAME TTL 60, A TTL 300: kept 60 s.
	lookup("mx.real.example")
	clock = clock.Add(59 * time.Second)
	lookup("mx.real.example")
	if n := count("A mx.real.example."); n != 1 {
		t.Errorf("asked %d times within the TTL", n)
	}
	clock = clock.Add(time.Second)
	lookup("mx.real.example")
	if n := count("A mx.real.example."); n != 2 {
		t.Errorf("asked %d times after the TTL, want 2", n)
	}
	// NXDOMAIN is kept for the SOA minimum (60 s), not its TTL (3600 s).
	lookup("gone.example")
	clock = clock.Add(59 * time.Second)
	lookup("gone.example")
	if n := count("A gone.example."); n != 1 {
		t.Errorf("negative answer asked %d times within its TTL", n)
	}
	clock = clock.Add(time.Second)
	lookup("gone.example")
	if n := count("A gone.example."); n != 2 {
		t.Errorf("negative answer asked %d times after its TTL, want 2", n)
	}
	// Temporary failures are not kept.
	f.set(f.servfail, "flaky.example")
	lookup("flaky.example")
	lookup("flaky.example")
	if n := count("A flaky.example."); n != 2 {
		t.Errorf("SERVFAIL asked %d times, want 2", n)
	}
}

func TestCacheBounded(t *testing.T) {
	f := newFakeDNS(t, zone...)
	r := New(Config{Servers: []string{f.addr}, Timeout: time.Second, Retries: 1, CacheSize: 3})
	for _, h := range []string{"dual.example", "nomx.example", "v6only.example", "host.real.example"} {
		if _, err := r.Addrs(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.cache.len(); n > 3 {
		t.Errorf("cache holds %d answers, bound 3", n)
	}
}

func TestSenderDomain(t *testing.T) {
	f := newFakeDNS(t, zone...)
	f.set(f.servfail, "servfail.example")
	f.set(f.drop, "timeout.example")
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	for _, tc := range []struct{ sender, want string }{
		{"someone@nomx.example", ""},
		{"someone@v6only.example", ""},
		{"someone@mxonly.example", ""},
		{"someone@alias.example", ""},
		{"someone@us.example", ""},
		{"someone@US.EXAMPLE.", ""},
		{"someone@[192.0.2.1]", ""},
		{"someone", ""},
		{"", ""},
		{"someone@nxdomain.invalid", "553 5.1.8 Domain of sender address someone@nxdomain.invalid does not exist"},
		{"someone@txtonly.example", "553 5.1.8 Domain of sender address someone@txtonly.example does not exist"},
		{"someone@servfail.example", "451 4.1.8 Domain of sender address someone@servfail.example does not resolve"},
		{"someone@timeout.example", "451 4.1.8 Domain of sender address someone@timeout.example does not resolve"},
		{"someone@bad..name", "553 5.1.8 Domain of sender address someone@bad..name does not exist"},
	} {
		err := r.CheckSender(ctx, tc.sender)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%q: %v", tc.sender, err)
			}
			continue
		}
		wantStatus(t, tc.sender, err, tc.want)
	}
	// Our own names and literals are fine without a question.
	for _, l := range f.log() {
		if strings.Contains(l, "us.example") {
			t.Errorf("asked %q for our own name", l)
		}
	}
	wantStatus(t, "SenderDomain", r.SenderDomain(ctx, "nxdomain.invalid"),
		"553 5.1.8 Domain of sender address nxdomain.invalid does not exist")
}

func TestResolvConf(t *testing.T) {
	rc := parseResolvConf(strings.NewReader(`# comment
; other comment
domain example.org
search example.org
nameserver 127.0.0.53
nameserver ::1
nameserver fe80::1%eth0
nameserver 192.0.2.4
nameserver not-an-address
options ndots:2 timeout:3 attempts:9 rotate
`))
	want := resolvConf{servers: []string{"127.0.0.53:53", "[::1]:53", "[fe80::1%eth0]:53"}, timeout: 3 * time.Second, attempts: 5}
	if !reflect.DeepEqual(rc, want) {
		t.Errorf("got %+v, want %+v", rc, want)
	}
	if rc := parseResolvConf(strings.NewReader("options timeout:90\n")); rc.timeout != 30*time.Second {
		t.Errorf("timeout %v, want the 30 s cap", rc.timeout)
	}
}

func TestTransportDefaults(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/resolv.conf"
	write := func(s string) {
		t.Helper()
		if err := writeFile(path, s); err != nil {
			t.Fatal(err)
		}
	}
	write("nameserver 192.0.2.53\noptions timeout:1 attempts:4\n")
	tr := newTransport(Config{ResolvConf: path})
	if want := (transport{servers: []server{{addr: "192.0.2.53:53"}}, timeout: time.Second, tries: 4}); !reflect.DeepEqual(tr, want) {
		t.Errorf("from resolv.conf: %+v, want %+v", tr, want)
	}
	tr = newTransport(Config{ResolvConf: path, Servers: []string{"127.0.0.1:5353", "::1"}, Timeout: 2 * time.Second, Retries: 1})
	if want := (transport{servers: []server{{addr: "127.0.0.1:5353"}, {addr: "[::1]:53"}}, timeout: 2 * time.Second, tries: 1}); !reflect.DeepEqual(tr, want) {
		t.Errorf("from Config: %+v, want %+v", tr, want)
	}
	write("search example.org\n")
	tr = newTransport(Config{ResolvConf: path})
	if want := (transport{servers: []server{{addr: "127.0.0.1:53"}}, timeout: 5 * time.Second, tries: 2}); !reflect.DeepEqual(tr, want) {
		t.Errorf("defaults: %+v, want %+v", tr, want)
	}
	// The AD bit is trusted from marked servers only: resolv.conf's
	// trust-ad marks its own servers, not ResolverServers.
	write("nameserver 192.0.2.53\nnameserver 192.0.2.54\noptions trust-ad\n")
	tr = newTransport(Config{ResolvConf: path, Timeout: time.Second, Retries: 1})
	if want := []server{{addr: "192.0.2.53:53", validating: true}, {addr: "192.0.2.54:53", validating: true}}; !reflect.DeepEqual(tr.servers, want) {
		t.Errorf("trust-ad: %+v, want %+v", tr.servers, want)
	}
	tr = newTransport(Config{ResolvConf: path, Servers: []string{"127.0.0.1:5353", "127.0.0.2"}, Validating: []string{"127.0.0.2:53"}})
	if want := []server{{addr: "127.0.0.1:5353"}, {addr: "127.0.0.2:53", validating: true}}; !reflect.DeepEqual(tr.servers, want) {
		t.Errorf("Validating: %+v, want %+v", tr.servers, want)
	}
	tr = newTransport(Config{ResolvConf: path, Servers: []string{"127.0.0.1:5353"}, TrustAD: true})
	if want := []server{{addr: "127.0.0.1:5353", validating: true}}; !reflect.DeepEqual(tr.servers, want) {
		t.Errorf("TrustAD: %+v, want %+v", tr.servers, want)
	}
}

func TestContextCancelled(t *testing.T) {
	f := newFakeDNS(t, zone...)
	clock := time.Unix(1_800_000_000, 0)
	r := testResolver(f, &clock)
	c, cancel := context.WithCancel(ctx)
	cancel()
	_, err := r.Exchangers(c, "pref.example")
	if se := status.From(err); err == nil || !se.Temporary() || !errors.Is(err, context.Canceled) {
		t.Errorf("got %v", err)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
