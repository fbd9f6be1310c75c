package test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/tlspolicy/testca"
)

// The black-box tests of outbound TLS (DANE, MTA-STS, the TLS policy map,
// TLS reports) run the binary against next hops on 127.0.0.x.
//
// How the AD bit is had: posthorn trusts it only from a DNS server the
// cf marks validating (ResolverOptions=+TRUSTAD). A real deployment runs
// a validating resolver on the host (unbound on 127.0.0.1) and marks it.
// These tests cannot sign zones, so an in-process DNS server stands in
// for the validating resolver: it sets AD on its answers (tpDNS), and the
// cf marks it. dnsmasq is the real DNS server of two cases: serving the
// records itself it sets no AD (so DANE must not apply, marked or not),
// and forwarding to the stand-in with --proxy-dnssec it passes the AD bit
// on (so DANE applies through it, as through a local forwarder).

// tpDNS is the stand-in validating resolver: an authoritative server for
// its records that sets AD on every answer, UDP and TCP on one port.
type tpDNS struct {
	addr string
	port int
	mu   sync.Mutex
	rrs  []dns.RR
}

func tpStartDNS(t *testing.T, records ...string) *tpDNS {
	t.Helper()
	d := &tpDNS{}
	d.add(t, records...)
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
	d.addr = pc.LocalAddr().String()
	d.port = pc.LocalAddr().(*net.UDPAddr).Port
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: d}, {Listener: l, Handler: d}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go s.ActivateAndServe()
		<-started
		t.Cleanup(func() { s.Shutdown() })
	}
	return d
}

func (d *tpDNS) add(t *testing.T, records ...string) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range records {
		rr, err := dns.NewRR(r)
		if err != nil {
			t.Fatalf("%q: %v", r, err)
		}
		d.rrs = append(d.rrs, rr)
	}
}

func (d *tpDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := req.Question[0]
	m := new(dns.Msg)
	m.SetReply(req)
	exists := false
	for _, rr := range d.rrs {
		if strings.EqualFold(rr.Header().Name, q.Name) {
			exists = true
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			}
		}
	}
	if !exists {
		m.Rcode = dns.RcodeNameError
	}
	if len(m.Answer) == 0 {
		soa, _ := dns.NewRR("test. 60 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60")
		m.Ns = append(m.Ns, soa)
	}
	m.AuthenticatedData = true
	w.WriteMsg(m)
}

// tpSink is a next hop: go-smtp on ip, STARTTLS with cert (nil: none).
type tpSink struct {
	port    int
	mu      sync.Mutex
	msgs    []tpMsg
	mails   int
	session int
}

type tpMsg struct {
	rcpts []string
	data  []byte
	tls   bool
}

func (s *tpSink) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.session++
	s.mu.Unlock()
	return &tpSession{s: s, c: c}, nil
}

type tpSession struct {
	s   *tpSink
	c   *smtp.Conn
	cur tpMsg
}

func (x *tpSession) Mail(string, *smtp.MailOptions) error {
	x.s.mu.Lock()
	x.s.mails++
	x.s.mu.Unlock()
	_, x.cur.tls = x.c.TLSConnectionState()
	return nil
}
func (x *tpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.cur.rcpts = append(x.cur.rcpts, to)
	return nil
}
func (x *tpSession) Data(r io.Reader) error {
	x.cur.data, _ = io.ReadAll(r)
	x.s.mu.Lock()
	x.s.msgs = append(x.s.msgs, x.cur)
	x.s.mu.Unlock()
	return nil
}
func (x *tpSession) Reset()        { x.cur = tpMsg{} }
func (x *tpSession) Logout() error { return nil }

func (s *tpSink) got() ([]tpMsg, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]tpMsg(nil), s.msgs...), s.mails
}

func tpStartSink(t *testing.T, name, ip string, cert *tls.Certificate) *tpSink {
	t.Helper()
	s := &tpSink{}
	srv := smtp.NewServer(s)
	srv.Domain = name
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return s
}

