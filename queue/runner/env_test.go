package runner

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

var update = flag.Bool("update", false, "rewrite golden files")

// clock is a settable fake clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// delivered is one message a fake mailer received.
type delivered struct {
	mailer, host string
	sender       string
	rcpts        []string
	header       string
	body         string
}

// fakeMailers records deliveries; results are chosen per address.
type fakeMailers struct {
	mu    sync.Mutex
	got   []delivered
	fails map[string]error // address → error (nil or missing: delivered)
}

func (f *fakeMailers) mailer(name string) Mailer {
	return MailerFunc(func(ctx context.Context, d *Delivery) []Result {
		body, _ := io.ReadAll(d.Body)
		rec := delivered{mailer: name, host: d.Host, sender: d.Sender, header: string(d.Header), body: string(body)}
		var res []Result
		f.mu.Lock()
		for _, rc := range d.Rcpts {
			rec.rcpts = append(rec.rcpts, rc.Addr)
			err := f.fails[rc.Addr]
			r := Result{Err: err}
			switch name {
			case "local":
				r.Relay, r.DSN, r.Delivered = "local", "2.1.5", true
				if err == nil {
					r.Reply = "250 2.1.5 Ok"
				}
			case "esmtp":
				fmt.Fprintf(d.Verbose, "%s... Connecting to mx.%s. port 2526 via esmtp...\n", rc.Addr, d.Host)
				r.Relay, r.RemoteMTA = "mx."+d.Host+". [127.0.0.10]", "mx."+d.Host+"."
				if err == nil {
					r.Stat = "Ok: queued as 4AB12"
				} else if st := status.From(err); !st.Temporary() {
					r.Reply = st.Error()
				}
			default:
				r.Delivered = true
			}
			res = append(res, r)
		}
		f.got = append(f.got, rec)
		f.mu.Unlock()
		return res
	})
}

func (f *fakeMailers) deliveries() []delivered {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]delivered(nil), f.got...)
}

// fakeRouter: "|prog" → prog, "/path" → *file*, "@remote.example" or any
// domain other than refhost.example.org → esmtp, "nosuch*" → User unknown,
// the rest → local.
func fakeRouter(ctx context.Context, j *queue.Job, rc *queue.Recipient) (Route, error) {
	a := strings.Trim(rc.Addr, "<>")
	if len(a) > 1 && a[0] == '"' && a[len(a)-1] == '"' {
		a = a[1 : len(a)-1] // "|prog args", as sendmail writes it in the qf
	}
	switch {
	case strings.HasPrefix(a, "|"):
		return Route{Mailer: "prog", User: a}, nil
	case strings.HasPrefix(a, "/"):
		return Route{Mailer: "*file*", User: a}, nil
	case strings.HasPrefix(a, "nosuch"):
		return Route{}, status.New(550, "5.1.1", "%s... User unknown", rc.Addr)
	}
	user, domain, ok := strings.Cut(a, "@")
	if ok && domain != "refhost.example.org" && domain != "localhost" {
		return Route{Mailer: "esmtp", Host: domain, User: a}, nil
	}
	return Route{Mailer: "local", User: user}, nil
}

type env struct {
	t     *testing.T
	dir   string
	clk   *clock
	store *queue.Store
	log   *bytes.Buffer
	mail  *fakeMailers
	r     *Runner
	cfg   Config
}

func newEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	return newEnvAt(t, time.Date(2026, 11, 25, 4, 29, 9, 0, time.UTC), mod)
}

