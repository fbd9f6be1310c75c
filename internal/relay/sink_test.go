package relay

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/status"
)

// sink is a scripted SMTP server that logs what it receives the way the
// capture's scripts/smtpsink.py does ("C: MAIL From:<a>...<CRLF>", "D:"
// for data lines, "S:" for its replies), so that sessions compare with
// 03-relay-outbound-smtp-*.txt line for line. Its behaviour is set by
// the fields before start.
type sink struct {
	mode      string   // in the greeting: "accept", "reject-rcpt"
	greeting  string   // whole greeting line; "" for sendmail's sink greeting
	ehloLines []string // extension lines; nil for the capture's sink
	ehloReply string   // a reply to EHLO instead of the extensions
	rcpt      func(n int, addr string) string
	data      string             // reply to DATA; "" for 354 (554 when strict and no RCPT)
	final     func(n int) string // reply to the final dot
	strict    bool
	silent    bool          // accept TCP, never answer
	dropData  bool          // close the connection after a few DATA lines
	hangFinal chan struct{} // closed on the final dot, which is never answered
	startTLS  *tls.Config
	badTLS    bool   // say 220 to STARTTLS, then talk garbage
	hostname  string // in the EHLO reply; "" for mx.sink.test

	ln    net.Listener
	mu    sync.Mutex
	open  []net.Conn
	log   strings.Builder
	msgs  []sinkMsg
	conns int
	wg    sync.WaitGroup
}

type sinkMsg struct {
	from  string
	rcpts []string
	data  []string
}

func (s *sink) start(t *testing.T, ip string) *sink {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.open = append(s.open, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *sink) logf(format string, args ...any) {
	s.mu.Lock()
	fmt.Fprintf(&s.log, format, args...)
	s.mu.Unlock()
}

// transcript is the log so far.
func (s *sink) transcript() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
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

func (s *sink) serve(nc net.Conn) {
	defer nc.Close()
	s.mu.Lock()
	s.conns++
	s.mu.Unlock()
	s.logf("=== connection\n")
	if s.silent {
		buf := make([]byte, 512)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}
	var c net.Conn = nc
	r := bufio.NewReader(c)
	send := func(line string) {
		s.logf("S: %s\n", line) // before the client can read it
		c.Write([]byte(line + "\r\n"))
	}
	greet := s.greeting
	if greet == "" {
		mode := s.mode
		if mode == "" {
			mode = "accept"
		}
		greet = "220 mx.sink.test ESMTP test sink (" + mode + ")"
	}
	send(greet)
	name := s.hostname
	if name == "" {
		name = "mx.sink.test"
	}
	ext := s.ehloLines
	if ext == nil {
		ext = []string{"PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"}
	}
	if s.startTLS != nil || s.badTLS {
		ext = append(append([]string(nil), ext...), "STARTTLS")
	}
	var msg *sinkMsg
	inData, nrcpt, nline, nrcptTotal := false, 0, 0, 0
	for {
		raw, err := r.ReadString('\n')
		if err != nil {
			s.logf("=== EOF\n")
			return
		}
		tag := "C: "
		if inData {
			tag = "D: "
		}
		if strings.HasSuffix(raw, "\r\n") {
			s.logf("%s%s<CRLF>\n", tag, strings.TrimSuffix(raw, "\r\n"))
		} else {
			s.logf("%s%s<no-CRLF>\n", tag, raw)
		}
		l := strings.TrimRight(raw, "\r\n")
		if inData {
			if l == "." && s.hangFinal != nil {
				close(s.hangFinal)
				io.Copy(io.Discard, r)
				return
			}
			if l == "." {
				inData = false
				s.mu.Lock()
				n := len(s.msgs)
				s.msgs = append(s.msgs, *msg)
				s.mu.Unlock()
				reply := fmt.Sprintf("250 2.0.0 Ok: queued as SINK%d", 1000+n)
				if s.final != nil {
					reply = s.final(n)
				}
				send(reply)
				continue
			}
			msg.data = append(msg.data, l)
			if nline++; s.dropData && nline > 2 {
				s.logf("=== dropped\n")
				return
			}
			continue
		}
		u := strings.ToUpper(l)
		switch {
		case strings.HasPrefix(u, "EHLO"):
			if s.ehloReply != "" {
				send(s.ehloReply)
				continue
			}
			lines := append([]string{name}, ext...)
			var b strings.Builder
			for i, x := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				b.WriteString("250" + sep + x + "\r\n")
			}
			s.logf("S: 250-%s\n", strings.Join(lines, " / "))
			c.Write([]byte(b.String()))
		case strings.HasPrefix(u, "HELO"):
			send("250 " + name)
		case u == "STARTTLS":
			send("220 2.0.0 Ready to start TLS")
			if s.badTLS {
				c.Write([]byte("this is not a TLS server hello\r\n"))
				return
			}
			tc := tls.Server(nc, s.startTLS)
			if err := tc.Handshake(); err != nil {
				s.logf("=== TLS failed: %v\n", err)
				return
			}
			c = tc
			r = bufio.NewReader(c)
			s.logf("=== TLS\n")
		case strings.HasPrefix(u, "MAIL"):
			nrcpt = 0
			msg = &sinkMsg{from: l[10:]}
			send("250 2.1.0 Ok")
		case strings.HasPrefix(u, "RCPT"):
			addr := strings.Trim(strings.SplitN(l[8:], " ", 2)[0], "<> ")
			reply := "250 2.1.5 Ok"
			switch {
			case s.rcpt != nil:
				reply = s.rcpt(nrcptTotal, addr)
			case s.mode == "reject-rcpt":
				reply = "550 5.1.1 <" + addr + ">: Recipient address rejected: User unknown in sink"
			}
			nrcptTotal++
			if reply[0] == '2' {
				nrcpt++
				msg.rcpts = append(msg.rcpts, addr)
			}
			send(reply)
			if strings.HasPrefix(reply, "421") {
				return
			}
		case u == "DATA":
			switch {
			case s.data != "":
				send(s.data)
				if strings.HasPrefix(s.data, "421") {
					return
				}
				if s.data[0] == '3' {
					inData, nline = true, 0
				}
			case nrcpt == 0 && s.strict:
				send("554 5.5.1 Error: no valid recipients")
			default:
				send("354 End data with <CR><LF>.<CR><LF>")
				inData, nline = true, 0
			}
		case u == "RSET", u == "NOOP":
			send("250 2.0.0 Ok")
		case u == "QUIT":
			send("221 2.0.0 Bye")
			return
		default:
			send("502 5.5.2 Error: command not recognized")
		}
	}
}

