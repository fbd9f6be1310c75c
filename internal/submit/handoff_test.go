package submit

import (
	"bytes"
	"context"
	"github.com/posthorn/posthorn/internal/policy"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/header"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/internal/smtpd/smtpdtest"
	"github.com/posthorn/posthorn/queue"
)

// fakeMTA is an SMTP server on loopback with the reference host's users.
func fakeMTA(t *testing.T) (*smtpdtest.Backend, string) {
	t.Helper()
	be := smtpdtest.Reference()
	srv, err := smtpd.New(smtpd.Config{Hostname: "refhost.example.org", Backend: be,
		Policy: &policy.Policy{RelayHosts: policy.DefaultRelayHosts(), Router: be.Router()}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(context.Background(), c)
		}
	}()
	return be, l.Addr().String()
}

func newHandoff(addr string) *Handoff {
	return &Handoff{Addr: addr, Hostname: "refhost.example.org", Version: "posthorn 0.1.0",
		Trusted:   func(u string) bool { return u == "root" },
		HostNames: header.HostNames("refhost.example.org", "refhost", []string{"[127.0.0.1]"}),
		Date:      gmt, Now: func() time.Time { return now }, OldStyleHeaders: true}
}

// fieldNames lists the header field names of a message text.
func fieldNames(text []byte) []string {
	hs, _ := accept.ParseMessage(text, false)
	var out []string
	for _, h := range hs {
		out = append(out, h.Name)
	}
	return out
}

// TestHandoffComposeInjection: issue 9: -F and -f were written raw into
// the hand-off; "-F $'Name\nBcc: victim@localhost\nX-Injected: 1\n\nbody'"
// made real Bcc: and X-Injected: fields and pushed the rest into the body.
func TestHandoffComposeInjection(t *testing.T) {
	h := newHandoff("")
	req := &Request{User: bob, FullName: "Name\nBcc: victim@localhost\nX-Injected: 1\n\nbody", Sender: "evil@x.example\nX-Inj: 1\r"}
	headers, body := accept.ParseMessage([]byte("Subject: s\n\nthe body\n"), true)
	env := h.submitter().envelope(req)
	text := h.compose(req, env, headers, body, []string{"alice"})
	got := strings.Join(fieldNames(text), ",")
	if got != "Received,Date,From,Message-Id,X-Authentication-Warning,Subject" {
		t.Errorf("fields %s in:\n%s", got, text)
	}
	for _, want := range []string{"\nFrom: \"Name Bcc: victim@localhost X-Injected: 1  body\" <",
		"\nX-Authentication-Warning: refhost.example.org: bob set sender to evil@x.example X-Inj: 1  using -f\n", "\n\nthe body\n"} {
		if !bytes.Contains(text, []byte(want)) {
			t.Errorf("lacks %q:\n%s", want, text)
		}
	}
}

// TestHandoffT is issue 8's message handed off by a user: the MTA gets the
// addresses qualified and no Bcc:, and refuses the unknown users, which
// sendmail reports and exits 67 for.
func TestHandoffT(t *testing.T) {
	be, addr := fakeMTA(t)
	h := newHandoff(addr)
	var errw bytes.Buffer
	res, err := h.Submit(&Request{User: bob, ReadHeaders: true}, strings.NewReader("To: alice, Bob <bob@localhost>\nCc: accdave\nBcc: carol\nSubject: x\n\nbody\n"), &errw)
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit != 67 || res.ID == "" || !strings.Contains(errw.String(), "<accdave@refhost.example.org>... User unknown") {
		t.Errorf("res %+v, stderr %q", res, errw.String())
	}
	if strings.Join(res.Accepted, ",") != "alice,bob@localhost,carol" {
		t.Errorf("accepted %q", res.Accepted)
	}
	msgs := be.Stored()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	data := string(msgs[0].Data)
	for _, want := range []string{"\nTo: alice@refhost.example.org, Bob <bob@refhost.example.org>\n", "\nCc: accdave@refhost.example.org\n",
		"\nFrom: Bob Example <bob@refhost.example.org>\n"} {
		if !strings.Contains(data, want) {
			t.Errorf("MTA got no %q:\n%s", want, data)
		}
	}
	if strings.Contains(data, "Bcc") || strings.Contains(data, "carol") {
		t.Errorf("Bcc: handed off:\n%s", data)
	}
}

