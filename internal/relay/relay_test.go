package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue/runner"
)

func statOf(t *testing.T, r runner.Result) *status.Error {
	t.Helper()
	var st *status.Error
	if !errors.As(r.Err, &st) {
		t.Fatalf("result without status: %+v", r)
	}
	return st
}

func wantSent(t *testing.T, r runner.Result, relay string) {
	t.Helper()
	if r.Err != nil {
		t.Fatalf("not sent: %v (%+v)", r.Err, r)
	}
	if r.Relay != relay {
		t.Errorf("relay=%q, want %q", r.Relay, relay)
	}
}

func wantDeferred(t *testing.T, r runner.Result, text string) {
	t.Helper()
	st := statOf(t, r)
	if !st.Temporary() || st.Text != text {
		t.Errorf("got %d %s %q, want deferred %q", st.Code, st.Enhanced, st.Text, text)
	}
}

// MX 10 refuses, MX 20 takes the message; MX 10 is recorded down.
func TestDeadFirstMX(t *testing.T) {
	w := newWorld(t, nil)
	w.host("mx1.multi.example", "127.0.0.13", nil)
	s := w.host("mx2.multi.example", "127.0.0.14", &sink{})
	w.mx("multi.example", "mx1.multi.example", "mx2.multi.example")
	m := newMsg("multi.example", simpleHeader, "x\n", "<other@multi.example>")
	res := w.deliver(m)
	wantSent(t, res[0], "mx2.multi.example. [127.0.0.14]")
	if n := len(s.messages()); n != 1 {
		t.Errorf("%d messages at MX 20", n)
	}
	v := m.verbose.String()
	if !strings.Contains(v, "<other@multi.example>... Connecting to mx1.multi.example. port 2526 via esmtp...\n"+
		"<other@multi.example>... Connecting to mx2.multi.example. port 2526 via esmtp...\n220 ") {
		t.Errorf("-v:\n%s", v)
	}
	st, ok := w.hs.Lookup("mx1.multi.example")
	if !ok || !st.Down() || st.Errno != 111 || st.DSN != "4.4.1" {
		t.Errorf("host status of MX 10: %+v %v", st, ok)
	}
	if st, ok := w.hs.Lookup("mx2.multi.example"); !ok || st.Down() || st.DSN != "2.0.0" || !strings.HasPrefix(st.Reply, "250 2.0.0 Ok") {
		t.Errorf("host status of MX 20: %+v %v", st, ok)
	}
}

// Every host refuses: deferred with sendmail's text, relay= the last
// host tried; the next delivery skips the hosts known down.
func TestAllRefusedThenSkipped(t *testing.T) {
	w := newWorld(t, nil)
	w.host("mx1.multi.example", "127.0.0.13", nil)
	w.host("mx2.multi.example", "127.0.0.14", nil)
	w.mx("multi.example", "mx1.multi.example", "mx2.multi.example")
	res := w.deliver(newMsg("multi.example", simpleHeader, "x\n", "<other@multi.example>"))
	wantDeferred(t, res[0], "Connection refused by mx2.multi.example.")
	if st := statOf(t, res[0]); st.Enhanced != "4.4.1" || res[0].Relay != "mx2.multi.example. [127.0.0.14]" || res[0].RemoteMTA != "mx2.multi.example." {
		t.Errorf("result %+v", res[0])
	}

	m := newMsg("multi.example", simpleHeader, "x\n", "<other@multi.example>")
	res = w.deliver(m)
	wantDeferred(t, res[0], "Connection refused by mx2.multi.example.")
	if res[0].Relay != "mx2.multi.example." {
		t.Errorf("relay of a skipped host: %q", res[0].Relay)
	}
	if strings.Contains(m.verbose.String(), "Connecting") {
		t.Errorf("connected to a host known down:\n%s", m.verbose.String())
	}
	// Once the status has expired, the hosts are tried again.
	w.clock.Advance(31 * time.Minute)
	m = newMsg("multi.example", simpleHeader, "x\n", "<other@multi.example>")
	w.deliver(m)
	if strings.Count(m.verbose.String(), "Connecting") != 2 {
		t.Errorf("after expiry:\n%s", m.verbose.String())
	}
}