// tpTLSA is "3 1 1 <sha256 of the key>" for c.
func tpTLSA(c testca.Cert) string {
	d := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return "3 1 1 " + hex.EncodeToString(d[:])
}

// tpSend submits one message for rcpt and delivers it at once (-odi); the
// log lines come on stderr when there is no syslog.
func tpSend(t *testing.T, r *root, rcpt string) result {
	t.Helper()
	res := run(t, binary(t), "Subject: tls "+rcpt+"\n\nthe body for "+rcpt+"\n", "-C", r.cf, "-odi", "-f", "alice@posthorn.test", rcpt)
	if res.code != 0 {
		t.Fatalf("submission for %s: exit %d\n%s", rcpt, res.code, res.stderr)
	}
	return res
}

// tpLog checks a log line when the binary logs to stderr (no syslog).
func tpLog(t *testing.T, res result, want string) {
	t.Helper()
	if _, err := os.Stat("/dev/log"); err == nil {
		return // the lines went to syslog
	}
	if !strings.Contains(res.stderr, want) {
		t.Errorf("no %q in the log:\n%s", want, res.stderr)
	}
}

func tpRoot(t *testing.T, dnsAddr string, ca *testca.CA, mailertable string, extra ...string) *root {
	t.Helper()
	lines := append([]string{"O ResolverServers=" + dnsAddr, "O ResolverOptions=+TRUSTAD", "O DeliveryMode=interactive"}, extra...)
	r := newRoot(t, lines...)
	ca.WriteRoot(t, r.path("etc/ca.pem"))
	cf, _ := os.ReadFile(r.cf)
	cf = append(cf, []byte("O CACertFile="+r.path("etc/ca.pem")+"\nO TLSPolicyMap="+r.path("etc/tls_policy")+"\n")...)
	os.WriteFile(r.cf, cf, 0o644)
	os.WriteFile(r.path("etc/mailertable"), []byte(mailertable), 0o644)
	os.WriteFile(r.path("etc/aliases"), []byte("postmaster: root\n"), 0o644)
	return r
}