// newEnvAt is newEnv with the clock set to now.
func newEnvAt(t *testing.T, now time.Time, mod func(*Config)) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), clk: &clock{t: now},
		log: &bytes.Buffer{}, mail: &fakeMailers{fails: map[string]error{}}}
	var err error
	lg := maillog.New(&syncWriter{w: e.log}, "sm-mta")
	e.store, err = queue.Open(queue.Options{Dirs: []string{e.dir}, Sync: queue.SyncNone, Mode: 0o600,
		Now: e.clk.Now, Pid: 5913, Logger: lg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.cfg = Config{
		Store: e.store, Router: RouterFunc(fakeRouter),
		Mailers: map[string]Mailer{"local": e.mail.mailer("local"), "esmtp": e.mail.mailer("esmtp"),
			"prog": e.mail.mailer("prog"), "*file*": e.mail.mailer("*file*")},
		Schedule: queue.DefaultSchedule(),
		Hostname: "refhost.example.org", Version: "8.17.1.9/8.17.1.9/Debian-2+deb12u2",
		Logger: lg, Now: e.clk.Now,
	}
	if mod != nil {
		mod(&e.cfg)
	}
	e.r, err = New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// job returns a job from <alice@refhost.example.org> made now, with the
// reference's header lines, to the given R lines ("PFD:<a@b>").
func (e *env) job(rlines ...string) *queue.Job {
	j := &queue.Job{Created: e.clk.Now(), Priority: 30155, Flags: "bs",
		Macros: []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}, {Name: "r", Value: "ESMTP"}},
		Sender: "<alice@refhost.example.org>",
		Headers: []queue.Header{
			{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
			{HasCond: true, Name: "Received", Value: " from client.example (localhost [127.0.0.1])\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP id \x81i;\n\tWed, 25 Nov 2026 04:29:09 GMT"},
			{HasCond: true, Cond: "D", Name: "Date", Value: " Wed, 25 Nov 2026 04:29:09 GMT"},
			{HasCond: true, Cond: "x", Name: "Full-Name", Value: " Alice Example"},
			{HasCond: true, Cond: "M", Name: "Message-Id", Value: " <202611250429.test@refhost.example.org>"},
			{HasCond: true, Name: "From", Value: " Alice Example <alice@refhost.example.org>"},
			{HasCond: true, Name: "Subject", Value: " test"},
		}}
	for _, l := range rlines {
		flags, addr, _ := strings.Cut(l, ":")
		j.Recipients = append(j.Recipients, queue.Recipient{Flags: flags, Addr: addr,
			FinalRcpt: "RFC822; " + strings.Trim(addr, "<>")})
	}
	return j
}

func (e *env) enqueue(j *queue.Job) string {
	e.t.Helper()
	if err := e.store.Enqueue(j, strings.NewReader("Hello.\n")); err != nil {
		e.t.Fatal(err)
	}
	return j.ID
}

func (e *env) run(o RunOptions) Stats {
	e.t.Helper()
	st, err := e.r.Run(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

// read returns the job id as now on disk, or nil when it is gone.
func (e *env) read(id string) *queue.Job {
	e.t.Helper()
	data, err := os.ReadFile(filepath.Join(e.dir, "qf"+id))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	j, err := queue.Parse(id, data)
	if err != nil {
		e.t.Fatal(err)
	}
	return j
}

var (
	stampRE = regexp.MustCompile(`(?m)^.*?sm-mta\[\d+\]: `)
	idRE    = regexp.MustCompile(`\b[0-9A-Za-x]{8}005913\b`)
)

// normalize makes log and -v output comparable: syslog stamps dropped,
// queue IDs numbered in order of appearance, the queue directory fixed.
func (e *env) normalize(s string) string {
	s = stampRE.ReplaceAllString(s, "")
	s = strings.ReplaceAll(s, e.dir, "/var/spool/mqueue")
	seen := map[string]string{}
	return idRE.ReplaceAllStringFunc(s, func(id string) string {
		if n, ok := seen[id]; ok {
			return n
		}
		n := "QID" + string(rune('A'+len(seen)))
		seen[id] = n
		return n
	})
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// indexed returns the runner's index entry of job id.
func (e *env) indexed(id string) (queue.Entry, bool) {
	es := e.r.index().Select(queue.Filter{IDs: []queue.Match{{Substr: id}}}, queue.Schedule{}, e.clk.Now())
	if len(es) != 1 {
		return queue.Entry{}, false
	}
	return es[0], true
}
