package relay

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// lmtpServer is a scripted LMTP server (RFC 2033): RCPT and per-recipient
// data replies by user name, the messages it took, its sessions.
type lmtpServer struct {
	ln       net.Listener
	rcpt     map[string]string // user -> RCPT reply (default 250 2.1.5 OK)
	data     map[string]string // user -> reply after the data (default 250 2.0.0 <user> Saved)
	dropData bool              // close the session after the first data reply

	mu       sync.Mutex
	sessions int
	msgs     []lmtpMsg
}

type lmtpMsg struct {
	from  string
	rcpts []string
	data  string
}

func startLMTP(t *testing.T, network string) *lmtpServer {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "lmtp")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &lmtpServer{ln: ln, rcpt: map[string]string{}, data: map[string]string{}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *lmtpServer) serve(c net.Conn) {
	defer c.Close()
	s.mu.Lock()
	s.sessions++
	s.mu.Unlock()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(lines ...string) {
		for _, l := range lines {
			w.WriteString(l + "\r\n")
		}
	}
	say("220 store.test LMTP ready")
	w.Flush()
	var cur lmtpMsg
	var ok []string
	for {
		if r.Buffered() == 0 {
			w.Flush()
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "LHLO":
			say("250-store.test", "250-PIPELINING", "250-ENHANCEDSTATUSCODES", "250 8BITMIME")
		case "MAIL":
			cur, ok = lmtpMsg{from: line}, nil
			say("250 2.1.0 OK")
		case "RCPT":
			user := strings.TrimSuffix(strings.TrimPrefix(line, "RCPT To:<"), ">")
			if rep, found := s.rcpt[user]; found {
				say(rep)
				continue
			}
			ok = append(ok, user)
			cur.rcpts = append(cur.rcpts, user)
			say("250 2.1.5 OK")
		case "DATA":
			if len(ok) == 0 {
				say("503 5.5.1 No valid recipients")
				continue
			}
			say("354 OK")
			w.Flush()
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			cur.data = b.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, cur)
			s.mu.Unlock()
			for i, u := range ok {
				if rep, found := s.data[u]; found {
					say(rep)
				} else {
					say("250 2.0.0 <" + u + "> Saved")
				}
				if s.dropData && i == 0 {
					w.Flush()
					return
				}
			}
		case "RSET":
			cur, ok = lmtpMsg{}, nil
			say("250 2.0.0 OK")
		case "QUIT":
			say("221 2.0.0 Bye")
			w.Flush()
			return
		default:
			say("500 5.5.2 Unknown command")
		}
	}
}

func (s *lmtpServer) messages() []lmtpMsg {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]lmtpMsg(nil), s.msgs...)
}

func newLMTPClient(t *testing.T, s *lmtpServer, logBuf *syncBuffer) *LMTP {
	t.Helper()
	l := NewLMTP(LMTPConfig{Network: s.ln.Addr().Network(), Address: s.ln.Addr().String(),
		Hostname: "refhost.example.org", Logger: maillog.New(logBuf, "sm-mta")})
	t.Cleanup(func() { l.Close() })
	return l
}

func localMsg(users ...string) *msg {
	m := newMsg("", simpleHeader, "line one\n.leading dot\n", users...)
	m.d.Mailer = "local"
	for i, u := range users {
		m.d.Rcpts[i].Route = runner.Route{Mailer: "local", User: u}
		m.d.Rcpts[i].Recipient.Addr = "<" + u + "@refhost.example.org>"
	}
	return m
}

// Each recipient gets the reply the server gave for it after the data;
// refusals at RCPT and after the data map to bounces or deferrals as
// sendmail's SMTP replies do; the second message uses the same session.
func TestLMTPPerRecipientReplies(t *testing.T) {
	s := startLMTP(t, "unix")
	s.rcpt["nobody"] = "550 5.1.1 <nobody> User doesn't exist"
	s.rcpt["busy"] = "451 4.3.0 <busy> Temporary internal error"
	s.data["full"] = "452 4.2.2 <full> Mailbox is full"
	s.data["banned"] = "554 5.7.1 <banned> Rejected by Sieve"
	logBuf := &syncBuffer{}
	l := newLMTPClient(t, s, logBuf)

	m := localMsg("bob", "nobody", "busy", "full", "banned", "carol")
	res := l.Deliver(context.Background(), m.d)
	for _, i := range []int{0, 5} {
		if res[i].Err != nil || !res[i].Delivered || res[i].DSN != "2.0.0" {
			t.Errorf("rcpt %d: %+v", i, res[i])
		}
	}
	for i, want := range map[int]string{1: "550 5.1.1 User unknown", 2: "451 4.3.0", 3: "452 4.2.2", 4: "554 5.7.1 Service unavailable"} {
		st := statOf(t, res[i])
		if got := st.Error(); !strings.HasPrefix(got, want) {
			t.Errorf("rcpt %d: %q, want %q...", i, got, want)
		}
	}
	if res[1].Reply != "550 5.1.1 <nobody> User doesn't exist" || res[3].Reply != "452 4.2.2 <full> Mailbox is full" {
		t.Errorf("replies %q %q", res[1].Reply, res[3].Reply)
	}
	if res[0].Relay != s.ln.Addr().String() {
		t.Errorf("relay %q", res[0].Relay)
	}

	m2 := localMsg("dave")
	if res := l.Deliver(context.Background(), m2.d); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if !strings.Contains(m2.verbose.String(), "Using cached LMTP connection") {
		t.Errorf("second message not on the cached session:\n%s", m2.verbose.String())
	}
	msgs := s.messages()
	if len(msgs) != 2 || s.sessions != 1 {
		t.Fatalf("%d messages in %d sessions", len(msgs), s.sessions)
	}
	if got := strings.Join(msgs[0].rcpts, ","); got != "bob,full,banned,carol" {
		t.Errorf("recipients %s", got)
	}
	if msgs[0].from != "MAIL From:<alice@refhost.example.org>" {
		t.Errorf("MAIL %q", msgs[0].from)
	}
	if !strings.HasSuffix(msgs[0].data, "\r\n\r\nline one\r\n.leading dot\r\n") || !strings.HasPrefix(msgs[0].data, "Received: ") {
		t.Errorf("data %q", msgs[0].data)
	}
}