// TestTLSPolicyDANEBinary: DANE through the binary: a matching TLSA
// record gives authenticated TLS; a mismatch, or STARTTLS stripped from
// EHLO, defers with nothing sent and the job kept, mailq saying why;
// -bt's /tls names the policy; a policy map entry overrides.
func TestTLSPolicyDANEBinary(t *testing.T) {
	ca := testca.New(t, "posthorn black-box root", time.Now())
	good := ca.Valid(t, "mx.good.test")
	bad := ca.Valid(t, "mx.bad.test")
	other := ca.Valid(t, "mx.bad.test")
	sGood := tpStartSink(t, "mx.good.test", "127.0.0.101", &good.TLS)
	sBad := tpStartSink(t, "mx.bad.test", "127.0.0.102", &bad.TLS)
	sStrip := tpStartSink(t, "mx.strip.test", "127.0.0.103", nil)
	sMap := tpStartSink(t, "mx.map.test", "127.0.0.104", &bad.TLS)
	d := tpStartDNS(t,
		"good.test. 300 IN MX 10 mx.good.test.", "mx.good.test. 300 IN A 127.0.0.101",
		fmt.Sprintf("_%d._tcp.mx.good.test. 300 IN TLSA %s", sGood.port, tpTLSA(good)),
		"bad.test. 300 IN MX 10 mx.bad.test.", "mx.bad.test. 300 IN A 127.0.0.102",
		fmt.Sprintf("_%d._tcp.mx.bad.test. 300 IN TLSA %s", sBad.port, tpTLSA(other)),
		"strip.test. 300 IN MX 10 mx.strip.test.", "mx.strip.test. 300 IN A 127.0.0.103",
		fmt.Sprintf("_%d._tcp.mx.strip.test. 300 IN TLSA %s", sStrip.port, tpTLSA(good)),
		"map.test. 300 IN MX 10 mx.map.test.", "mx.map.test. 300 IN A 127.0.0.104",
		fmt.Sprintf("_%d._tcp.mx.map.test. 300 IN TLSA %s", sMap.port, tpTLSA(other)),
	)
	mt := fmt.Sprintf("good.test esmtp:good.test:%d\nbad.test esmtp:bad.test:%d\nstrip.test esmtp:strip.test:%d\nmap.test esmtp:map.test:%d\n",
		sGood.port, sBad.port, sStrip.port, sMap.port)
	r := tpRoot(t, d.addr, ca, mt)
	// The map turns DANE off for map.test (a peer with a broken record).
	os.WriteFile(r.path("etc/tls_policy"), []byte("map.test may\n"), 0o644)

	res := tpSend(t, r, "bob@good.test")
	if msgs, _ := sGood.got(); len(msgs) != 1 || !msgs[0].tls || !bytes.Contains(msgs[0].data, []byte("the body for bob@good.test")) {
		t.Fatalf("good.test: %d messages %+v\n%s", len(msgs), msgs, res.stderr)
	}
	tpLog(t, res, "STARTTLS=client, relay=mx.good.test., version=TLSv1.3, verify=TRUSTED, cipher=")
	tpLog(t, res, "policy=dane")
	tpLog(t, res, "stat=Sent (")

	res = tpSend(t, r, "bob@bad.test")
	if _, mails := sBad.got(); mails != 0 {
		t.Errorf("bad.test: %d MAIL commands: the message went out without DANE", mails)
	}
	tpLog(t, res, "STARTTLS=client, relay=mx.bad.test., verify=FAIL, policy=dane, error: no matching TLSA record")
	tpLog(t, res, "stat=Deferred: 403 4.7.0 TLS handshake failed (DANE: no matching TLSA record)")

	res = tpSend(t, r, "bob@strip.test")
	if _, mails := sStrip.got(); mails != 0 {
		t.Errorf("strip.test: %d MAIL commands in plain text", mails)
	}
	tpLog(t, res, "stat=Deferred: 403 4.7.0 TLS required (DANE): mx.strip.test. does not offer STARTTLS")

	res = tpSend(t, r, "bob@map.test")
	if msgs, _ := sMap.got(); len(msgs) != 1 || !msgs[0].tls {
		t.Errorf("map.test: %+v\n%s", msgs, res.stderr)
	}
	tpLog(t, res, "verify=FAIL, cipher=")
	tpLog(t, res, "policy=map")

	// Nothing lost: both deferred jobs are queued, mailq says why (in
	// full with -v; sendmail's 60 columns without).
	q := run(t, binary(t), "", "-C", r.cf, "-bp", "-v")
	for _, want := range []string{"(Deferred: 403 4.7.0 TLS handshake failed (DANE: no matching TLSA record))", "bob@bad.test",
		"(Deferred: 403 4.7.0 TLS required (DANE): mx.strip.test. does not offer STARTTLS)", "bob@strip.test", "Total requests: 2"} {
		if !strings.Contains(q.stdout, want) {
			t.Errorf("mailq -v lacks %q:\n%s", want, q.stdout)
		}
	}
	if q := run(t, binary(t), "", "-C", r.cf, "-bp"); !strings.Contains(q.stdout, "(Deferred: 403 4.7.0 TLS handshake failed (DANE: no matching )") {
		t.Errorf("mailq:\n%s", q.stdout)
	}

	bt := run(t, binary(t), "/tls good.test\n/tls bad.test\n/tls map.test\n", "-C", r.cf, "-bt")
	for _, want := range []string{
		fmt.Sprintf("good.test is routed to good.test:%d (mailer esmtp)", sGood.port),
		"the AD bit of the DNS servers is trusted (ResolverOptions=+TRUSTAD)",
		fmt.Sprintf("mx.good.test: policy=dane, verify: 1 usable TLSA record(s) at _%d._tcp.mx.good.test", sGood.port),
		"\tTLSA " + tpTLSA(good),
		"mx.map.test: policy=map, may: level may",
	} {
		if !strings.Contains(bt.stdout, want) {
			t.Errorf("-bt /tls lacks %q:\n%s", want, bt.stdout)
		}
	}
}

