package smtpd_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
	"github.com/posthorn/posthorn/internal/status"
)

// refTime is when the reference's first SMTP message arrived.
var refTime = time.Date(2026, 11, 25, 4, 25, 50, 0, time.UTC)

type harness struct {
	be   *smtpdtest.Backend
	sl   *sleeps
	log  *bytes.Buffer
	lw   *lockedWriter
	addr string
}

// logged is the log so far, read under the writer's lock.
func (h *harness) logged() string {
	h.lw.mu.Lock()
	defer h.lw.mu.Unlock()
	return h.log.String()
}

// start runs a reference-configured server; tweak may change the config.
func start(t *testing.T, tweak func(*smtpd.Config)) *harness {
	h := &harness{be: smtpdtest.Reference(), sl: &sleeps{}, log: &bytes.Buffer{}}
	cfg := referenceConfig(t, h.be, h.sl)
	cfg.Now = func() time.Time { return refTime }
	h.lw = &lockedWriter{w: h.log}
	cfg.Log = maillog.New(h.lw, "sm-mta")
	if tweak != nil {
		tweak(&cfg)
	}
	srv, err := smtpd.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.addr = serveTCP(t, srv, false)
	return h
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// run plays a script from src and returns the server's lines only.
func (h *harness) run(t *testing.T, src, script string) []string {
	c := dialFrom(t, src, h.addr)
	defer c.Close()
	var out []string
	for _, l := range strings.Split(replay(c, script), "\n") {
		if strings.HasPrefix(l, "S: ") {
			out = append(out, l[3:])
		}
	}
	return out
}

func contains(lines []string, want string) bool {
	for _, l := range lines {
		if l == want {
			return true
		}
	}
	return false
}

const helloMail = "> EHLO client.example\n> MAIL FROM:<sender@client.example>\n"

func TestMessageAsStored(t *testing.T) {
	h := start(t, nil)
	script := readFile(refScripts + "01-smtp-data-accepted.script")
	h.run(t, "", script)
	msgs := h.be.Stored()
	if len(msgs) != 1 {
		t.Fatalf("stored %d messages, want 1", len(msgs))
	}
	golden := filepath.Join("testdata", "message-data-accepted.txt")
	if *update {
		_ = os.WriteFile(golden, msgs[0].Data, 0o644)
	}
	if want := readFile(golden); string(msgs[0].Data) != want {
		t.Errorf("message:\n%s\nwant:\n%s", msgs[0].Data, want)
	}
	env := msgs[0].Env
	if env.From.Raw != "<sender@client.example>" || len(env.Rcpts) != 1 || env.Rcpts[0].Route.Mailer != "local" || env.Rcpts[0].Route.User != "alice" {
		t.Errorf("envelope %+v", env)
	}
	// sendmail's header for this message (02-mbox-alice.txt), posthorn's version
	want := "from client.example (localhost [127.0.0.1])\n\tby refhost.example.org (posthorn 0.1) with ESMTP id ID000002\n\tfor <alice@localhost>; Wed, 25 Nov 2026 04:25:50 GMT"
	if env.Received != want {
		t.Errorf("Received:\n%s\nwant:\n%s", env.Received, want)
	}
	if !strings.Contains(h.log.String(), "from=<sender@client.example>, size=235, class=0, nrcpts=1, proto=ESMTP, daemon=MTA-v4, relay=localhost [127.0.0.1]") {
		t.Errorf("log lacks the from= line (size as sendmail's 235):\n%s", h.log)
	}
}

func TestReceivedHeader(t *testing.T) {
	tests := []struct {
		name, src, script, want string
	}{
		{"one recipient", "127.0.0.67", "> EHLO client.example\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<dave@localhost>\n",
			"Received: from client.example (client.example [127.0.0.67])\n\tby refhost.example.org (posthorn 0.1) with ESMTP id ID000002\n\tfor <dave@localhost>; Wed, 25 Nov 2026 04:25:50 GMT\n"},
		{"HELO differs", "127.0.0.67", "> EHLO fake.example\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<dave@localhost>\n",
			"Received: from fake.example (client.example [127.0.0.67])\n"},
		{"no PTR", "127.0.0.66", "> EHLO nameless.example\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<dave@localhost>\n",
			"Received: from nameless.example ([127.0.0.66])\n"},
		{"forged PTR", "127.0.0.68", "> EHLO forged.example\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<dave@localhost>\n",
			"Received: from forged.example (forged.example [127.0.0.68] (may be forged))\n"},
		{"HELO is SMTP", "", "> HELO [127.0.0.1]\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<dave@localhost>\n",
			"Received: from [127.0.0.1] (localhost [127.0.0.1])\n\tby refhost.example.org (posthorn 0.1) with SMTP id"},
		{"duplicate is one recipient", "", helloMail + "> RCPT TO:<alice@localhost>\n> RCPT TO:<alice@[127.0.0.1]>\n",
			"\tfor <alice@localhost>; "},
		{"two recipients", "", helloMail + "> RCPT TO:<alice@localhost>\n> RCPT TO:<bob@localhost>\n",
			"with ESMTP id ID000002;\n\tWed, 25 Nov 2026 04:25:50 GMT\n"},
		{"refused RCPTs do not count", "", helloMail + "> RCPT TO:<nosuchuser@localhost>\n> RCPT TO:<alice@localhost>\n> RCPT TO:<someone@remote.example> NOTIFY=BOGUS\n",
			"\tfor <alice@localhost>; "},
		{"duplicates in another case are one", "", helloMail + "> RCPT TO:<nosuchuser@localhost>\n> RCPT TO:<alice@localhost>\n> RCPT TO:<ALICE@LocalHost>\n",
			"\tfor <alice@localhost>; "},
		{"an unknown user does not count", "", helloMail + "> RCPT TO:<alice@localhost>\n> RCPT TO:<nosuchuser@localhost>\n",
			"\tfor <alice@localhost>; "},
		{"syntax error does not count", "", helloMail + "> RCPT TO:<alice@localhost\n> RCPT TO:<alice@localhost>\n",
			"\tfor <alice@localhost>; "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.src != "" && !loopbackAliases(t) {
				t.Skip("no 127.0.0.x source addresses")
			}
			h := start(t, nil)
			h.run(t, tt.src, tt.script+"> DATA\n>> Subject: x\n>>\n>> body\n> .\n> QUIT\n")
			msgs := h.be.Stored()
			if len(msgs) != 1 {
				t.Fatalf("stored %d messages", len(msgs))
			}
			if hdr := "Received: " + msgs[0].Env.Received + "\n"; !strings.Contains(hdr, tt.want) {
				t.Errorf("header:\n%s\nwant it to contain:\n%s", hdr, tt.want)
			}
			if strings.Contains(string(msgs[0].Data), "Received:") {
				t.Errorf("the Received header is in the message text:\n%s", msgs[0].Data)
			}
		})
	}
}