// One recipient refused with 550, the other accepted: one bounce with
// the remote reply, one delivery, in one transaction (go-smtp server).
func TestMixedRecipients(t *testing.T) {
	w := newWorld(t, nil)
	be := &gsBackend{rcpt: func(n int, to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
		}
		return nil
	}}
	w.goSMTP("mx.mixed.example", "127.0.0.20", be, nil)
	w.mx("mixed.example", "mx.mixed.example")
	m := newMsg("mixed.example", simpleHeader, "body\n", "<nobody@mixed.example>", "<user@mixed.example>")
	res := w.deliver(m)
	st := statOf(t, res[0])
	if st.Code != 550 || st.Enhanced != "5.1.1" || st.Text != "User unknown" ||
		res[0].Reply != "550 5.1.1 No such user here" || res[0].RemoteMTA != "mx.mixed.example." {
		t.Errorf("refused recipient: %+v %+v", st, res[0])
	}
	wantSent(t, res[1], "mx.mixed.example. [127.0.0.20]")
	if res[1].DSN != "2.0.0" || res[1].Stat == "" {
		t.Errorf("sent: %+v", res[1])
	}
	msgs := be.messages()
	if len(msgs) != 1 || len(msgs[0].rcpts) != 1 || msgs[0].rcpts[0] != "user@mixed.example" {
		t.Fatalf("server got %+v", msgs)
	}
	if !strings.Contains(string(msgs[0].data), "Subject: host status demo\r\n\r\nbody\r\n") {
		t.Errorf("data %q", msgs[0].data)
	}
	if want := "... while talking to mx.mixed.example.:\n>>> DATA\n<<< 550 5.1.1 No such user here\n"; m.transcript.String() != want {
		t.Errorf("transcript %q", m.transcript.String())
	}
}

// 451 on the first attempt, 250 on the next: deferred, then sent.
func TestTempFailThenSent(t *testing.T) {
	w := newWorld(t, nil)
	be := &gsBackend{rcpt: func(n int, to string) error {
		if n == 0 {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
		}
		return nil
	}}
	w.goSMTP("mx.later.example", "127.0.0.21", be, nil)
	w.mx("later.example", "mx.later.example")
	res := w.deliver(newMsg("later.example", simpleHeader, "x\n", "<user@later.example>"))
	wantDeferred(t, res[0], "451 4.3.0 Try again later")
	if statOf(t, res[0]).Enhanced != "4.3.0" || res[0].Reply != "451 4.3.0 Try again later" {
		t.Errorf("deferral %+v", res[0])
	}
	// A refused recipient does not make the host down.
	if st, _ := w.hs.Lookup("mx.later.example"); st.Down() {
		t.Errorf("host down after a 451 to RCPT: %+v", st)
	}
	res = w.deliver(newMsg("later.example", simpleHeader, "x\n", "<user@later.example>"))
	wantSent(t, res[0], "mx.later.example. [127.0.0.21]")
	if n := len(be.messages()); n != 1 {
		t.Errorf("%d messages", n)
	}
}

// A hop that accepts TCP and never speaks: Timeout.initial expires, the
// recipient is deferred and the timeout logged.
func TestSilentHop(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.Timeouts.Initial = 300 * time.Millisecond })
	w.host("mx.silent.example", "127.0.0.22", &sink{silent: true})
	w.mx("silent.example", "mx.silent.example")
	res := w.deliver(newMsg("silent.example", simpleHeader, "x\n", "<user@silent.example>"))
	wantDeferred(t, res[0], "Connection timed out with mx.silent.example.")
	if st := statOf(t, res[0]); st.Enhanced != "4.4.2" || res[0].Relay != "mx.silent.example. [127.0.0.22]" {
		t.Errorf("result %+v", res[0])
	}
	if !strings.Contains(w.logBuf.String(), "6AP4WWik011158: timeout waiting for input from mx.silent.example. during client greeting") {
		t.Errorf("log:\n%s", w.logBuf.String())
	}
	if st, ok := w.hs.Lookup("mx.silent.example"); !ok || st.Errno != 110 || !st.Down() {
		t.Errorf("host status %+v", st)
	}
}

const eightBitHeader = "From: Sender <sender@client.example>\nSubject: 8-bit\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n"