// tpDnsmasq runs dnsmasq on 127.0.0.1 with args; skipped when it is not
// installed.
func tpDnsmasq(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, err := os.Stat("/usr/sbin/dnsmasq"); err != nil {
			t.Skip("dnsmasq not installed")
		}
		bin = "/usr/sbin/dnsmasq"
	}
	port := freePort(t)
	cmd := exec.Command(bin, append([]string{"--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--listen-address=127.0.0.1", "--bind-interfaces", "--pid-file=", "--port=" + strconv.Itoa(port), "--log-facility=-"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	c := &dns.Client{Timeout: time.Second}
	q := new(dns.Msg)
	q.SetQuestion("probe.invalid.", dns.TypeA)
	for i := 0; ; i++ {
		if _, _, err := c.Exchange(q, addr); err == nil {
			return addr
		}
		if i == 50 {
			t.Fatalf("dnsmasq does not answer:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tlsaRdata is a TLSA record's data as dnsmasq's --dns-rr takes it.
func tlsaRdata(record string) string {
	f := strings.Fields(record)
	var b []byte
	for _, n := range f[:3] {
		v, _ := strconv.Atoi(n)
		b = append(b, byte(v))
	}
	data, _ := hex.DecodeString(f[3])
	return hex.EncodeToString(append(b, data...))
}

// TestTLSPolicyDnsmasq: dnsmasq as the DNS server. Its own records carry
// no AD bit, so DANE does not apply even with the server marked
// validating (the mismatching record is ignored and the message goes out
// opportunistically); forwarding to the validating stand-in with
// --proxy-dnssec, it passes AD on and DANE applies (the mismatch defers).
func TestTLSPolicyDnsmasq(t *testing.T) {
	ca := testca.New(t, "posthorn black-box root", time.Now())
	c := ca.Valid(t, "mx.dm.test")
	other := ca.Valid(t, "mx.dm.test")
	s := tpStartSink(t, "mx.dm.test", "127.0.0.111", &c.TLS)
	tlsaName := fmt.Sprintf("_%d._tcp.mx.dm.test", s.port)
	local := tpDnsmasq(t, "--mx-host=dm.test,mx.dm.test,10", "--host-record=mx.dm.test,127.0.0.111",
		"--dns-rr="+tlsaName+",52,"+tlsaRdata(tpTLSA(other)))
	// dnsmasq serves the record, without AD (it validates nothing).
	q := new(dns.Msg)
	q.SetQuestion(tlsaName+".", dns.TypeTLSA)
	q.AuthenticatedData = true
	if a, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, local); err != nil || len(a.Answer) != 1 || a.AuthenticatedData {
		t.Fatalf("dnsmasq's TLSA answer: %v %v", a, err)
	}
	mt := fmt.Sprintf("dm.test esmtp:dm.test:%d\n", s.port)
	r := tpRoot(t, local, ca, mt)
	res := tpSend(t, r, "bob@dm.test")
	if msgs, _ := s.got(); len(msgs) != 1 || !msgs[0].tls {
		t.Fatalf("not delivered opportunistically: %+v\n%s", msgs, res.stderr)
	}
	tpLog(t, res, "verify=OK, cipher=")
	tpLog(t, res, "policy=opportunistic")

	// dnsmasq forwarding to the validating stand-in, AD passed on.
	up := tpStartDNS(t, "dm.test. 300 IN MX 10 mx.dm.test.", "mx.dm.test. 300 IN A 127.0.0.111", tlsaName+". 300 IN TLSA "+tpTLSA(other))
	fwd := tpDnsmasq(t, fmt.Sprintf("--server=127.0.0.1#%d", up.port), "--proxy-dnssec")
	r2 := tpRoot(t, fwd, ca, mt)
	res = tpSend(t, r2, "carol@dm.test")
	if msgs, mails := s.got(); len(msgs) != 1 || mails != 1 {
		t.Errorf("sent despite DANE: %d messages, %d MAIL\n%s", len(msgs), mails, res.stderr)
	}
	tpLog(t, res, "stat=Deferred: 403 4.7.0 TLS handshake failed (DANE: no matching TLSA record)")
}

// tpPolicyServer serves MTA-STS policies on ip:443 (by Host), with a
// certificate for every mta-sts.<domain>; skipped when port 443 cannot be
// bound (the policy URL has no port).
func tpPolicyServer(t *testing.T, ca *testca.CA, ip string, policies map[string]string) {
	t.Helper()
	l, err := net.Listen("tcp", ip+":443")
	if err != nil {
		t.Skipf("cannot listen on %s:443 for MTA-STS policies: %v", ip, err)
	}
	var names []string
	for d := range policies {
		names = append(names, "mta-sts."+d)
	}
	cert := ca.Valid(t, names...)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := policies[strings.TrimPrefix(r.Host, "mta-sts.")]
		if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, p)
	}), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert.TLS}}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
}