func smtpEnv(from string, rcpts ...string) *smtpd.Envelope {
	env := &smtpd.Envelope{ID: "LOCAL1", From: smtpd.Path{Raw: "<" + from + ">", Addr: from}, MailTime: now,
		Received: "from localclient (bob@localhost)\n\tby refhost.example.org (posthorn 0.1.0/Submit) with ESMTP id LOCAL1;\n\tWed, 25 Nov 2026 04:26:20 GMT"}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, smtpd.Recipient{Path: smtpd.Path{Raw: "<" + r + ">", Addr: r}})
	}
	return env
}

const bsText = "Subject: via -bs\nTo: alice, nosuchuser\n\nBody via -bs.\n"

// TestSMTPBackend: a user's -bs message reaches the MTA with the MSP's
// header (its Received first, "owned process doing -bs", From: with the
// full name, addresses qualified); a recipient refused after the 250 is
// reported, sets the exit code and is returned to the sender in a DSN.
func TestSMTPBackend(t *testing.T) {
	be, addr := fakeMTA(t)
	var errw bytes.Buffer
	b := &SMTPBackend{Handoff: newHandoff(addr), User: bob, IDs: queue.NewIDGen(4242, func() time.Time { return now }), Errors: &errw}
	id, err := b.Enqueue(context.Background(), smtpEnv("bob", "alice", "nosuchuser"), strings.NewReader(bsText))
	if err != nil || id == "" {
		t.Fatalf("Enqueue: %q %v", id, err)
	}
	if b.Exit() != 67 || !strings.Contains(errw.String(), "User unknown") {
		t.Errorf("exit %d, stderr %q", b.Exit(), errw.String())
	}
	msgs := be.Stored()
	if len(msgs) != 2 {
		t.Fatalf("%d messages at the MTA", len(msgs))
	}
	got := "\n" + string(msgs[0].Data)
	// The MTA's own trace header (no resolver here) is the envelope's;
	// the text starts with the MSP's.
	if want := "from refhost.example.org ([127.0.0.1])\n"; !strings.HasPrefix(msgs[0].Env.Received, want) {
		t.Errorf("MTA's trace header: %q", msgs[0].Env.Received)
	}
	if names := strings.Join(fieldNames(msgs[0].Data), ","); names != "Received,Date,From,Message-Id,X-Authentication-Warning,Subject,To" {
		t.Errorf("fields %s:\n%s", names, got)
	}
	for _, w := range []string{"\nReceived: from localclient (bob@localhost)\n", "\nFrom: Bob Example <bob@refhost.example.org>\n",
		"\nDate: Wed, 25 Nov 2026 04:26:20 GMT\n", "\nMessage-Id: <202611250426.LOCAL1@refhost.example.org>\n",
		"\nX-Authentication-Warning: refhost.example.org: bob owned process doing -bs\n", "\nTo: alice@refhost.example.org, nosuchuser@refhost.example.org\n"} {
		if !strings.Contains(got, w) {
			t.Errorf("lacks %q:\n%s", w, got)
		}
	}
	report := msgs[1]
	if report.Env.From.Addr != "" || len(report.Env.Rcpts) != 1 || report.Env.Rcpts[0].Addr != "bob@refhost.example.org" {
		t.Errorf("DSN envelope %+v", report.Env)
	}
	for _, w := range []string{"From: Mail Delivery Subsystem <MAILER-DAEMON@refhost.example.org>\n", "To: <bob@refhost.example.org>\n",
		"\n<nosuchuser>\n    (reason: 550 5.1.1 <nosuchuser@refhost.example.org>... User unknown)\n    (expanded from: <nosuchuser>)\n",
		"\n... while talking to " + addr + ":\n>>> RCPT TO:<nosuchuser@refhost.example.org>\n<<< 550 5.1.1 <nosuchuser@refhost.example.org>... User unknown\n550 5.1.1 <nosuchuser>... User unknown\n",
		"Final-Recipient: RFC822; nosuchuser@refhost.example.org\n", "Action: failed\n", "Status: 5.1.1\n",
		"Content-Type: message/rfc822\n\nReturn-Path: <bob@refhost.example.org>\nReceived: from localclient", "\nBody via -bs.\n"} {
		if !strings.Contains(string(report.Data), w) {
			t.Errorf("DSN lacks %q:\n%s", w, report.Data)
		}
	}

	// every recipient refused: the DATA reply is the refusal, no DSN
	_, err = b.Enqueue(context.Background(), smtpEnv("bob", "nosuchuser"), strings.NewReader(bsText))
	if err == nil || !strings.Contains(err.Error(), "550 5.1.1 <nosuchuser@refhost.example.org>... User unknown") || len(be.Stored()) != 2 {
		t.Errorf("all refused: %v, %d messages", err, len(be.Stored()))
	}
	// the MTA is down: a temporary failure
	b.Handoff.Addr = "127.0.0.1:1"
	if _, err = b.Enqueue(context.Background(), smtpEnv("bob", "alice"), strings.NewReader(bsText)); err == nil || !strings.HasPrefix(err.Error(), "451 4.4.1 ") {
		t.Errorf("MTA down: %v", err)
	}
}