// A hop without 8BITMIME gets a MIME 8-bit message as quoted-printable.
func TestNo8BITMIMEConverted(t *testing.T) {
	w := newWorld(t, nil)
	s := w.host("mx.seven.example", "127.0.0.23", &sink{ehloLines: []string{"PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES", "DSN"}})
	w.mx("seven.example", "mx.seven.example")
	m := newMsg("seven.example", eightBitHeader, "8-bit text with few 8-bit characters: grüße\n", "<user@seven.example>")
	m.d.Job.BodyType = "8BITMIME"
	res := w.deliver(m)
	wantSent(t, res[0], "mx.seven.example. [127.0.0.23]")
	got := s.transcript()
	for _, want := range []string{
		"C: MAIL From:<alice@refhost.example.org> SIZE=",
		"D: Content-Type: text/plain; charset=utf-8<CRLF>\nD: Content-Transfer-Encoding: quoted-printable<CRLF>\n" +
			"D: X-MIME-Autoconverted: from 8bit to quoted-printable by refhost.example.org id 6AP4WWik011158<CRLF>\nD: <CRLF>\n" +
			"D: 8-bit text with few 8-bit characters: gr=C3=BC=C3=9Fe<CRLF>\nD: .<CRLF>",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "BODY=") || strings.Contains(got, "Transfer-Encoding: 8bit") {
		t.Errorf("8-bit left:\n%s", got)
	}
	for _, msg := range s.messages() {
		for _, l := range msg.data {
			if hasHigh([]byte(l)) {
				t.Errorf("8-bit line sent: %q", l)
			}
		}
	}
}

// EightBitMode=pass8 sends a non-MIME 8-bit message as it is; mimefy
// converts it and gives it MIME headers.
func TestEightBitModes(t *testing.T) {
	for _, tc := range []struct {
		mode EightBitMode
		want string
	}{
		{Pass8, "D: gr\xfc\xdfe<CRLF>"},
		{Mimefy, "D: MIME-Version: 1.0<CRLF>\nD: Content-Type: text/plain; charset=unknown-8bit<CRLF>\nD: Content-Transfer-Encoding: base64<CRLF>"},
	} {
		w := newWorld(t, func(c *Config) { c.EightBitMode = tc.mode })
		s := w.host("mx.seven.example", "127.0.0.23", &sink{ehloLines: []string{"ENHANCEDSTATUSCODES"}})
		w.mx("seven.example", "mx.seven.example")
		res := w.deliver(newMsg("seven.example", "Subject: x\n", "gr\xfc\xdfe\n", "<user@seven.example>"))
		wantSent(t, res[0], "mx.seven.example. [127.0.0.23]")
		if got := s.transcript(); !strings.Contains(got, tc.want) {
			t.Errorf("mode %d: missing %q in\n%s", tc.mode, tc.want, got)
		}
	}
}

// A peer's SIZE limit below the message fails the recipients before MAIL.
func TestPeerSizeLimit(t *testing.T) {
	w := newWorld(t, nil)
	be := &gsBackend{}
	w.goSMTP("mx.small.example", "127.0.0.24", be, func(s *smtp.Server) { s.MaxMessageBytes = 100 })
	w.mx("small.example", "mx.small.example")
	res := w.deliver(newMsg("small.example", simpleHeader, strings.Repeat("x", 200)+"\n", "<user@small.example>"))
	st := statOf(t, res[0])
	if st.Code != 552 || st.Enhanced != "5.3.4" || st.Text != "Message is too large; 100 bytes max" ||
		res[0].Diagnostic != "552 5.3.4 Message is too large; 100 bytes max" {
		t.Errorf("result %+v %+v", st, res[0])
	}
	if len(be.mails) != 0 {
		t.Errorf("MAIL sent: %v", be.mails)
	}
}

// A mailertable entry with a port: that host's address, that port, no MX
// lookup.
func TestBracketedHostWithPort(t *testing.T) {
	w := newWorld(t, nil)
	s := &sink{}
	s.start(t, "127.0.0.25")
	w.dns.a["mx.table.example"] = addrs("127.0.0.25")
	w.net.add("127.0.0.25:2525", s.ln.Addr())
	m := newMsg("[mx.table.example]:2525", simpleHeader, "x\n", "<user@table.example>")
	res := w.deliver(m)
	wantSent(t, res[0], "[mx.table.example] [127.0.0.25]")
	if strings.Join(w.dns.asked, ",") != "A mx.table.example" {
		t.Errorf("DNS questions: %v", w.dns.asked)
	}
	if !strings.Contains(m.verbose.String(), "Connecting to [mx.table.example] port 2525 via esmtp...") {
		t.Errorf("-v:\n%s", m.verbose.String())
	}
}