// TestTLSPolicyMTASTSBinary: MTA-STS through the binary, with dnsmasq
// serving the TXT records (MTA-STS needs no DNSSEC): an enforce policy
// delivers with a verified certificate, defers a host that strips
// STARTTLS; the policy is cached below the queue; each session is kept
// for TLS reports and -bt /tlsrpt lists them.
func TestTLSPolicyMTASTSBinary(t *testing.T) {
	ca := testca.New(t, "posthorn black-box root", time.Now())
	const policy = "version: STSv1\nmode: enforce\nmx: *.sts.test\nmx: *.sts2.test\nmax_age: 86400\n"
	tpPolicyServer(t, ca, "127.0.0.122", map[string]string{"sts.test": policy, "sts2.test": policy})
	good := ca.Valid(t, "mx.sts.test")
	s1 := tpStartSink(t, "mx.sts.test", "127.0.0.121", &good.TLS)
	s2 := tpStartSink(t, "mx.sts2.test", "127.0.0.123", nil)
	dnsAddr := tpDnsmasq(t,
		"--mx-host=sts.test,mx.sts.test,10", "--host-record=mx.sts.test,127.0.0.121",
		"--mx-host=sts2.test,mx.sts2.test,10", "--host-record=mx.sts2.test,127.0.0.123",
		"--host-record=mta-sts.sts.test,127.0.0.122", "--host-record=mta-sts.sts2.test,127.0.0.122",
		"--txt-record=_mta-sts.sts.test,v=STSv1; id=20300101;", "--txt-record=_mta-sts.sts2.test,v=STSv1; id=20300101;",
		"--txt-record=_smtp._tls.sts.test,v=TLSRPTv1; rua=mailto:tlsrpt@report.test",
		"--txt-record=_smtp._tls.sts2.test,v=TLSRPTv1; rua=mailto:tlsrpt@report.test")
	mt := fmt.Sprintf("sts.test esmtp:sts.test:%d\nsts2.test esmtp:sts2.test:%d\n", s1.port, s2.port)
	r := tpRoot(t, dnsAddr, ca, mt, "O TLSReports=True")

	res := tpSend(t, r, "bob@sts.test")
	if msgs, _ := s1.got(); len(msgs) != 1 || !msgs[0].tls {
		t.Fatalf("sts.test: %+v\n%s", msgs, res.stderr)
	}
	tpLog(t, res, "STARTTLS=client, relay=mx.sts.test., version=TLSv1.3, verify=OK, cipher=")
	tpLog(t, res, "policy=sts")
	tpLog(t, res, "MTA-STS policy of sts.test fetched: id=20300101, mode=enforce, max_age=86400")
	if b, err := os.ReadFile(r.path("spool/mqueue/.mta-sts/sts.test.json")); err != nil || !bytes.Contains(b, []byte(`"id":"20300101"`)) {
		t.Errorf("policy cache: %s %v", b, err)
	}

	res = tpSend(t, r, "bob@sts2.test")
	if _, mails := s2.got(); mails != 0 {
		t.Errorf("sts2.test: %d MAIL commands in plain text", mails)
	}
	tpLog(t, res, "stat=Deferred: 403 4.7.0 TLS required (MTA-STS): mx.sts2.test. does not offer STARTTLS")

	bt := run(t, binary(t), "/tlsrpt\n/tls sts.test\n", "-C", r.cf, "-bt")
	day := time.Now().UTC().Format("2006-01-02")
	for _, want := range []string{
		day + " sts.test\n\tpolicy sts (mx *.sts.test, *.sts2.test): 1 successful, 0 failed\n",
		day + " sts2.test\n\tpolicy sts (mx *.sts.test, *.sts2.test): 0 successful, 1 failed\n\t\t1 starttls-not-supported mx=mx.sts2.test ip=127.0.0.123: STARTTLS not offered\n",
		"MTA-STS: id 20300101, mode enforce, mx *.sts.test *.sts2.test, max_age 86400 (cache, until ",
		"mx.sts.test: policy=sts, verify: MTA-STS policy mode enforce: STARTTLS required, a certificate valid for mx.sts.test",
	} {
		if !strings.Contains(bt.stdout, want) {
			t.Errorf("-bt lacks %q:\n%s", want, bt.stdout)
		}
	}
}