func TestDuplicateDeliveredOnce(t *testing.T) {
	h := start(t, nil)
	got := h.run(t, "", helloMail+"> RCPT TO:<alice@localhost>\n> RCPT TO:<Alice@[127.0.0.1]>\n> RCPT TO:<bob@localhost>\n> DATA\n>> x\n> .\n")
	if !contains(got, "250 2.1.5 <alice@localhost>... Recipient ok") {
		t.Errorf("replies %q", got)
	}
	msgs := h.be.Stored()
	if len(msgs) != 1 || len(msgs[0].Env.Rcpts) != 2 {
		t.Fatalf("stored %+v", msgs)
	}
}

func TestSmuggling(t *testing.T) {
	base := helloMail + "> RCPT TO:<alice@localhost>\n> DATA\n>> Subject: smuggle\n>>\n"
	tests := []struct{ name, raw, want string }{
		{"bare LF", `b'one\nMAIL FROM:<x@y>\r\n.\r\n'`, "421 4.5.0 Bare linefeed (LF) not allowed"},
		{"LF dot LF", `b'body\r\n\n.\nMAIL FROM:<x@y>\r\n'`, "421 4.5.0 Bare linefeed (LF) not allowed"},
		{"CR dot CR", `b'body\r\n\r.\rMAIL FROM:<x@y>\r\n'`, "421 4.5.0 Bare carriage return (CR) not allowed"},
		{"bare CR", `b'a\rb\r\n.\r\n'`, "421 4.5.0 Bare carriage return (CR) not allowed"},
		{"CR at end of long line", "b'" + strings.Repeat("x", 2047) + `\rX\r\n.\r\n'`, "421 4.5.0 Bare carriage return (CR) not allowed"},
		{"LF in header", `b'X-A: b\nX-B: c\r\n\r\n.\r\n'`, "421 4.5.0 Bare linefeed (LF) not allowed"},
		{"NUL CRLF dot", `b'body\r\n\x00.\r\n'`, ""},
		{"LF dot CRLF", `b'body\n.\r\nMAIL FROM:<x@y>\r\n'`, "421 4.5.0 Bare linefeed (LF) not allowed"},
		{"CRLF dot CR", `b'body\r\n.\rMAIL FROM:<x@y>\r\n'`, "421 4.5.0 Bare carriage return (CR) not allowed"},
		{"CRLF dot LF", `b'body\r\n.\nMAIL FROM:<x@y>\r\n'`, "421 4.5.0 Bare linefeed (LF) not allowed"},
		{"CR CR LF", `b'body\r\r\n.\r\n'`, "421 4.5.0 Bare carriage return (CR) not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, nil)
			got := h.run(t, "", base+"RAW "+tt.raw+"\nDRAIN 1\n> QUIT\n")
			if tt.want == "" {
				return // only: no panic
			}
			if !contains(got, tt.want) {
				t.Errorf("replies %q, want %q", got, tt.want)
			}
			if n := len(h.be.Stored()); n != 0 {
				t.Errorf("%d messages stored", n)
			}
			if contains(got, "221 2.0.0 refhost.example.org closing connection") {
				t.Error("connection not closed after 421")
			}
		})
	}
}