// The smart host: the relay mailer to an address literal, EHLO, 8-bit
// data sent as it is (F=8) even to a peer without 8BITMIME.
func TestSmartHost(t *testing.T) {
	w := newWorld(t, nil)
	s := &sink{ehloLines: []string{"PIPELINING"}}
	s.start(t, "127.0.0.26")
	w.net.add("127.0.0.26:2526", s.ln.Addr())
	m := newMsg("[127.0.0.26]", eightBitHeader, "grüße\n", "<user@far.example>")
	m.d.Mailer = "relay"
	res := w.deliver(m)
	wantSent(t, res[0], "[127.0.0.26] [127.0.0.26]")
	got := s.transcript()
	if !strings.Contains(got, "C: EHLO refhost.example.org") || !strings.Contains(got, "D: grüße<CRLF>") {
		t.Errorf("session:\n%s", got)
	}
	if len(w.dns.asked) != 0 {
		t.Errorf("DNS asked for a literal: %v", w.dns.asked)
	}
	// A refused smart host: sendmail's text with the literal.
	res = w.deliver(newMsg("[127.0.0.27]", simpleHeader, "x\n", "<user@far.example>"))
	wantDeferred(t, res[0], "Connection refused by [127.0.0.27]")
	if res[0].Relay != "[127.0.0.27] [127.0.0.27]" {
		t.Errorf("relay %q", res[0].Relay)
	}
}

// A hop that drops the connection after DATA's 354: deferred, nothing
// delivered there, and the next MX is not tried (the first may have
// taken the message: no duplicate in this attempt).
func TestDropAfterData(t *testing.T) {
	w := newWorld(t, nil)
	drop := w.host("mx1.drop.example", "127.0.0.28", &sink{dropData: true})
	backup := w.host("mx2.drop.example", "127.0.0.29", &sink{})
	w.mx("drop.example", "mx1.drop.example", "mx2.drop.example")
	res := w.deliver(newMsg("drop.example", simpleHeader, "one\ntwo\nthree\nfour\n", "<user@drop.example>"))
	wantDeferred(t, res[0], "Connection reset by mx1.drop.example.")
	if st := statOf(t, res[0]); st.Enhanced != "4.4.2" || res[0].Relay != "mx1.drop.example. [127.0.0.28]" {
		t.Errorf("result %+v", res[0])
	}
	if len(drop.messages()) != 0 || len(backup.messages()) != 0 || backup.connections() != 0 {
		t.Errorf("delivered: %d at MX 10, %d at MX 20 (%d connections)", len(drop.messages()), len(backup.messages()), backup.connections())
	}
}

// A hop refused before the message was sent passes the recipients to the
// next MX in the same attempt.
func TestDataRefusedTemporarilyTriesNextMX(t *testing.T) {
	w := newWorld(t, nil)
	w.host("mx1.busy.example", "127.0.0.30", &sink{data: "451 4.3.0 Busy, try later"})
	backup := w.host("mx2.busy.example", "127.0.0.31", &sink{})
	w.mx("busy.example", "mx1.busy.example", "mx2.busy.example")
	res := w.deliver(newMsg("busy.example", simpleHeader, "x\n", "<user@busy.example>"))
	wantSent(t, res[0], "mx2.busy.example. [127.0.0.31]")
	if len(backup.messages()) != 1 {
		t.Error("not at MX 20")
	}
}

// PIPELINING: the sink answers no RCPT before it has read DATA, so a
// client waiting for each reply would stall until Timeout.rcpt.
func TestPipelining(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.Timeouts.Rcpt = 5 * time.Second })
	held := &holdSink{}
	held.start(t, "127.0.0.33")
	w.dns.a["mx.hold.example"] = addrs("127.0.0.33")
	w.net.add("127.0.0.33:2526", held.ln.Addr())
	w.mx("hold.example", "mx.hold.example")
	res := w.deliver(newMsg("hold.example", simpleHeader, "x\n", "<a@hold.example>", "<b@hold.example>"))
	for _, r := range res {
		wantSent(t, r, "mx.hold.example. [127.0.0.33]") // else Timeout.rcpt had expired
	}
	// Without PIPELINING (HELO peer) one command at a time.
	s := w.host("mx.old.example", "127.0.0.34", &sink{ehloReply: "502 5.5.2 Error: command not recognized"})
	w.mx("old.example", "mx.old.example")
	res = w.deliver(newMsg("old.example", simpleHeader, "x\n", "<a@old.example>", "<b@old.example>"))
	for _, r := range res {
		wantSent(t, r, "mx.old.example. [127.0.0.34]")
	}
	got := s.transcript()
	if !strings.Contains(got, "C: HELO refhost.example.org<CRLF>\nS: 250 mx.sink.test\nC: MAIL From:<alice@refhost.example.org><CRLF>\nS: 250 2.1.0 Ok\n"+
		"C: RCPT To:<a@old.example><CRLF>\nS: 250 2.1.5 Ok\nC: RCPT To:<b@old.example><CRLF>\nS: 250 2.1.5 Ok\nC: DATA<CRLF>\nS: 354") {
		t.Errorf("EHLO 5xx -> HELO session:\n%s", got)
	}
}