// TestTLSReportDaily: the daemon queues the previous day's RFC 8460
// report for the domain's rua address and delivers it: gzip'd JSON in a
// multipart/report mail.
func TestTLSReportDaily(t *testing.T) {
	ca := testca.New(t, "posthorn black-box root", time.Now())
	sink := tpStartSink(t, "reports.test", "127.0.0.131", nil)
	d := tpStartDNS(t, "_smtp._tls.sts.test. 300 IN TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@report.test\"")
	mt := fmt.Sprintf("report.test esmtp:[127.0.0.131]:%d\n", sink.port)
	r := tpRoot(t, d.addr, ca, mt, "O TLSReports=True", "O DeliveryMode=background")
	// Yesterday's sessions, as the store keeps them.
	yesterday := time.Now().UTC().Add(-24 * time.Hour)
	dir := r.path("spool/mqueue/.tlsrpt")
	os.MkdirAll(dir, 0o700)
	var lines []string
	for i, res := range []string{"", "", "certificate-expired"} {
		s := map[string]any{"t": yesterday.Add(time.Duration(i) * time.Minute), "domain": "sts.test", "type": "sts",
			"policy": []string{"version: STSv1", "mode: enforce", "mx: *.sts.test", "max_age: 86400"}, "mx-host": []string{"*.sts.test"},
			"mx": "mx.sts.test", "ip": "127.0.0.121", "src": "127.0.0.1", "result": res}
		b, _ := json.Marshal(s)
		lines = append(lines, string(b))
	}
	os.WriteFile(filepath.Join(dir, yesterday.Format("2006-01-02")+".jsonl"), []byte(strings.Join(lines, "\n")+"\n"), 0o600)

	startDaemon(t, r, "-q1h")
	waitFor(t, "the TLS report at the sink", func() bool { msgs, _ := sink.got(); return len(msgs) > 0 })
	msgs, _ := sink.got()
	if len(msgs) != 1 || strings.Join(msgs[0].rcpts, ",") != "tlsrpt@report.test" {
		t.Fatalf("sink got %+v", msgs)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].data))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get("Subject"); !strings.HasPrefix(got, "Report Domain: sts.test Submitter: posthorn.test Report-ID: <") {
		t.Errorf("Subject %q", got)
	}
	if m.Header.Get("TLS-Report-Domain") != "sts.test" || m.Header.Get("From") != "postmaster@posthorn.test" {
		t.Errorf("headers %v", m.Header)
	}
	mt2, params, _ := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if mt2 != "multipart/report" || params["report-type"] != "tlsrpt" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var report struct {
		DateRange struct {
			Start string `json:"start-datetime"`
		} `json:"date-range"`
		Policies []struct {
			Policy struct {
				Type   string `json:"policy-type"`
				Domain string `json:"policy-domain"`
			} `json:"policy"`
			Summary struct {
				OK   int `json:"total-successful-session-count"`
				Fail int `json:"total-failure-session-count"`
			} `json:"summary"`
			Failures []struct {
				Type  string `json:"result-type"`
				Count int    `json:"failed-session-count"`
			} `json:"failure-details"`
		} `json:"policies"`
	}
	found := false
	for {
		p, err := mr.NextPart()
		if err != nil {
			break
		}
		if !strings.HasPrefix(p.Header.Get("Content-Type"), "application/tlsrpt+gzip") {
			continue
		}
		zr, err := gzip.NewReader(base64.NewDecoder(base64.StdEncoding, p))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(zr).Decode(&report); err != nil {
			t.Fatal(err)
		}
		found = true
	}
	if !found {
		t.Fatalf("no application/tlsrpt+gzip part:\n%s", msgs[0].data)
	}
	if report.DateRange.Start != yesterday.Format("2006-01-02")+"T00:00:00Z" || len(report.Policies) != 1 {
		t.Fatalf("report %+v", report)
	}
	p := report.Policies[0]
	if p.Policy.Type != "sts" || p.Policy.Domain != "sts.test" || p.Summary.OK != 2 || p.Summary.Fail != 1 ||
		len(p.Failures) != 1 || p.Failures[0].Type != "certificate-expired" || p.Failures[0].Count != 1 {
		t.Errorf("report %+v", p)
	}
	// The day is done: its data is gone.
	waitFor(t, "the day's data removed", func() bool {
		_, err := os.Stat(filepath.Join(dir, yesterday.Format("2006-01-02")+".jsonl"))
		return os.IsNotExist(err)
	})
}