// -v shows the dialogue as sendmail's VERB transcript of its LMTP local
// mailer does (01-smtp-verb-delivery.txt).
func TestLMTPVerbose(t *testing.T) {
	s := startLMTP(t, "tcp")
	l := newLMTPClient(t, s, &syncBuffer{})
	m := localMsg("bob")
	if res := l.Deliver(context.Background(), m.d); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	want := "<bob@refhost.example.org>... Connecting to [127.0.0.1] port " + port + " via local...\n" +
		"220 store.test LMTP ready\n>>> LHLO refhost.example.org\n250-store.test\n250-PIPELINING\n250-ENHANCEDSTATUSCODES\n250 8BITMIME\n" +
		">>> MAIL From:<alice@refhost.example.org>\n250 2.1.0 OK\n>>> RCPT To:<bob>\n>>> DATA\n250 2.1.5 OK\n354 OK\n>>> .\n250 2.0.0 <bob> Saved\n"
	if got := m.verbose.String(); got != want {
		t.Errorf("-v:\n%s\nwant:\n%s", got, want)
	}
	if res := l.Deliver(context.Background(), localMsg("bob").d); res[0].Relay != "127.0.0.1 [127.0.0.1]" {
		t.Errorf("relay %q", res[0].Relay)
	}
}

// No server: every recipient is deferred, nothing bounces.
func TestLMTPServerDown(t *testing.T) {
	for _, network := range []string{"unix", "tcp"} {
		s := startLMTP(t, network)
		l := newLMTPClient(t, s, &syncBuffer{})
		s.ln.Close()
		res := l.Deliver(context.Background(), localMsg("bob", "carol").d)
		for _, r := range res {
			st := statOf(t, r)
			if !st.Temporary() || st.Enhanced != "4.4.1" {
				t.Errorf("%s: %v", network, st)
			}
		}
	}
}

// A session lost among the data replies: the recipients answered keep
// their result, the others are deferred (never reported sent).
func TestLMTPLostAmongDataReplies(t *testing.T) {
	s := startLMTP(t, "unix")
	s.dropData = true
	l := newLMTPClient(t, s, &syncBuffer{})
	res := l.Deliver(context.Background(), localMsg("bob", "carol", "dave").d)
	if res[0].Err != nil {
		t.Errorf("bob: %v", res[0].Err)
	}
	for _, r := range res[1:] {
		if st := statOf(t, r); !st.Temporary() || st.Enhanced != "4.4.2" {
			t.Errorf("%v", st)
		}
	}
	// The next message opens a new session.
	s.dropData = false
	if res := l.Deliver(context.Background(), localMsg("carol").d); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	if s.sessions != 2 {
		t.Errorf("%d sessions", s.sessions)
	}
}

// A greeting refused with 5xx defers: the mail store is ours.
func TestLMTPRefusedGreetingDefers(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "lmtp"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("554 5.3.2 store.test in maintenance\r\n"))
			time.Sleep(50 * time.Millisecond)
			c.Close()
		}
	}()
	l := NewLMTP(LMTPConfig{Network: "unix", Address: ln.Addr().String(), Hostname: "refhost.example.org"})
	defer l.Close()
	res := l.Deliver(context.Background(), localMsg("bob").d)
	if st := statOf(t, res[0]); !st.Temporary() {
		t.Errorf("%v", st)
	}
}

// An 8-bit message passes as it is, with BODY=8BITMIME; long lines are
// not folded (sendmail's LMTP local mailer has no L=).
func TestLMTPEightBitAndLongLines(t *testing.T) {
	s := startLMTP(t, "unix")
	l := newLMTPClient(t, s, &syncBuffer{})
	long := strings.Repeat("x", 10000)
	m := newMsg("", "Subject: caf\xc3\xa9\n", long+"\n\xc3\xa9t\xc3\xa9\n", "bob")
	m.d.Mailer = "local"
	m.d.Rcpts[0].Route = runner.Route{Mailer: "local", User: "bob"}
	m.d.Job = &queue.Job{ID: "x", BodyType: "8BITMIME"}
	m.d.Body = bytes.NewReader([]byte(long + "\n\xc3\xa9t\xc3\xa9\n"))
	if res := l.Deliver(context.Background(), m.d); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	got := s.messages()[0]
	if !strings.Contains(got.from, " BODY=8BITMIME") || !strings.Contains(got.data, long+"\r\n\xc3\xa9t\xc3\xa9\r\n") {
		t.Errorf("MAIL %q, data %d bytes", got.from, len(got.data))
	}
}