func TestLongDataLines(t *testing.T) {
	h := start(t, nil)
	long := strings.Repeat("L", 10000)
	h.run(t, "", helloMail+"> RCPT TO:<alice@localhost>\n> DATA\n>> Subject: long\n>>\n>> ."+long+"\n>> x\n> .\n")
	msgs := h.be.Stored()
	if len(msgs) != 1 || !strings.Contains(string(msgs[0].Data), "\n\n"+long+"\nx\n") {
		t.Fatalf("long line not kept whole and unstuffed")
	}
}

func TestTarpits(t *testing.T) {
	tests := []struct {
		name, src, script string
		want              []time.Duration
	}{
		{"VRFY", "", "> EHLO c\n" + strings.Repeat("> VRFY alice\n", 9), []time.Duration{1, 2, 4, 8}},
		{"VRFY and EXPN share", "", "> EHLO c\n" + strings.Repeat("> VRFY alice\n> EXPN alice\n", 3), []time.Duration{1}},
		{"HELO", "", "> EHLO c\n> HELO c\n> EHLO c\n> EHLO c\n", []time.Duration{1, 2}},
		{"bad RCPT", "127.0.0.67", readFile(refScripts + "01-smtp-rcpt-relay-denied-named.script"), []time.Duration{1, 1, 1}},
		{"ETRN", "", "> EHLO c\n" + strings.Repeat("> ETRN remote.example\n", 9), []time.Duration{1, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.src != "" && !loopbackAliases(t) {
				t.Skip("no 127.0.0.x source addresses")
			}
			h := start(t, nil)
			h.run(t, tt.src, tt.script)
			got := h.sl.all()
			if len(got) != len(tt.want) {
				t.Fatalf("sleeps %v, want %v s", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i]*time.Second {
					t.Fatalf("sleeps %v, want %v s", got, tt.want)
				}
			}
		})
	}
}