// netmap is the Dial hook: "ip:port" as the client dials it to the
// listener that plays it; an address not in the map is refused by a
// real closed port on that IP.
type netmap struct {
	mu sync.Mutex
	m  map[string]string
}

func (n *netmap) add(virtual string, real net.Addr) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.m == nil {
		n.m = map[string]string{}
	}
	n.m[virtual] = real.String()
}

func (n *netmap) dial(ctx context.Context, network, address string) (net.Conn, error) {
	n.mu.Lock()
	real, ok := n.m[address]
	n.mu.Unlock()
	if !ok {
		host, _, _ := net.SplitHostPort(address)
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: network, Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
		}
		real = ln.Addr().String()
		ln.Close() // nothing listens there now: connect() is refused
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

// fakeDNS is the Resolver of the tests.
type fakeDNS struct {
	mx    map[string][]resolve.MX
	mxErr map[string]error
	a     map[string][]netip.Addr
	mu    sync.Mutex
	asked []string
}

func (f *fakeDNS) Exchangers(ctx context.Context, domain string) ([]resolve.MX, error) {
	f.mu.Lock()
	f.asked = append(f.asked, "MX "+domain)
	f.mu.Unlock()
	if err := f.mxErr[domain]; err != nil {
		return nil, err
	}
	if mx, ok := f.mx[domain]; ok {
		return mx, nil
	}
	if _, ok := f.a[domain]; ok {
		return []resolve.MX{{Host: domain, Implicit: true}}, nil
	}
	return nil, status.New(550, "5.1.2", "Host unknown")
}

func (f *fakeDNS) Addrs(ctx context.Context, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	f.asked = append(f.asked, "A "+host)
	f.mu.Unlock()
	if a, ok := f.a[host]; ok {
		return a, nil
	}
	return nil, status.New(550, "5.1.2", "Host unknown")
}

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, x := range s {
		out = append(out, netip.MustParseAddr(x))
	}
	return out
}

// holdSink offers PIPELINING and answers the RCPTs only once it has read
// the DATA that follows them.
type holdSink struct {
	ln net.Listener
}

func (h *holdSink) start(t *testing.T, ip string) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	h.ln = ln
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.serve(c)
		}
	}()
}

func (h *holdSink) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	c.Write([]byte("220 mx.hold.example ESMTP\r\n"))
	held := 0
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return
		}
		u := strings.ToUpper(strings.TrimRight(l, "\r\n"))
		switch {
		case strings.HasPrefix(u, "EHLO"):
			c.Write([]byte("250-mx.hold.example\r\n250 PIPELINING\r\n"))
		case strings.HasPrefix(u, "MAIL"):
			c.Write([]byte("250 2.1.0 Ok\r\n"))
		case strings.HasPrefix(u, "RCPT"):
			held++
		case u == "DATA":
			c.Write([]byte(strings.Repeat("250 2.1.5 Ok\r\n", held) + "354 go ahead\r\n"))
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			c.Write([]byte("250 2.0.0 Ok: queued\r\n"))
		case u == "QUIT":
			c.Write([]byte("221 2.0.0 Bye\r\n"))
			return
		default:
			c.Write([]byte("250 Ok\r\n"))
		}
	}
}
