package mta

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	smtp "github.com/emersion/go-smtp"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/smtpd"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// The middle level of the tests: the SMTP server, the real backend, the
// queue and the runner together in one process, over a private root.

type world struct {
	t     *testing.T
	dir   string
	cfg   *conf.Config
	log   bytes.Buffer
	logMu sync.Mutex
	store *queue.Store
	site  *Site
	run   *Delivery
	addr  string // the SMTP listener
}

type sunk struct {
	from string
	to   []string
	data string
}

type logWriter struct{ w *world }

func (l logWriter) Write(p []byte) (int, error) {
	l.w.logMu.Lock()
	defer l.w.logMu.Unlock()
	return l.w.log.Write(p)
}

// users is the password database of the expander in these tests: root,
// whose mailbox the delivery agents (which ask the system) can write.
var users = aliases.UserTable{
	"root": {Name: "root", UID: os.Getuid(), GID: os.Getgid(), Home: "/nonexistent", FullName: "root"},
}

// newWorld writes a cf with extra lines and starts the whole MTA on it.
func newWorld(t *testing.T, aliasText string, extra ...string) *world {
	t.Helper()
	w := &world{t: t, dir: t.TempDir()}
	for _, d := range []string{"mqueue", "mail", "etc"} {
		os.MkdirAll(filepath.Join(w.dir, d), 0o755)
	}
	cf := append([]string{
		"Cwlocalhost", "Djposthorn.test",
		"O QueueDirectory=" + w.path("mqueue"),
		"O AliasFile=" + w.path("etc/aliases"),
		"O MailSpoolDirectory=" + w.path("mail"),
		"O AccessFile=" + w.path("etc/access"),
		"O MailerTable=" + w.path("etc/mailertable"),
		"O VirtUserTable=" + w.path("etc/virtusertable"),
		"O AuthFile=" + w.path("etc/auth"),
		"O HelpFile=" + w.path("etc/helpfile"),
		"O ForwardPath=" + w.path("nonexistent/.forward"),
		"O DefaultUser=" + users["root"].Name,
		"O ResolverServers=127.0.0.1:9", // nothing there: no test asks a real resolver
		"O AcceptUnresolvableDomains=True",
		"O DeliveryMode=background",
	}, extra...)
	os.WriteFile(w.path("etc/sendmail.cf"), []byte(strings.Join(cf, "\n")+"\n"), 0o644)
	os.WriteFile(w.path("etc/aliases"), []byte(aliasText), 0o644)
	if aliasText != "" {
		if code := aliases.Newaliases(io.Discard, w.path("etc/aliases"), aliases.BuildOptions{IsLocal: func(string) bool { return true }}); code != 0 {
			t.Fatalf("newaliases: %d", code)
		}
	}
	var err error
	w.cfg, err = conf.Load(conf.LoadOptions{Path: w.path("etc/sendmail.cf"), Identity: &conf.Identity{Hostname: "posthorn", Canonical: "posthorn.test"}})
	if err != nil {
		t.Fatal(err)
	}
	lg := maillog.New(logWriter{w}, "sm-mta")
	w.store, err = queue.Open(queue.Options{Dirs: []string{w.path("mqueue")}, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.store.Close() })
	w.site = New(Options{Config: w.cfg, Log: lg, Store: w.store, Users: users})
	t.Cleanup(w.site.Close)
	w.run, err = NewDelivery(w.site, DeliveryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.run.Runner.Shutdown(ctx)
		w.run.Close()
	})
	w.listen(w.site)
	return w
}

func (w *world) path(p string) string { return filepath.Join(w.dir, p) }

// listen serves site's SMTP side on a loopback port.
func (w *world) listen(site *Site) {
	sc, err := site.SMTPConfig(conf.DaemonPort{Name: "MTA"}, NewBackend(site, w.run))
	if err != nil {
		w.t.Fatal(err)
	}
	srv, err := smtpd.New(sc)
	if err != nil {
		w.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(context.Background(), c)
		}
	}()
	w.addr = ln.Addr().String()
}