func TestRepliesTable(t *testing.T) {
	tests := []struct {
		name   string
		tweak  func(*smtpd.Config)
		script string
		want   []string
	}{
		{"SIZE limit advertised and enforced", func(c *smtpd.Config) { c.MaxMessageSize = 100 },
			"> EHLO c\n> MAIL FROM:<a@b> SIZE=101\n> MAIL FROM:<a@b>\n> RCPT TO:<alice>\n> DATA\n>> " + strings.Repeat("x", 120) + "\n> .\n",
			[]string{"250-SIZE 100", "552 5.2.3 Message size exceeds fixed maximum message size (100)", "552 5.2.3 Message exceeds maximum fixed size (100)"}},
		{"too many recipients", func(c *smtpd.Config) { c.MaxRecipients = 1 },
			helloMail + "> RCPT TO:<alice>\n> RCPT TO:<bob>\n", []string{"452 4.5.3 Too many recipients"}},
		{"too many hops", func(c *smtpd.Config) { c.MaxHopCount = 2 },
			helloMail + "> RCPT TO:<alice>\n> DATA\n>> Received: a\n>> Received: b\n>> Received: c\n>>\n>> x\n> .\n",
			[]string{"554 5.4.6 Too many hops 3 (2 max): from <sender@client.example> via localhost, to <alice>"}},
		{"noexpn novrfy", func(c *smtpd.Config) { c.Privacy = smtpd.ParsePrivacy("noexpn,novrfy") },
			"> EHLO c\n> EXPN staff\n> VRFY alice\n",
			[]string{"502 5.7.0 Sorry, we do not allow this operation", "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)"}},
		{"goaway hides extensions", func(c *smtpd.Config) { c.Privacy = smtpd.ParsePrivacy("goaway") },
			"> EHLO c\n> VERB\n> ETRN x\n", []string{"250-DSN", "502 5.7.0 Verbose unavailable", "502 5.7.0 Sorry, we do not allow this operation"}},
		{"MSA needs AUTH", func(c *smtpd.Config) { c.RequireAuth = true },
			"> EHLO c\n> MAIL FROM:<alice>\n", []string{"530 5.7.0 Authentication required"}},
		{"command too long", nil, "> EHLO c\n> NOOP " + strings.Repeat("z", 2042) + "\n> QUIT\n",
			[]string{"421 4.7.0 refhost.example.org Command too long, possible attack localhost [127.0.0.1]", "<no reply within 60s, connection closed>"}},
		{"2046 characters are fine", nil, "> NOOP " + strings.Repeat("z", 2041) + "\n", []string{"250 2.0.0 OK"}},
		{"open proxy", nil, "> POST / HTTP/1.1\n> QUIT\n", []string{"421 4.7.0 refhost.example.org Rejecting open proxy localhost [127.0.0.1]"}},
		{"too many bad commands", nil, strings.Repeat("> XYZZY\n", 26), []string{"421 4.7.0 refhost.example.org Too many bad commands; closing connection"}},
		{"pipelined after DATA closes", nil, helloMail + "> RCPT TO:<alice>\nRAW b'DATA\\r\\nSubject: x\\r\\n.\\r\\n'\nWAIT\n> QUIT\n",
			[]string{"554 5.5.0 SMTP protocol error", "<no reply within 60s, connection closed>"}},
		{"STARTTLS without TLS", nil, "> EHLO c\n> STARTTLS\n", []string{"454 4.3.3 TLS not available after start"}},
		{"AUTH without TLS", nil, "> EHLO c\n> AUTH PLAIN AGFsaWNlAHNlY3JldA==\n", []string{"503 5.3.3 AUTH not available"}},
		{"ETRN calls the backend", nil, "> ETRN @remote.example\n", []string{"250 2.0.0 Queuing for node @remote.example started"}},
		{"NOTIFY and ORCPT", nil, helloMail + "> RCPT TO:<alice> NOTIFY=SUCCESS ORCPT=rfc822;alice@x ORCPT=rfc822;y\n> RCPT TO:<bob> ORCPT=bad\n",
			[]string{"501 5.5.0 Duplicate ORCPT parameter", "501 5.5.4 Syntax error in ORCPT parameter value"}},
		{"HELP topic cut to 10", nil, "> HELP ABCDEFGHIJKLMNOP\n", []string{`504 5.3.0 HELP topic "abcdefghij" unknown`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := start(t, tt.tweak)
			got := h.run(t, "", tt.script)
			for _, w := range tt.want {
				if !contains(got, w) {
					t.Errorf("no reply %q in\n%s", w, strings.Join(got, "\n"))
				}
			}
		})
	}
}