// FuzzHandoffCompose: whatever -F, -f, the GECOS name, the user name and
// the message hold, the hand-off's header is our fields (Received, From
// when missing, the -f warning) followed by the message's own fields, one
// line each, and the body arrives whole.
func FuzzHandoffCompose(f *testing.F) {
	f.Add("Name\nBcc: victim@localhost\nX-Injected: 1\n\nbody", "evil@x.example\nX-Inj: 1", "Bob Example", "bob", []byte("Subject: s\n\nbody\n"))
	f.Add("", "", "G\re\x00cos", "bob", []byte("To: a, b\nBcc: c\n\nx"))
	f.Add("x <y@z>", "<>", "", "b\nob", []byte("From: me\nCc: you\n  folded\nnot a header\nbody\n"))
	f.Fuzz(func(t *testing.T, fullName, sender, gecos, user string, msg []byte) {
		if user == "" {
			return
		}
		h := newHandoff("")
		req := &Request{User: User{Name: user, FullName: gecos}, FullName: fullName, Sender: sender}
		headers, body := accept.ParseMessage(msg, true)
		env := h.submitter().envelope(req)
		text := h.compose(req, env, headers, body, nil)

		want := append([]string{"Received"}, added(headers)...)
		if sender != "" {
			want = append(want, "X-Authentication-Warning")
		}
		for _, hd := range env.EditHeaders(headers) {
			want = append(want, hd.Name)
		}
		got, gotBody := accept.ParseMessage(text, false)
		var names []string
		for _, hd := range got {
			names = append(names, hd.Name)
		}
		if strings.Join(names, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("fields %q, want %q in:\n%q", names, want, text)
		}
		for _, hd := range got[:len(want)-len(env.EditHeaders(headers))] {
			if strings.ContainsAny(hd.Value, "\r\x00") || strings.Contains(hd.Value, "\n") && hd.Name != "Received" {
				t.Fatalf("%s: %q", hd.Name, hd.Value)
			}
		}
		if string(gotBody) != string(body) && string(gotBody) != string(body)+"\n" {
			t.Fatalf("body %q, want %q", gotBody, body)
		}

		// the -bs hand-off: the same fields after smtpd's Received
		bs := append([]byte("Received: from localclient (x@localhost)\n\tby h (v) with ESMTP id L;\n\td\n"), msg...)
		headers, body = accept.ParseMessage(bs, false)
		text = h.composeSMTP(User{Name: user, FullName: gecos}, sender, headers, body, "LOCAL1")
		want = append([]string{"Received"}, added(headers[1:])...)
		if user != "root" {
			want = append(want, "X-Authentication-Warning")
		}
		for _, hd := range env.EditHeaders(headers[1:]) {
			want = append(want, hd.Name)
		}
		got, gotBody = accept.ParseMessage(text, false)
		names = nil
		for _, hd := range got {
			names = append(names, hd.Name)
		}
		if strings.Join(names, "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("-bs: fields %q, want %q in:\n%q", names, want, text)
		}
		if string(gotBody) != string(body) && string(gotBody) != string(body)+"\n" {
			t.Fatalf("-bs: body %q, want %q", gotBody, body)
		}
	})
}