func (w *world) send(from string, to []string, msg string) error {
	c, err := smtp.Dial(w.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SendMail(from, to, strings.NewReader(msg)); err != nil {
		return err
	}
	return c.Quit()
}

func (w *world) mailbox(user string) string {
	data, _ := os.ReadFile(w.path("mail/" + user))
	return string(data)
}

func (w *world) logged() string {
	w.logMu.Lock()
	defer w.logMu.Unlock()
	return w.log.String()
}

func (w *world) waitFor(what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s; log:\n%s", what, w.logged())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) queued() int {
	qfs, _ := filepath.Glob(w.path("mqueue/qf*"))
	return len(qfs)
}

// TestSMTPToMailbox: a message over SMTP to an alias list reaches each
// mailbox once, in the background, with sendmail's header and log lines.
func TestSMTPToMailbox(t *testing.T) {
	// Mailboxes are for system users: root's is the one a test can write.
	w := newWorld(t, "postmaster: root\nstaff: postmaster, root\n")
	msg := "From: Sender <sender@client.example>\r\nTo: staff@localhost\r\nSubject: hello\r\n\r\nbody\r\n"
	if err := w.send("sender@client.example", []string{"staff@localhost", "root@localhost"}, msg); err != nil {
		t.Fatal(err)
	}
	w.waitFor("the mailbox", func() bool { return strings.Contains(w.mailbox("root"), "Subject: hello") })
	w.waitFor("an empty queue", func() bool { return w.queued() == 0 })
	box := w.mailbox("root")
	if strings.Count(box, "Subject: hello") != 1 {
		t.Errorf("root got the message %d times (a list and its member are one mailbox)", strings.Count(box, "Subject: hello"))
	}
	for _, want := range []string{"From sender@client.example ", "\nReturn-Path: <sender@client.example>\n",
		"\nReceived: from ", "\nTo: staff@posthorn.test\n"} {
		if !strings.Contains("\n"+box, want) {
			t.Errorf("mailbox lacks %q:\n%s", want, box)
		}
	}
	w.waitFor("an empty queue", func() bool { return w.queued() == 0 })
	for _, want := range []string{"from=<sender@client.example>", "mailer=local", "stat=Sent"} {
		if !strings.Contains(w.logged(), want) {
			t.Errorf("log lacks %q:\n%s", want, w.logged())
		}
	}
}

// TestSMTPRefusals: RCPT-time answers come from the same routing and
// aliases the delivery uses.
func TestSMTPRefusals(t *testing.T) {
	w := newWorld(t, "postmaster: root\nbroken: nosuchuser\n")
	c, err := smtp.Dial(w.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("sender@client.example", nil); err != nil {
		t.Fatal(err)
	}
	for rcpt, want := range map[string]string{
		"nosuchuser@localhost":             "User unknown",
		"<@remote.example:root@localhost>": "",
		"postmaster@localhost":             "",
		"broken@localhost":                 "", // the alias exists; its member fails later, in a DSN
	} {
		err := c.Rcpt(strings.Trim(rcpt, "<>"), nil)
		switch {
		case want == "" && err != nil:
			t.Errorf("RCPT %s: %v", rcpt, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("RCPT %s: %v, want %s", rcpt, err, want)
		}
	}
}

// TestRelayThroughMailertable: a recipient the mailertable sends to a
// host and port goes out through the relay client to that host.
func TestRelayThroughMailertable(t *testing.T) {
	sink := newSink(t)
	w := newWorld(t, "postmaster: root\n")
	os.WriteFile(w.path("etc/mailertable"), []byte("sink.example esmtp:["+sink.host+"]:"+sink.port+"\n"), 0o644)
	// The mailertable is read again when it changes (at most once a second).
	time.Sleep(1100 * time.Millisecond)
	msg := "From: root@posthorn.test\r\nTo: user@sink.example\r\nSubject: out\r\n\r\nto the sink\r\n"
	if err := w.send("root@posthorn.test", []string{"user@sink.example"}, msg); err != nil {
		t.Fatal(err)
	}
	w.waitFor("the sink to have it", func() bool { return len(sink.messages()) == 1 })
	m := sink.messages()[0]
	if m.from != "root@posthorn.test" || len(m.to) != 1 || m.to[0] != "user@sink.example" || !strings.Contains(m.data, "to the sink") {
		t.Errorf("the sink got %+v", m)
	}
	w.waitFor("an empty queue", func() bool { return w.queued() == 0 })
	if !strings.Contains(w.logged(), "mailer=esmtp") || !strings.Contains(w.logged(), "stat=Sent") {
		t.Errorf("log:\n%s", w.logged())
	}
}

// TestReloadedSiteRoutes: after a SIGHUP's new Site, the runner routes with
// its mailertable (the Delivery is the same, its Site is not).
func TestReloadedSiteRoutes(t *testing.T) {
	sink := newSink(t)
	w := newWorld(t, "postmaster: root\n", "O DeliveryMode=queueonly")
	if err := w.send("root@posthorn.test", []string{"user@later.example"}, "Subject: q\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	if w.queued() != 1 {
		t.Fatalf("%d jobs queued", w.queued())
	}
	cfg, err := conf.Load(conf.LoadOptions{Path: w.path("etc/sendmail.cf"), Identity: &conf.Identity{Hostname: "posthorn", Canonical: "posthorn.test"},
		Overrides: []conf.Override{{Name: "MailerTable", Value: w.path("etc/mailertable2")}}})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(w.path("etc/mailertable2"), []byte("later.example esmtp:["+sink.host+"]:"+sink.port+"\n"), 0o644)
	if err := w.run.SetSite(New(Options{Config: cfg, Log: w.site.Log, Store: w.store, Users: users})); err != nil {
		t.Fatal(err)
	}
	if _, err := w.run.Runner.Run(context.Background(), runner.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if len(sink.messages()) != 1 {
		t.Errorf("after the reload the job did not go to the new route; log:\n%s", w.logged())
	}
}

// sink is a next hop: a go-smtp server that keeps what it gets.
type sinkServer struct {
	host, port string
	mu         sync.Mutex
	got        []sunk
}

func newSink(t *testing.T) *sinkServer {
	s := &sinkServer{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.host, s.port, _ = net.SplitHostPort(ln.Addr().String())
	srv := smtp.NewServer(sinkBackend{s})
	srv.Domain = "sink.example"
	srv.AllowInsecureAuth = true
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *sinkServer) messages() []sunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunk(nil), s.got...)
}

type sinkBackend struct{ s *sinkServer }

func (b sinkBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: b.s}, nil }

type sinkSession struct {
	s   *sinkServer
	cur sunk
}

func (x *sinkSession) Reset()        { x.cur = sunk{} }
func (x *sinkSession) Logout() error { return nil }
func (x *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	x.cur.from = from
	return nil
}
func (x *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.cur.to = append(x.cur.to, to)
	return nil
}
func (x *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	x.cur.data = string(b)
	x.s.mu.Lock()
	x.s.got = append(x.s.got, x.cur)
	x.s.mu.Unlock()
	return nil
}