// STARTTLS when offered: a self-signed certificate is accepted and logged
// verify=FAIL; with the certificate among RootCAs, verify=OK.
func TestStartTLS(t *testing.T) {
	cert, x := selfSigned(t, "mx.tls.example", "127.0.0.35")
	for _, tc := range []struct {
		name   string
		roots  bool
		verify string
	}{{"self-signed", false, "verify=FAIL"}, {"trusted", true, "verify=OK"}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, func(c *Config) {
				if tc.roots {
					pool := x509.NewCertPool()
					pool.AddCert(x)
					c.TLS = &tls.Config{RootCAs: pool}
				}
			})
			be := &gsBackend{}
			w.goSMTP("mx.tls.example", "127.0.0.35", be, func(s *smtp.Server) {
				s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
			})
			w.mx("tls.example", "mx.tls.example")
			m := newMsg("tls.example", simpleHeader, "secret\n", "<user@tls.example>")
			res := w.deliver(m)
			wantSent(t, res[0], "mx.tls.example. [127.0.0.35]")
			log := w.logBuf.String()
			if !strings.Contains(log, "STARTTLS=client, relay=mx.tls.example., version=TLSv1.3, "+tc.verify+", cipher=TLS_") || !strings.Contains(log, "bits=") {
				t.Errorf("log:\n%s", log)
			}
			v := m.verbose.String()
			if !strings.Contains(v, ">>> STARTTLS\n220 ") || strings.Count(v, ">>> EHLO") != 2 {
				t.Errorf("-v:\n%s", v)
			}
		})
	}
}

// A broken TLS peer: the handshake fails, the host is tried again
// without STARTTLS on a new connection.
func TestStartTLSFailureRetriesPlain(t *testing.T) {
	w := newWorld(t, nil)
	s := w.host("mx.badtls.example", "127.0.0.36", &sink{badTLS: true})
	w.mx("badtls.example", "mx.badtls.example")
	res := w.deliver(newMsg("badtls.example", simpleHeader, "x\n", "<user@badtls.example>"))
	wantSent(t, res[0], "mx.badtls.example. [127.0.0.36]")
	if s.connections() != 2 || len(s.messages()) != 1 {
		t.Errorf("%d connections, %d messages", s.connections(), len(s.messages()))
	}
	if !strings.Contains(w.logBuf.String(), "STARTTLS=client, relay=mx.badtls.example., error: connect failed") {
		t.Errorf("log:\n%s", w.logBuf.String())
	}
	// A destination that requires TLS is deferred instead.
	w = newWorld(t, func(c *Config) {
		c.TLSPolicy = func(context.Context, TLSQuery) TLSRequirement { return TLSRequirement{Mode: TLSEncrypt, Policy: "map"} }
	})
	w.host("mx.badtls.example", "127.0.0.36", &sink{badTLS: true})
	w.mx("badtls.example", "mx.badtls.example")
	res = w.deliver(newMsg("badtls.example", simpleHeader, "x\n", "<user@badtls.example>"))
	if st := statOf(t, res[0]); !st.Temporary() || st.Enhanced != "4.7.0" || !strings.HasPrefix(st.Text, "403 4.7.0 TLS handshake failed (map: ") {
		t.Errorf("got %d %s %q", st.Code, st.Enhanced, st.Text)
	}
}

// Two deliveries to the same host share one connection; the cached one
// is probed with RSET before its second transaction.
func TestConnectionReuse(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ConnectionCacheSize = 2 })
	s := w.host("mx.accept.example", "127.0.0.12", &sink{})
	w.mx("accept.example", "mx.accept.example")
	w.mx("other.example", "mx.accept.example")
	wantSent(t, w.deliver(newMsg("accept.example", simpleHeader, "one\n", "<a@accept.example>"))[0], "mx.accept.example. [127.0.0.12]")
	m := newMsg("other.example", simpleHeader, "two\n", "<b@other.example>")
	wantSent(t, w.deliver(m)[0], "mx.accept.example. [127.0.0.12]")
	if s.connections() != 1 || len(s.messages()) != 2 {
		t.Errorf("%d connections for %d messages", s.connections(), len(s.messages()))
	}
	if v := m.verbose.String(); !strings.HasPrefix(v, "<b@other.example>... Using cached ESMTP connection to mx.accept.example. via esmtp...\n>>> RSET\n250 2.0.0 Ok\n>>> MAIL") {
		t.Errorf("-v:\n%s", v)
	}
	// Idle past ConnectionCacheTimeout: closed with QUIT.
	w.clock.Advance(6 * time.Minute)
	w.client.sweep()
	if got := s.transcript(); !strings.HasSuffix(got, "C: QUIT<CRLF>\nS: 221 2.0.0 Bye\n") {
		t.Errorf("not closed:\n%s", got)
	}
	wantSent(t, w.deliver(newMsg("accept.example", simpleHeader, "three\n", "<a@accept.example>"))[0], "mx.accept.example. [127.0.0.12]")
	if s.connections() != 2 {
		t.Errorf("%d connections", s.connections())
	}
}

