package test

// Peers for the relay tests: a private dnsmasq answering the MX and
// address records, and next hops on loopback addresses at port 25 (the
// relay client always connects to port 25 of an MX host). Everything
// listens on 127.0.0.0/8 and the DNS data holds loopback addresses only,
// so nothing the binary does can reach another address.

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	smtp "github.com/emersion/go-smtp"
)

// requireRoot skips a test that needs port 25 on loopback addresses.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the next hops listen on port 25 of loopback addresses")
	}
}

var (
	hopMu   sync.Mutex
	hopUsed = map[string]bool{}
)

// hopIP returns a loopback address 127.0.2x.y whose port 25 is free: the
// next hops of one test. Addresses are drawn at random from 2,540 so that
// test runs of other worktrees on the same machine do not meet.
func hopIP(t testing.TB) string {
	t.Helper()
	requireRoot(t)
	hopMu.Lock()
	defer hopMu.Unlock()
	for range 200 {
		ip := fmt.Sprintf("127.0.%d.%d", 20+rand.IntN(10), 1+rand.IntN(254))
		if hopUsed[ip] {
			continue
		}
		l, err := net.Listen("tcp4", ip+":25")
		if err != nil {
			continue
		}
		l.Close()
		hopUsed[ip] = true
		return ip
	}
	t.Skip("port 25 is taken on every loopback address tried (an MTA listening on *:25?)")
	return ""
}

// startDNS runs dnsmasq on 127.0.0.1 at a free port, answering only from
// the given configuration lines (mx-host=, host-record=, ...): every other
// name is NXDOMAIN and nothing is forwarded. It returns the server's
// address, for ResolverServers.
func startDNS(t testing.TB, records ...string) string {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/dnsmasq"); err != nil {
			t.Skip("dnsmasq (dnsmasq-base) not installed")
		}
		bin = "/usr/sbin/dnsmasq"
	}
	dir := t.TempDir()
	for attempt := 0; ; attempt++ {
		port := freePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		conf := append([]string{
			"# loopback-only test DNS: answers from the lines below, never forwards",
			fmt.Sprintf("port=%d", port),
			"listen-address=127.0.0.1",
			"bind-interfaces",
			"no-resolv",
			"no-hosts",
			"no-poll",
			"no-negcache",
			"local=/#/",
			"pid-file=",
			"user=root",
			"log-queries",
			"log-facility=" + filepath.Join(dir, "dnsmasq.log"),
		}, records...)
		cf := filepath.Join(dir, "dnsmasq.conf")
		if err := os.WriteFile(cf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "--keep-in-foreground", "--conf-file="+cf)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if dnsAnswers(addr, exited) {
			t.Cleanup(func() {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
					cmd.Process.Kill()
				}
				if t.Failed() {
					log, _ := os.ReadFile(filepath.Join(dir, "dnsmasq.log"))
					t.Logf("dnsmasq log:\n%s", log)
				}
			})
			return addr
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 3 {
			t.Fatalf("dnsmasq did not start: %s", out.String())
		}
	}
}

// dnsAnswers asks addr for a name until it answers (any answer) or the
// process has exited.
func dnsAnswers(addr string, exited <-chan struct{}) bool {
	c := &dns.Client{Timeout: 300 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("probe.invalid.", dns.TypeA)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		if _, _, err := c.Exchange(m, addr); err == nil {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// oneMX is the DNS records of a domain with one MX host, mx.<domain>, at ip.
func oneMX(domain, ip string) []string {
	return []string{"mx-host=" + domain + ",mx." + domain + ",10", "host-record=mx." + domain + "," + ip}
}

// dnsRoot is a private root that asks the DNS server at dnsAddr.
func dnsRoot(t testing.TB, dnsAddr string, extra ...string) *root {
	t.Helper()
	return newRoot(t, append(extra, "O ResolverServers="+dnsAddr)...)
}

// sinkMsg is one message a sink took.
type sinkMsg struct {
	From   string
	Body   string // 7BIT, 8BITMIME or "" as in MAIL's BODY=
	Rcpts  []string
	Notify map[string]string // NOTIFY= by recipient
	Data   string            // the message as received, CRLF line ends
}

// sink is a go-smtp server on a loopback address (port 25 for an MX
// host): a next hop whose protocol side nobody here wrote. rcpt decides each RCPT (nil error accepts); n counts
// the RCPTs for that address so far, from 1.
type sink struct {
	addr string
	rcpt func(addr string, n int) error
	srv  *smtp.Server

	mu    sync.Mutex
	seen  map[string]int
	msgs  []sinkMsg
	conns int
}

func startSink(t testing.TB, addr string, rcpt func(addr string, n int) error) *sink {
	t.Helper()
	s := &sink{addr: addr, rcpt: rcpt, seen: map[string]int{}}
	s.srv = smtp.NewServer(s)
	s.srv.Domain = "sink.test"
	s.srv.EnableDSN = true
	s.srv.MaxLineLength = 4000
	s.srv.ReadTimeout = time.Minute
	s.srv.WriteTimeout = time.Minute
	s.srv.ErrorLog = nopLogger{}
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatalf("sink on %s: %v", addr, err)
	}
	s.addr = l.Addr().String() // the port, for "ip:0"
	go s.srv.Serve(l)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

type nopLogger struct{}

func (nopLogger) Printf(string, ...any) {}
func (nopLogger) Println(...any)        {}

func (s *sink) NewSession(*smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	return &sinkSession{s: s}, nil
}

func (s *sink) messages() []sinkMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkMsg(nil), s.msgs...)
}

func (s *sink) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

type sinkSession struct {
	s   *sink
	msg sinkMsg
}

func (ss *sinkSession) Reset()        { ss.msg = sinkMsg{} }
func (ss *sinkSession) Logout() error { return nil }

func (ss *sinkSession) Mail(from string, opts *smtp.MailOptions) error {
	ss.msg = sinkMsg{From: from, Notify: map[string]string{}}
	if opts != nil {
		ss.msg.Body = string(opts.Body)
	}
	return nil
}

func (ss *sinkSession) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	ss.s.seen[to]++
	n := ss.s.seen[to]
	ss.s.mu.Unlock()
	if ss.s.rcpt != nil {
		if err := ss.s.rcpt(to, n); err != nil {
			return err
		}
	}
	ss.msg.Rcpts = append(ss.msg.Rcpts, to)
	if opts != nil && len(opts.Notify) > 0 {
		var n []string
		for _, v := range opts.Notify {
			n = append(n, string(v))
		}
		ss.msg.Notify[to] = strings.Join(n, ",")
	}
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.msg.Data = string(data)
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, ss.msg)
	ss.s.mu.Unlock()
	return nil
}

// smtpReply is an SMTP error reply for a sink's rcpt function.
func smtpReply(code int, enh string, text string) error {
	var e smtp.EnhancedCode
	fmt.Sscanf(enh, "%d.%d.%d", &e[0], &e[1], &e[2])
	return &smtp.SMTPError{Code: code, EnhancedCode: e, Message: text}
}