func TestRelayDeniedTricks(t *testing.T) {
	if !loopbackAliases(t) {
		t.Skip("no 127.0.0.x source addresses")
	}
	h := start(t, nil)
	got := h.run(t, "127.0.0.67", "> EHLO c\n> MAIL FROM:<a@client.example>\n"+
		"> RCPT TO:<u@remote.example>\n> RCPT TO:<u%remote.example@localhost>\n> RCPT TO:<remote.example!u@localhost>\n"+
		"> RCPT TO:<@localhost:u@remote.example>\n> RCPT TO:<\"u@remote.example\"@localhost>\n> RCPT TO:<u@[192.0.2.1]>\n"+
		"> RCPT TO:<alice@[127.0.0.1]>\n")
	for _, w := range []string{
		"550 5.7.1 <u@remote.example>... Relaying denied",
		"550 5.7.1 <u%remote.example@localhost>... Relaying denied",
		"550 5.7.1 <remote.example!u@localhost>... Relaying denied",
		"550 5.7.1 <@localhost:u@remote.example>... Relaying denied",
		// A quoted local part is never split: it names a local user,
		// here an unknown one, so the mail cannot leave either way.
		"550 5.1.1 <\"u@remote.example\"@localhost>... User unknown",
		"550 5.7.1 <u@[192.0.2.1]>... Relaying denied",
		"250 2.1.5 <alice@[127.0.0.1]>... Recipient ok",
	} {
		if !contains(got, w) {
			t.Errorf("no reply %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
	if !strings.Contains(h.log.String(), "ruleset=check_rcpt, arg1=<u@remote.example>, relay=client.example [127.0.0.67], reject=550 5.7.1 <u@remote.example>... Relaying denied") {
		t.Errorf("log:\n%s", h.log)
	}
}

// TestStdioPipelined writes a whole -bs session at once, as
// 06-sendmail-bs-pipelined-input-*.txt: with a greet pause (the MTA) the
// greeting is refused, without (the MSP) the EHLO is; either way the
// rest is rejected and nothing is stored.
func TestStdioPipelined(t *testing.T) {
	input := strings.ReplaceAll(readFile(refDir+"scripts/bs-session.txt"), "\n", "\r\n")
	for _, tt := range []struct {
		name  string
		pause time.Duration
		ref   string
	}{
		{"mta", 200 * time.Millisecond, "06-sendmail-bs-pipelined-input-mta.txt"},
		{"msp", 0, "06-sendmail-bs-pipelined-input-msp.txt"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			be := smtpdtest.Reference()
			cfg := referenceConfig(t, be, nil)
			cfg.GreetPause = tt.pause
			srv, err := smtpd.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			stdin, feed := net.Pipe() // a pipe with deadlines, like a pollable stdin
			go func() { _, _ = feed.Write([]byte(input)); feed.Close() }()
			var out bytes.Buffer
			_ = srv.ServeStdio(t.Context(), stdin, &out, "root")
			got := strings.ReplaceAll(out.String(), "\r\n", "\n")
			want := strings.ReplaceAll(readFile(refDir+tt.ref), "\r\n", "\n")
			want = want[strings.IndexByte(want, '\n')+1:]
			want = strings.TrimSuffix(want, "# exit status: 0\n")
			norm := func(s string) string {
				return reGreetingBare.ReplaceAllString(s, "$1 ESMTP <greeting>")
			}
			if strings.TrimSpace(norm(got)) != strings.TrimSpace(norm(want)) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
			if n := len(be.Stored()); n != 0 {
				t.Errorf("%d messages stored", n)
			}
		})
	}
}

var reGreetingBare = regexp.MustCompile(`(?m)^(220 refhost\.example\.org) ESMTP .*$`)

func TestConnectAccess(t *testing.T) {
	h := start(t, func(c *smtpd.Config) {
		acc, _ := policy.ParseAccess(strings.NewReader("Connect:127.0.0.1 ERROR:\"550 5.7.1 go away\"\n"), "access")
		c.Policy.Access = acc
	})
	got := h.run(t, "", "> EHLO c\n> MAIL FROM:<a@b>\n> QUIT\n")
	want := []string{"554 refhost.example.org ESMTP not accepting messages", "550 5.7.1 go away", "221 2.0.0 refhost.example.org closing connection"}
	for _, w := range want {
		if !contains(got, w) {
			t.Errorf("no %q in %q", w, got)
		}
	}
}

// An access map that cannot answer at connect (LDAP down) makes the
// client come back later: 421, not the 554 of a refusal.
func TestConnectAccessMapDown(t *testing.T) {
	h := start(t, func(c *smtpd.Config) {
		c.Policy.Access = policy.NewAccessMap(func(string) (string, bool, error) { return "", false, errors.New("no directory") })
	})
	got := h.run(t, "", "> EHLO c\n> QUIT\n")
	if len(got) == 0 || got[0] != "421 4.3.0 refhost.example.org Temporary system failure. Please try again later." {
		t.Errorf("greeting %q", got)
	}
	for _, l := range got {
		if strings.HasPrefix(l, "554") || strings.HasPrefix(l, "250") {
			t.Errorf("%q after the 421: %q", l, got)
		}
	}
}

func TestDiscard(t *testing.T) {
	h := start(t, func(c *smtpd.Config) {
		acc, _ := policy.ParseAccess(strings.NewReader("From:junk.example DISCARD\n"), "access")
		c.Policy.Access = acc
	})
	got := h.run(t, "", "> EHLO c\n> MAIL FROM:<a@junk.example>\n> RCPT TO:<alice>\n> DATA\n>> x\n> .\n")
	if !contains(got, "250 2.0.0 ID000002 Message accepted for delivery") || len(h.be.Stored()) != 0 {
		t.Errorf("replies %q, stored %d", got, len(h.be.Stored()))
	}
}

func TestRefuse(t *testing.T) {
	srv, _ := smtpd.New(referenceConfig(t, smtpdtest.Reference(), nil))
	a, b := net.Pipe()
	go srv.Refuse(a, status.New(421, "4.3.2", "Too many open connections"))
	got, _ := io.ReadAll(b)
	if string(got) != "421 4.3.2 Too many open connections\r\n" {
		t.Errorf("%q", got)
	}
}

func TestCommandTimeout(t *testing.T) {
	h := start(t, func(c *smtpd.Config) { c.Timeouts.Command = 100 * time.Millisecond })
	got := h.run(t, "", "> EHLO c\nSLEEP 1\nWAIT\n")
	if !contains(got, "421 4.4.1 refhost.example.org Lost input channel from localhost [127.0.0.1]") {
		t.Errorf("%q", got)
	}
}

func TestStdioReceived(t *testing.T) {
	be := smtpdtest.Reference()
	cfg := referenceConfig(t, be, nil)
	cfg.Now = func() time.Time { return refTime }
	srv, _ := smtpd.New(cfg)
	in := "EHLO localclient\r\nMAIL FROM:<root>\r\nRCPT TO:<alice>\r\nRCPT TO:<nosuchuser>\r\nDATA\r\n"
	stdin, feed := net.Pipe()
	var out bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeStdio(t.Context(), stdin, &out, "root")
	}()
	for _, l := range strings.SplitAfter(in, "\r\n") {
		_, _ = feed.Write([]byte(l))
		time.Sleep(10 * time.Millisecond) // one line at a time, like a terminal
	}
	_, _ = feed.Write([]byte("Subject: bs\r\n\r\nbody\r\n.\r\nQUIT\r\n"))
	<-done
	msgs := be.Stored()
	if len(msgs) != 1 {
		t.Fatalf("stored %d\n%s", len(msgs), out.String())
	}
	// sendmail leaves "for" out here (nosuchuser counts for it; see
	// behaviour-notes.txt); posthorn counts only accepted recipients.
	want := "from localclient (root@localhost)\n\tby refhost.example.org (posthorn 0.1) with ESMTP id ID000002\n\tfor <alice>; Wed, 25 Nov 2026 04:25:50 GMT"
	if msgs[0].Env.Received != want || !strings.HasPrefix(string(msgs[0].Data), "Subject: bs\n") {
		t.Errorf("got:\n%s\n%s\nwant:\n%s", msgs[0].Env.Received, msgs[0].Data, want)
	}
	if !strings.Contains(out.String(), "250-refhost.example.org Hello root@localhost, pleased to meet you\r\n") {
		t.Errorf("EHLO reply:\n%s", out.String())
	}
}

// TestClientGoneInData: a client that disconnects in the middle of DATA
// (after a complete line, after a partial one, or right after the 354)
// has nothing stored: the backend sees an error, not the end of a message.
func TestClientGoneInData(t *testing.T) {
	for _, tail := range []string{"", "Subject: cut\r\n\r\nfirst line\r\n", "Subject: cut\r\n\r\npartial"} {
		h := start(t, nil)
		c := dialFrom(t, "", h.addr)
		replay(c, helloMail+"> RCPT TO:<alice>\n> DATA\n")
		_, _ = c.Write([]byte(tail))
		c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Time{})
		_, _ = io.ReadAll(c) // until the server closes: the session is over
		c.Close()
		if n := len(h.be.Stored()); n != 0 || h.be.Aborts() != 1 {
			t.Errorf("after %q: %d stored, %d aborted", tail, n, h.be.Aborts())
		}
		if !strings.Contains(h.logged(), "collect: relay=localhost, from=<sender@client.example>, info=unexpected close") {
			t.Errorf("log:\n%s", h.logged())
		}
	}
}