// The context ends while the peer holds the final reply: deferred, the
// connection dropped, no panic.
func TestContextCancelled(t *testing.T) {
	w := newWorld(t, nil)
	gotDot := make(chan struct{})
	w.host("mx.slow.example", "127.0.0.37", &sink{hangFinal: gotDot})
	w.mx("slow.example", "mx.slow.example")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-gotDot; cancel() }()
	res := w.client.Deliver(ctx, newMsg("slow.example", simpleHeader, "x\n", "<user@slow.example>").d)
	st := statOf(t, res[0])
	if !st.Temporary() || !strings.HasPrefix(st.Text, "Delivery interrupted") {
		t.Errorf("result %+v", st)
	}
}

// The peer greets with our own name: the mail would loop.
func TestLoopsBackToMe(t *testing.T) {
	w := newWorld(t, nil)
	w.host("mx.me.example", "127.0.0.38", &sink{hostname: "refhost.example.org"})
	w.mx("me.example", "mx.me.example")
	m := newMsg("me.example", simpleHeader, "x\n", "<user@me.example>")
	res := w.deliver(m)
	st := statOf(t, res[0])
	if st.Code != 554 || st.Enhanced != "5.3.5" || st.Text != "Local configuration error" || res[0].Diagnostic != "553 5.3.5 system config error" {
		t.Errorf("result %+v %+v", st, res[0])
	}
	if !strings.Contains(m.transcript.String(), "553 5.3.5 mx.me.example. config error: mail loops back to me (MX problem?)\n") {
		t.Errorf("transcript %q", m.transcript.String())
	}
	if !strings.Contains(w.logBuf.String(), "SYSERR(root): mx.me.example. config error: mail loops back to me (MX problem?)") {
		t.Errorf("log %s", w.logBuf.String())
	}
	// MX records naming this host are not tried (IsLocal).
	w = newWorld(t, func(c *Config) { c.IsLocal = func(h string) bool { return h == "refhost.example.org" } })
	w.mx("back.example", "refhost.example.org")
	res = w.deliver(newMsg("back.example", simpleHeader, "x\n", "<user@back.example>"))
	if st := statOf(t, res[0]); st.Enhanced != "5.3.5" || res[0].Diagnostic != "554 5.3.5 MX list for back.example. points back to refhost.example.org" {
		t.Errorf("result %+v %+v", st, res[0])
	}
	// The real resolver drops our names itself and answers 5.3.5 when
	// nothing is left: the same configuration error, not "Host unknown".
	w.dns.mxErr["loop.example"] = status.New(554, "5.3.5", "loop.example config error: mail loops back to me (MX problem?)")
	res = w.deliver(newMsg("loop.example", simpleHeader, "x\n", "<user@loop.example>"))
	if st := statOf(t, res[0]); st.Code != 554 || st.Enhanced != "5.3.5" || st.Text != "Local configuration error" || res[0].Diagnostic != "554 5.3.5 MX list for loop.example. points back to refhost.example.org" {
		t.Errorf("result %+v %+v", st, res[0])
	}
	if !strings.Contains(w.logBuf.String(), "SYSERR(root): MX list for loop.example. points back to refhost.example.org") {
		t.Errorf("log %s", w.logBuf.String())
	}
}

// More Received headers than MaxHopCount: 554 5.4.6 without connecting.
func TestTooManyHops(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.MaxHopCount = 3 })
	s := w.host("mx.accept.example", "127.0.0.12", &sink{})
	w.mx("accept.example", "mx.accept.example")
	hdr := strings.Repeat("Received: from a by b; Wed, 25 Nov 2026 04:32:32 GMT\n", 4) + "Subject: loop\n"
	m := newMsg("accept.example", hdr, "x\n", "<user@accept.example>")
	res := w.deliver(m)
	if st := statOf(t, res[0]); st.Code != 554 || st.Enhanced != "5.4.6" || st.Text != "Too many hops" {
		t.Errorf("result %+v", st)
	}
	if s.connections() != 0 {
		t.Error("connected")
	}
	if !strings.HasPrefix(m.transcript.String(), "554 5.4.6 Too many hops 4 (3 max): from <alice@refhost.example.org> via localhost, to <user@accept.example>") {
		t.Errorf("transcript %q", m.transcript.String())
	}
}