// tpPostfix runs a private Postfix instance (root only) as the next hop:
// smtpd on 127.0.0.1:tlsPort with STARTTLS and cert, on plainPort
// without; everything it accepts is discarded and logged to its own
// maillog, which is returned (a function reading it).
func tpPostfix(t *testing.T, cert testca.Cert, domains []string, tlsPort, plainPort int) func() string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("a private Postfix needs root")
	}
	if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
		t.Skip("postfix not installed")
	}
	if out, err := exec.Command("id", "postfix").CombinedOutput(); err != nil {
		t.Skipf("no postfix user: %s", out)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // testing's per-test directory is 0700
	for _, d := range []string{"conf", "queue", "data"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	if err := exec.Command("chown", "postfix", filepath.Join(dir, "data")).Run(); err != nil {
		t.Fatal(err)
	}
	cert.WritePEM(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	var transport []string
	for _, d := range domains {
		transport = append(transport, d+"=discard:")
	}
	mainCf := strings.Join([]string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + filepath.Join(dir, "data"),
		"mail_owner = postfix", "setgid_group = postdrop",
		"inet_interfaces = 127.0.0.1", "inet_protocols = ipv4",
		"myhostname = mx.postfix.test", "mydestination =", "mynetworks = 127.0.0.0/8",
		"relay_domains = " + strings.Join(domains, " "),
		"transport_maps = inline:{ " + strings.Join(transport, ", ") + " }",
		"alias_maps =", "alias_database =",
		"maillog_file_prefixes = " + dir, "maillog_file = " + filepath.Join(dir, "maillog"),
		"smtpd_tls_security_level = may", "smtpd_tls_loglevel = 1",
		"smtpd_tls_cert_file = " + filepath.Join(dir, "cert.pem"), "smtpd_tls_key_file = " + filepath.Join(dir, "key.pem"),
		"smtp_tls_security_level = none",
	}, "\n") + "\n"
	masterCf := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_security_level=none
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`, tlsPort, plainPort)
	os.WriteFile(filepath.Join(dir, "conf/main.cf"), []byte(mainCf), 0o644)
	os.WriteFile(filepath.Join(dir, "conf/master.cf"), []byte(masterCf), 0o644)
	conf := filepath.Join(dir, "conf")
	if out, err := exec.Command("/usr/sbin/postfix", "-c", conf, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		t.Fatalf("postfix start: %v %s\n%s", err, out, log)
	}
	t.Cleanup(func() { exec.Command("/usr/sbin/postfix", "-c", conf, "stop").Run() })
	waitGreeting(t, fmt.Sprintf("127.0.0.1:%d", tlsPort))
	waitGreeting(t, fmt.Sprintf("127.0.0.1:%d", plainPort))
	return func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "maillog"))
		return string(b)
	}
}

// TestTLSPolicyPostfixPeer: Postfix as the TLS peer. DANE-EE to its
// certificate: delivered over TLS (Postfix logs the TLS connection and
// the message); a mismatching record, or the Postfix service without
// STARTTLS, defers without a MAIL reaching Postfix.
func TestTLSPolicyPostfixPeer(t *testing.T) {
	ca := testca.New(t, "posthorn black-box root", time.Now())
	cert := ca.Valid(t, "mx.pf.test")
	other := ca.Valid(t, "mx.pf.test")
	tlsPort, plainPort := freePort(t), freePort(t)
	maillog := tpPostfix(t, cert, []string{"pf.test", "pf2.test", "pf3.test"}, tlsPort, plainPort)
	d := tpStartDNS(t,
		"pf.test. 300 IN MX 10 mx.pf.test.", "mx.pf.test. 300 IN A 127.0.0.1",
		fmt.Sprintf("_%d._tcp.mx.pf.test. 300 IN TLSA %s", tlsPort, tpTLSA(cert)),
		"pf2.test. 300 IN MX 10 mx.pf2.test.", "mx.pf2.test. 300 IN A 127.0.0.1",
		fmt.Sprintf("_%d._tcp.mx.pf2.test. 300 IN TLSA %s", plainPort, tpTLSA(cert)),
		"mx.pf3.test. 300 IN A 127.0.0.1", // pf3.test is routed to [mx.pf3.test]: DANE without MX
		fmt.Sprintf("_%d._tcp.mx.pf3.test. 300 IN TLSA %s", tlsPort, tpTLSA(other)),
	)
	mt := fmt.Sprintf("pf.test esmtp:pf.test:%d\npf2.test esmtp:pf2.test:%d\npf3.test esmtp:[mx.pf3.test]:%d\n", tlsPort, plainPort, tlsPort)
	r := tpRoot(t, d.addr, ca, mt)

	res := tpSend(t, r, "bob@pf.test")
	tpLog(t, res, "STARTTLS=client, relay=mx.pf.test., version=TLSv1.3, verify=TRUSTED, cipher=")
	tpLog(t, res, "policy=dane")
	tpLog(t, res, "stat=Sent (")
	waitFor(t, "Postfix's delivery", func() bool { return strings.Contains(maillog(), "to=<bob@pf.test>, relay=none") })
	if l := maillog(); !strings.Contains(l, "TLS connection established from localhost[127.0.0.1]: TLSv1.3") {
		t.Errorf("Postfix saw no TLS:\n%s", l)
	}

	res = tpSend(t, r, "bob@pf2.test")
	tpLog(t, res, "stat=Deferred: 403 4.7.0 TLS required (DANE): mx.pf2.test. does not offer STARTTLS")
	res = tpSend(t, r, "bob@pf3.test")
	tpLog(t, res, "stat=Deferred: 403 4.7.0 TLS handshake failed (DANE: no matching TLSA record)")
	if q := run(t, binary(t), "", "-C", r.cf, "-bp"); !strings.Contains(q.stdout, "Total requests: 2") {
		t.Errorf("mailq:\n%s", q.stdout)
	}
	if l := maillog(); strings.Contains(l, "pf2.test") || strings.Contains(l, "pf3.test") {
		t.Errorf("Postfix got mail it should not have:\n%s", l)
	}
}