// The from= line's class= is the message's precedence class, as sendmail
// logs it (bulk -60, junk -100, list -30, special-delivery 100, else 0).
func TestFromLineClass(t *testing.T) {
	for _, tt := range []struct{ header, class string }{
		{"", "class=0,"}, {"Precedence: bulk\n", "class=-60,"}, {"precedence: JUNK\n", "class=-100,"},
		{"Precedence: list\n", "class=-30,"}, {"Precedence: special-delivery\n", "class=100,"},
	} {
		h := start(t, nil)
		body := ">> " + strings.ReplaceAll(tt.header, "\n", "\n>> ") + "Subject: x\n>>\n>> body\n"
		h.run(t, "", helloMail+"> RCPT TO:<alice@localhost>\n> DATA\n"+body+"> .\n> QUIT\n")
		if !strings.Contains(h.log.String(), "from=<sender@client.example>, size=") || !strings.Contains(h.log.String(), tt.class) {
			t.Errorf("%q: want %s in\n%s", tt.header, tt.class, h.log)
		}
	}
}

// TestFromLoggedBeforeDelivery: the from= line is written once the
// backend has queued the message (its Accepted call, with the Message-Id
// it added), before the to= lines of a delivery it makes at once (VERB,
// -odi), as sendmail logs them; and only once.
func TestFromLoggedBeforeDelivery(t *testing.T) {
	var log *maillog.Logger
	h := start(t, func(c *smtpd.Config) { log = c.Log })
	h.be.MsgID = "<202611250425.ID@refhost.example.org>"
	h.be.Deliver = func(env *smtpd.Envelope) { log.Infof(env.ID, "to=<alice@localhost>, stat=Sent") }
	h.run(t, "", helloMail+"> RCPT TO:<alice@localhost>\n> DATA\n>> Subject: x\n>>\n>> body\n> .\n> QUIT\n")
	got := h.logged()
	from := strings.Index(got, "from=<sender@client.example>, size=")
	to := strings.Index(got, "to=<alice@localhost>")
	if from < 0 || to < 0 || from > to || strings.Count(got, "from=<sender@client.example>") != 1 {
		t.Fatalf("want one from= before to=:\n%s", got)
	}
	if !strings.Contains(got, "msgid=<202611250425.ID@refhost.example.org>") {
		t.Errorf("the added Message-Id is not logged:\n%s", got)
	}
}