// Resolver answers: a domain that does not exist bounces as sendmail's
// capture shows; a null MX is refused; a temporary failure defers.
func TestResolverErrors(t *testing.T) {
	w := newWorld(t, nil)
	w.dns.mxErr["nullmx.example"] = status.New(556, "5.1.10", "Domain does not accept mail")
	w.dns.mxErr["servfail.example"] = status.New(451, "4.4.3", "SERVFAIL")
	res := w.deliver(newMsg("nxdomain.invalid", simpleHeader, "x\n", "<user@nxdomain.invalid>"))
	st := statOf(t, res[0])
	if st.Code != 550 || st.Enhanced != "5.1.2" || st.Text != "Host unknown (Name server: nxdomain.invalid: host not found)" ||
		res[0].Diagnostic != "550 Host unknown" || res[0].Relay != "nxdomain.invalid" || res[0].RemoteMTA != "nxdomain.invalid" {
		t.Errorf("nxdomain: %+v %+v", st, res[0])
	}
	res = w.deliver(newMsg("nullmx.example", simpleHeader, "x\n", "<user@nullmx.example>"))
	if st := statOf(t, res[0]); st.Temporary() || st.Enhanced != "5.1.10" || res[0].Diagnostic != "556 Host does not accept mail: MX 0 ." {
		t.Errorf("null MX: %+v %+v", st, res[0])
	}
	res = w.deliver(newMsg("servfail.example", simpleHeader, "x\n", "<user@servfail.example>"))
	wantDeferred(t, res[0], "Name server: servfail.example: host name lookup failure")
	// An MX host without address, while another MX failed temporarily:
	// deferred, not bounced (sendmail's goodmxfound).
	w.host("mx1.half.example", "127.0.0.39", nil)
	w.dns.mx["half.example"] = []resolve.MX{{Host: "mx1.half.example", Pref: 10}, {Host: "mx2.half.example", Pref: 20}}
	res = w.deliver(newMsg("half.example", simpleHeader, "x\n", "<user@half.example>"))
	wantDeferred(t, res[0], "Connection refused by mx1.half.example.")
}

// NOTIFY=SUCCESS to a peer without DSN: "relayed", and no NOTIFY sent.
func TestRelayedReceipt(t *testing.T) {
	w := newWorld(t, nil)
	s := w.host("mx.nodsn.example", "127.0.0.40", &sink{ehloLines: []string{"PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"}})
	w.mx("nodsn.example", "mx.nodsn.example")
	m := newMsg("nodsn.example", simpleHeader, "x\n", "<user@nodsn.example>", "<other@nodsn.example>")
	m.d.Rcpts[0].Recipient.Flags = "PNS"
	m.d.Rcpts[0].Recipient.ORcpt = "rfc822;user@nodsn.example"
	res := w.deliver(m)
	if !res[0].Relayed || res[1].Relayed || res[0].Err != nil {
		t.Errorf("results %+v", res)
	}
	if m.transcript.String() != "<user@nodsn.example>... relayed; expect no further notifications\n" {
		t.Errorf("transcript %q", m.transcript.String())
	}
	if got := s.transcript(); strings.Contains(got, "NOTIFY") || strings.Contains(got, "ORCPT") {
		t.Errorf("DSN parameters to a peer without DSN:\n%s", got)
	}
}

// The smtp mailer says EHLO only to a greeting that says ESMTP.
func TestSMTPMailerHELO(t *testing.T) {
	w := newWorld(t, nil)
	s := w.host("mx.plain.example", "127.0.0.41", &sink{greeting: "220 mx.plain.example Service ready"})
	w.mx("plain.example", "mx.plain.example")
	m := newMsg("plain.example", simpleHeader, "x\n", "<user@plain.example>")
	m.d.Mailer = "smtp"
	wantSent(t, w.deliver(m)[0], "mx.plain.example. [127.0.0.41]")
	if !strings.Contains(s.transcript(), "C: HELO refhost.example.org<CRLF>") {
		t.Errorf("session:\n%s", s.transcript())
	}
}

