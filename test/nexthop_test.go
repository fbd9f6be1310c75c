package test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Issue 14, faults: the next hop dies in the middle of DATA, the DNS
// does not answer. Mail is deferred, never bounced before
// Timeout.queuereturn, never lost. (LDAP down: ldapdown_test.go.)

// hopSink is a next hop on loopback: while dying is set it drops the
// connection after the 354 and a few kilobytes of the message; otherwise
// it takes each message and keeps it.
type hopSink struct {
	addr     string
	dying    atomic.Bool
	mu       sync.Mutex
	messages []string
	cuts     int
}

func startHopSink(t *testing.T) *hopSink {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &hopSink{addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *hopSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "220 sink.example ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"):
			fmt.Fprintf(c, "250-sink.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
		case strings.HasPrefix(cmd, "DATA"):
			fmt.Fprintf(c, "354 go ahead\r\n")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
				if s.dying.Load() && msg.Len() > 4096 {
					s.mu.Lock()
					s.cuts++
					s.mu.Unlock()
					return // gone mid-DATA, without a reply
				}
			}
			s.mu.Lock()
			s.messages = append(s.messages, msg.String())
			n := len(s.messages)
			s.mu.Unlock()
			fmt.Fprintf(c, "250 2.0.0 Ok: queued as SINK%d\r\n", n)
		case strings.HasPrefix(cmd, "QUIT"):
			fmt.Fprintf(c, "221 2.0.0 Bye\r\n")
			return
		default: // MAIL, RCPT, RSET, NOOP
			fmt.Fprintf(c, "250 2.0.0 Ok\r\n")
		}
	}
}

func (s *hopSink) got() (messages []string, cuts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.messages...), s.cuts
}

// agedBack moves every queued job's creation time (T line) back by d, as
// if it had been queued that long ago.
func agedBack(t *testing.T, r *root, d time.Duration) {
	t.Helper()
	for name, qf := range queuedFiles(t, r) {
		re := regexp.MustCompile(`(?m)^T(\d+)$`)
		qf = re.ReplaceAllStringFunc(qf, func(l string) string {
			n, _ := strconv.ParseInt(l[1:], 10, 64)
			return fmt.Sprintf("T%d", n-int64(d/time.Second))
		})
		if err := os.WriteFile(r.path("spool/mqueue/"+name), []byte(qf), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNextHopDiesMidData: the next hop drops the connection after the 354
// and part of the message. The delivery is deferred (never reported sent,
// never bounced), the qf keeps the recipient, and the first run once the
// hop behaves delivers the message once, whole.
func TestNextHopDiesMidData(t *testing.T) {
	sink := startHopSink(t)
	sink.dying.Store(true)
	r := newRoot(t, "O DeliveryMode=queueonly")
	if err := os.WriteFile(r.path("etc/mailertable"), []byte("remote.example esmtp:["+strings.Replace(sink.addr, ":", "]:", 1)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	body := bodyOf("midata", 64<<10)
	if rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<root@localhost>", "RCPT TO:<user@remote.example>",
		"DATA", body+".", "QUIT"); !strings.HasPrefix(rs[4], "250 ") {
		t.Fatalf("message: %q", rs[4])
	}
	logf := filepath.Join(t.TempDir(), "mail.log")
	for i := 0; i < 3; i++ {
		if got := run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf); got.code != 0 {
			t.Fatalf("queue run %d: %+v", i, got)
		}
	}
	msgs, cuts := sink.got()
	if cuts < 3 || len(msgs) != 0 {
		t.Fatalf("the sink cut %d transactions and took %d messages", cuts, len(msgs))
	}
	qfs := queuedFiles(t, r)
	if len(qfs) != 1 {
		t.Fatalf("%d jobs queued after the hop died, want the message alone (no DSN)", len(qfs))
	}
	for _, qf := range qfs {
		if !regexp.MustCompile(`(?m)^R[A-Z]*:<user@remote\.example>$`).MatchString(qf) {
			t.Errorf("the qf lost its recipient:\n%s", qf)
		}
	}
	log, _ := os.ReadFile(logf)
	if strings.Contains(string(log), "stat=Sent") || !strings.Contains(string(log), "stat=Deferred") || strings.Contains(string(log), "DSN:") {
		t.Errorf("log of the runs:\n%s", log)
	}
	if _, err := os.Stat(r.path("mail/root")); err == nil {
		t.Errorf("something was delivered to the sender (a bounce?)")
	}

	sink.dying.Store(false)
	if got := run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf); got.code != 0 {
		t.Fatalf("queue run: %+v", got)
	}
	msgs, _ = sink.got()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "\r\nEND <midata@proof.test>\r\n") {
		t.Fatalf("the hop got %d messages after it recovered", len(msgs))
	}
	if n := len(queuedFiles(t, r)); n != 0 {
		t.Errorf("%d jobs still queued", n)
	}
}

// TestDNSDown: remote recipients while the resolver does not answer
// (nothing listens on ResolverServers, or a server that never replies):
// deferred with 4.4.3, kept queued run after run, no DSN; only once the
// job is older than Timeout.queuereturn does the sender get one.
func TestDNSDown(t *testing.T) {
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0") // takes queries, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	for _, tc := range []struct {
		name, servers string
	}{
		{"refused", fmt.Sprintf("127.0.0.1:%d", freePort(t))},
		{"timeout", silent.LocalAddr().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoot(t, "O DeliveryMode=queueonly", "O ResolverServers="+tc.servers, "O Timeout.queuereturn=5d",
				"O Timeout.resolver.retrans=1s", "O Timeout.resolver.retry=1")
			startDaemon(t, r)
			c, _, _ := waitGreeting(t, r.addr())
			c.Close()
			if rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<root@localhost>", "RCPT TO:<user@nowhere.example>",
				"DATA", bodyOf("dnsdown", 1000)+".", "QUIT"); !strings.HasPrefix(rs[4], "250 ") {
				t.Fatalf("message: %q", rs[4])
			}
			logf := filepath.Join(t.TempDir(), "mail.log")
			for i := 0; i < 2; i++ {
				if got := run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf); got.code != 0 {
					t.Fatalf("queue run %d: %+v", i, got)
				}
			}
			log, _ := os.ReadFile(logf)
			if !strings.Contains(string(log), "dsn=4.4.3, stat=Deferred") || strings.Contains(string(log), "DSN:") {
				t.Errorf("log of the runs:\n%s", log)
			}
			qfs := queuedFiles(t, r)
			if len(qfs) != 1 {
				t.Fatalf("%d jobs queued, want the message alone", len(qfs))
			}
			// Four days on: still deferred, no DSN (queuewarn is off for
			// this test's purpose: the default 4h warning is a delay
			// notice, not a bounce; it is sent at most once).
			agedBack(t, r, 4*24*time.Hour)
			run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf, "-O", "Timeout.queuewarn=0")
			if n := len(queuedFiles(t, r)); n != 1 {
				t.Errorf("after four days: %d jobs queued", n)
			}
			if _, err := os.Stat(r.path("mail/root")); err == nil {
				t.Errorf("the sender got mail before queuereturn")
			}
			// Past Timeout.queuereturn: returned to the sender.
			agedBack(t, r, 2*24*time.Hour)
			run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf, "-O", "Timeout.queuewarn=0")
			box, _ := os.ReadFile(r.path("mail/root"))
			if !strings.Contains(string(box), "Message could not be delivered for 5 days") || !strings.Contains(string(box), "Action: failed") {
				log, _ := os.ReadFile(logf)
				t.Errorf("no bounce after queuereturn; mailbox:\n%s\nlog:\n%s", box, log)
			}
		})
	}
}