// added names the fields the MSP adds to a message with fields hs, in
// order: Date, From and Message-Id when missing, and the Resent- ones in a
// resent message.
func added(hs []queue.Header) []string {
	resent := header.Resent(hs)
	var out []string
	for _, f := range []struct {
		name   string
		resent bool
	}{{"Resent-Date", true}, {"Date", false}, {"Resent-From", true}, {"From", false}, {"Resent-Message-Id", true}, {"Message-Id", false}} {
		if (!f.resent || resent) && !header.Has(hs, f.name) {
			out = append(out, f.name)
		}
	}
	return out
}

// TestHandoffMSPFields: the hand-off adds what sendmail's MSP adds
// (02-mbox-alice.txt): its Received with its own queue ID ("for" only for
// one recipient given as an argument), then Date, From and Message-Id with
// that ID, before the message's fields; a resent message gets the
// Resent- ones from the user, not from the original From:.
func TestHandoffMSPFields(t *testing.T) {
	h := newHandoff("")
	h.IDs = queue.NewIDGen(1477, func() time.Time { return now })
	for _, tc := range []struct {
		name  string
		req   *Request
		rcpts []string
		msg   string
		want  string
	}{
		{"one argument", &Request{User: bob}, []string{"alice"}, "Subject: s\n\nbody\n",
			"Received: (from bob@localhost)\n\tby refhost.example.org (posthorn 0.1.0/Submit) id ID\n\tfor alice; Wed, 25 Nov 2026 04:26:20 GMT\n" +
				"Date: Wed, 25 Nov 2026 04:26:20 GMT\nFrom: Bob Example <bob@refhost.example.org>\nMessage-Id: <202611250426.ID@refhost.example.org>\nSubject: s\n"},
		{"-t", &Request{User: bob, ReadHeaders: true}, []string{"alice"}, "To: alice\n\nbody\n",
			"Received: (from bob@localhost)\n\tby refhost.example.org (posthorn 0.1.0/Submit) id ID;\n\tWed, 25 Nov 2026 04:26:20 GMT\n" +
				"Date: Wed, 25 Nov 2026 04:26:20 GMT\nFrom: Bob Example <bob@refhost.example.org>\nMessage-Id: <202611250426.ID@refhost.example.org>\nTo: alice@refhost.example.org\n"},
		{"resent", &Request{User: bob, ReadHeaders: true}, []string{"alice"}, "From: Orig <o@remote.example>\nDate: d\nMessage-Id: <m@remote.example>\nResent-To: alice\n\nbody\n",
			"Received: (from bob@localhost)\n\tby refhost.example.org (posthorn 0.1.0/Submit) id ID;\n\tWed, 25 Nov 2026 04:26:20 GMT\n" +
				"Resent-Date: Wed, 25 Nov 2026 04:26:20 GMT\nResent-From: Bob Example <bob@refhost.example.org>\nResent-Message-Id: <202611250426.ID@refhost.example.org>\n" +
				"From: Orig <o@remote.example>\nDate: d\nMessage-Id: <m@remote.example>\nResent-To: alice@refhost.example.org\n"},
	} {
		headers, body := accept.ParseMessage([]byte(tc.msg), true)
		env := h.submitter().envelope(tc.req)
		text := string(h.compose(tc.req, env, headers, body, tc.rcpts))
		hdr, _, _ := strings.Cut(text, "\n\n")
		id := regexp.MustCompile(` id (\w+)`).FindStringSubmatch(hdr)
		if id == nil {
			t.Fatalf("%s: no ID in\n%s", tc.name, hdr)
		}
		if want := strings.ReplaceAll(tc.want, "ID", id[1]); hdr+"\n" != want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, hdr, want)
		}
	}
}