// Greeting and MAIL refusals.
func TestGreetingAndMailReplies(t *testing.T) {
	w := newWorld(t, nil)
	w.host("mx.busy.example", "127.0.0.42", &sink{greeting: "421 4.3.2 mx.busy.example Service not available"})
	w.mx("busy.example", "mx.busy.example")
	res := w.deliver(newMsg("busy.example", simpleHeader, "x\n", "<user@busy.example>"))
	wantDeferred(t, res[0], "421 4.3.2 mx.busy.example Service not available")
	if st := statOf(t, res[0]); st.Enhanced != "4.5.0" {
		t.Errorf("dsn %s", st.Enhanced)
	}
	w.host("mx.no.example", "127.0.0.43", &sink{greeting: "554 5.7.1 No SMTP service here"})
	w.mx("no.example", "mx.no.example")
	res = w.deliver(newMsg("no.example", simpleHeader, "x\n", "<user@no.example>"))
	if st := statOf(t, res[0]); st.Temporary() || st.Text != "Service unavailable" || res[0].Reply != "554 5.7.1 No SMTP service here" {
		t.Errorf("5xx greeting: %+v %+v", st, res[0])
	}
}

// Many recipients are pipelined in batches, one transaction.
func TestManyRecipients(t *testing.T) {
	w := newWorld(t, nil)
	be := &gsBackend{}
	w.goSMTP("mx.many.example", "127.0.0.44", be, nil)
	w.mx("many.example", "mx.many.example")
	var rcpts []string
	for i := 0; i < 250; i++ {
		rcpts = append(rcpts, "<u"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+"@many.example>")
	}
	res := w.deliver(newMsg("many.example", simpleHeader, "x\n", rcpts...))
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if msgs := be.messages(); len(msgs) != 1 || len(msgs[0].rcpts) != 250 {
		t.Errorf("server got %d messages", len(msgs))
	}
}

// ConnectionCacheSize=1: the second host's connection pushes the first
// out ("Closing connection to", QUIT, on the -v of the delivery that
// pushed it); Close says QUIT to what is left.
func TestCacheEvictionAndClose(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ConnectionCacheSize = 1 })
	a := w.host("mx.a.example", "127.0.0.45", &sink{})
	b := w.host("mx.b.example", "127.0.0.46", &sink{})
	w.mx("a.example", "mx.a.example")
	w.mx("b.example", "mx.b.example")
	w.deliver(newMsg("a.example", simpleHeader, "x\n", "<u@a.example>"))
	mb := newMsg("b.example", simpleHeader, "x\n", "<u@b.example>")
	w.deliver(mb)
	if !strings.HasSuffix(mb.verbose.String(), "<u@b.example>... Closing connection to mx.a.example.\n>>> QUIT\n221 2.0.0 Bye\n") {
		t.Errorf("-v:\n%s", mb.verbose.String())
	}
	if !strings.HasSuffix(a.transcript(), "C: QUIT<CRLF>\nS: 221 2.0.0 Bye\n") || strings.Contains(b.transcript(), "QUIT") {
		t.Errorf("a:\n%s\nb:\n%s", a.transcript(), b.transcript())
	}
	w.client.Close()
	if !strings.HasSuffix(b.transcript(), "C: QUIT<CRLF>\nS: 221 2.0.0 Bye\n") {
		t.Errorf("b after Close:\n%s", b.transcript())
	}
	if !strings.HasSuffix(mb.verbose.String(), "Closing connection to mx.b.example.\n>>> QUIT\n221 2.0.0 Bye\n") {
		t.Errorf("-v after Close:\n%s", mb.verbose.String())
	}
	// After Close a delivery still works, without caching.
	wantSent(t, w.deliver(newMsg("a.example", simpleHeader, "x\n", "<u@a.example>"))[0], "mx.a.example. [127.0.0.45]")
}

// MaxPerDestination bounds concurrent deliveries to one destination.
func TestPerDestinationLimit(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.MaxPerDestination = 1 })
	gotDot := make(chan struct{})
	w.host("mx.slow.example", "127.0.0.47", &sink{hangFinal: gotDot})
	w.mx("slow.example", "mx.slow.example")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []runner.Result)
	go func() {
		done <- w.client.Deliver(ctx, newMsg("slow.example", simpleHeader, "x\n", "<a@slow.example>").d)
	}()
	<-gotDot
	// The first delivery holds the only slot: the second waits, and gives
	// up when its context ends.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	res := w.client.Deliver(ctx2, newMsg("slow.example", simpleHeader, "x\n", "<b@slow.example>").d)
	wantDeferred(t, res[0], "Delivery interrupted (context deadline exceeded)")
	cancel()
	<-done
}
