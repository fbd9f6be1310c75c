package runner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

var (
	errRefused = status.New(451, "4.4.1", "Connection refused by mx.remote.example.")
	errUnknown = status.New(550, "5.1.1", "User unknown")
)

func (e *env) failures() {
	e.mail.fails["<someone@remote.example>"] = errRefused
	e.mail.fails["<other@remote.example>"] = errRefused
	e.mail.fails["<user@bounce.example>"] = errUnknown
}

// The reference mix: one local recipient sent, one remote deferred, one
// remote rejected, one unknown local user; checked against golden log and
// -v output, the rewritten qf, and the failure DSN delivered to the sender.
func TestMixedRun(t *testing.T) {
	e := newEnv(t, nil)
	e.failures()
	id := e.enqueue(e.job("PFD:<bob@refhost.example.org>", "PFD:<someone@remote.example>",
		"PFD:<user@bounce.example>", "PFD:<nosuchuser@localhost>"))
	e.clk.Advance(41 * time.Second)
	var v bytes.Buffer
	st := e.run(RunOptions{Verbose: &v})
	if st.Jobs != 1 || st.Sent != 2 || st.Deferred != 1 || st.Bounced != 2 || st.DSNs != 1 {
		t.Errorf("stats %+v", st)
	}
	golden(t, "mixed-v.txt", e.normalize(v.String()))
	golden(t, "mixed-log.txt", e.normalize(e.log.String()))

	j := e.read(id)
	if j == nil {
		t.Fatal("job removed")
	}
	if len(j.Recipients) != 1 || j.Recipients[0].Addr != "<someone@remote.example>" {
		t.Errorf("recipients %+v", j.Recipients)
	}
	if j.Attempts != 1 || !j.LastTry.Equal(e.clk.Now()) || j.Priority != 30155+90000 {
		t.Errorf("N=%d K=%v P=%d", j.Attempts, j.LastTry, j.Priority)
	}
	if j.Message != "Deferred: Connection refused by mx.remote.example." {
		t.Errorf("M=%q", j.Message)
	}
	// The DSN went to alice through the local mailer, from <>.
	var dsnMsg *delivered
	for _, d := range e.mail.deliveries() {
		if d.mailer == "local" && d.rcpts[0] == "<alice@refhost.example.org>" {
			dsnMsg = &d
		}
	}
	if dsnMsg == nil {
		t.Fatal("no DSN delivered")
	}
	for _, want := range []string{"Return-Path: <MAILER-DAEMON@refhost.example.org>\n",
		"Subject: Returned mail: see transcript for details\n", "<user@bounce.example>\n    (reason: 550 5.1.1 User unknown)",
		"<nosuchuser@localhost>... User unknown", "Status: 5.1.1"} {
		if !strings.Contains(dsnMsg.header+"\n"+dsnMsg.body, want) {
			t.Errorf("DSN lacks %q:\n%s\n%s", want, dsnMsg.header, dsnMsg.body)
		}
	}
	if dsnMsg.sender != "MAILER-DAEMON@refhost.example.org" {
		t.Errorf("DSN sender %q", dsnMsg.sender)
	}
}

// Header conditions and macros: the local mailer gets Return-Path (P),
// esmtp does not; nobody gets Full-Name (x); $i is expanded.
func TestHeaderPerMailer(t *testing.T) {
	e := newEnv(t, nil)
	id := e.enqueue(e.job("PFD:<bob@refhost.example.org>", "PFD:<x@remote.example>"))
	e.run(RunOptions{})
	got := map[string]string{}
	for _, d := range e.mail.deliveries() {
		got[d.mailer] = d.header
	}
	if !strings.HasPrefix(got["local"], "Return-Path: <alice@refhost.example.org>\nReceived:") {
		t.Errorf("local header:\n%s", got["local"])
	}
	if strings.Contains(got["esmtp"], "Return-Path") || strings.Contains(got["esmtp"]+got["local"], "Full-Name") {
		t.Errorf("esmtp header:\n%s", got["esmtp"])
	}
	if !strings.Contains(got["esmtp"], "with ESMTP id "+id+";") {
		t.Errorf("$i not expanded:\n%s", got["esmtp"])
	}
	if e.read(id) != nil {
		t.Error("delivered job not removed")
	}
}

func TestRenderHeaderConditions(t *testing.T) {
	j := &queue.Job{ID: "6AP4T98X005913", Sender: "root", Macros: []queue.Macro{{Name: "{auth}", Value: "x"}},
		Headers: []queue.Header{
			{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
			{HasCond: true, Cond: "$j", Name: "X-J", Value: " \x81j"},
			{HasCond: true, Cond: "${auth}", Name: "X-Auth", Value: " \x81{auth}"},
			{HasCond: true, Cond: "${nope}", Name: "X-Nope", Value: " n"},
			{Name: "Old", Value: " form"},
		}}
	tests := []struct{ flags, want string }{
		{"lsDFMAw5:/|@qPSXnz9m", "Return-Path: <root@h.example>\nX-J: h.example\nX-Auth: x\nOld: form\n"},
		{"mDFMuXa", "X-J: h.example\nX-Auth: x\nOld: form\n"},
	}
	for _, tt := range tests {
		m := &macros{job: j, hostname: "h.example", sender: envelopeSender(j, "h.example")}
		if got := string(renderHeader(nil, j, tt.flags, m)); got != tt.want {
			t.Errorf("flags %s:\n%s\nwant\n%s", tt.flags, got, tt.want)
		}
	}
	for _, tt := range []struct{ sender, flags, want string }{
		{"<>", "r", "MAILER-DAEMON@h.example"},
		{"<>", "", ""},
		{"root", "", "root@h.example"},
		{"<a@b>", "", "a@b"},
	} {
		if got := envelopeSender(&queue.Job{Sender: tt.sender, Flags: tt.flags}, "h.example"); got != tt.want {
			t.Errorf("sender %q flags %q: $g = %q, want %q", tt.sender, tt.flags, got, tt.want)
		}
	}
}

// Timeout.queuewarn: one warning to the sender, the w flag, and no second
// warning on the next run.
func TestWarnOnce(t *testing.T) {
	e := newEnv(t, nil)
	e.failures()
	id := e.enqueue(e.job("PFD:<someone@remote.example>"))
	e.clk.Advance(4*time.Hour + time.Minute)
	var v bytes.Buffer
	st := e.run(RunOptions{Verbose: &v})
	if st.DSNs != 1 {
		t.Fatalf("stats %+v", st)
	}
	j := e.read(id)
	if !j.HasFlag(queue.FlagWarned) || j.Message != "Warning: could not send message for past 4 hours" {
		t.Errorf("F=%q M=%q", j.Flags, j.Message)
	}
	golden(t, "warn-v.txt", e.normalize(v.String()))
	golden(t, "warn-log.txt", e.normalize(e.log.String()))
	n := len(e.mail.deliveries())
	e.clk.Advance(time.Hour)
	if st := e.run(RunOptions{}); st.DSNs != 0 || st.Deferred != 1 {
		t.Errorf("second run %+v", st)
	}
	if got := len(e.mail.deliveries()); got != n+1 {
		t.Errorf("deliveries %d, want %d", got, n+1)
	}
	if j := e.read(id); j.Attempts != 2 || j.Message != "Deferred: Connection refused by mx.remote.example." {
		t.Errorf("N=%d M=%q", j.Attempts, j.Message)
	}
}

// Timeout.queuereturn: the deferred recipients fail with 4.4.7 and the job
// is removed.
func TestQueueReturn(t *testing.T) {
	e := newEnv(t, nil)
	e.failures()
	id := e.enqueue(e.job("PFD:<someone@remote.example>"))
	j := e.read(id)
	j.SetFlag(queue.FlagWarned, true)
	rewrite(t, e, j)
	e.clk.Advance(5*24*time.Hour + time.Second)
	var v bytes.Buffer
	st := e.run(RunOptions{Verbose: &v})
	if st.Bounced != 1 || st.DSNs != 1 || e.read(id) != nil {
		t.Fatalf("stats %+v", st)
	}
	golden(t, "return-v.txt", e.normalize(v.String()))
	golden(t, "return-log.txt", e.normalize(e.log.String()))
	d := e.mail.deliveries()
	body := d[len(d)-1].body
	for _, want := range []string{"Message could not be delivered for 5 days\nMessage will be deleted from queue\n",
		"Status: 4.4.7\nRemote-MTA: DNS; mx.remote.example\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("DSN lacks %q:\n%s", want, body)
		}
	}
}

func rewrite(t *testing.T, e *env, j *queue.Job) {
	t.Helper()
	l, err := e.store.Lock(e.dir, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Rewrite(j); err != nil {
		t.Fatal(err)
	}
	l.Unlock()
}

func TestNotify(t *testing.T) {
	tests := []struct {
		name  string
		rline string
		age   time.Duration
		dsns  int    // reports queued
		subj  string // subject of the report, if any
	}{
		{"never-bounce", "PN:<user@bounce.example>", 0, 0, ""},
		{"failure-bounce", "PNF:<user@bounce.example>", 0, 1, "Returned mail: see transcript for details"},
		{"delay-only-bounce", "PND:<user@bounce.example>", 0, 0, ""},
		{"default-warn", "PFD:<someone@remote.example>", 5 * time.Hour, 1, "Warning: could not send message for past 4 hours"},
		{"failure-only-warn", "PNF:<someone@remote.example>", 5 * time.Hour, 0, ""},
		{"success-local", "PNS:<bob@refhost.example.org>", 0, 1, "Return receipt"},
		{"success-relayed", "PNS:<x@remote.example>", 0, 0, ""},
		{"default-local", "PFD:<bob@refhost.example.org>", 0, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil)
			e.failures()
			e.enqueue(e.job(tt.rline))
			e.clk.Advance(tt.age)
			st := e.run(RunOptions{})
			if st.DSNs != tt.dsns {
				t.Errorf("DSNs %d, want %d", st.DSNs, tt.dsns)
			}
			if tt.subj == "" {
				return
			}
			d := e.mail.deliveries()
			last := d[len(d)-1]
			if !strings.Contains(last.header, "Subject: "+tt.subj+"\n") || last.rcpts[0] != "<alice@refhost.example.org>" {
				t.Errorf("report to %v:\n%s", last.rcpts, last.header)
			}
		})
	}
}

// A bounce of mail from <> goes to the postmaster once; when that fails
// too, it is dropped.
func TestNullSenderAndDoubleBounce(t *testing.T) {
	e := newEnv(t, nil)
	e.failures()
	e.mail.fails["postmaster"] = errUnknown
	j := e.job("PFD:<user@bounce.example>")
	j.Sender = "<>"
	e.enqueue(j)
	e.clk.Advance(5 * time.Hour) // a warning is never sent to <> either
	st := e.run(RunOptions{})
	// The original bounces (1), its postmaster notify is queued and fails
	// (2), and that failure is dropped.
	if st.Bounced != 2 || st.DSNs != 1 {
		t.Errorf("stats %+v", st)
	}
	var toPM int
	for _, d := range e.mail.deliveries() {
		if d.rcpts[0] == "postmaster" {
			toPM++
			if !strings.Contains(d.header, "Subject: Postmaster notify: see transcript for details") {
				t.Errorf("postmaster got:\n%s", d.header)
			}
		}
	}
	if toPM != 1 {
		t.Errorf("%d deliveries to postmaster", toPM)
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, "qf*")); len(left) != 0 {
		t.Errorf("jobs left: %v", left)
	}
	golden(t, "double-bounce-log.txt", e.normalize(e.log.String()))

	// A delay of mail from <>: no warning, only the w flag.
	e2 := newEnv(t, nil)
	e2.failures()
	j = e2.job("PFD:<someone@remote.example>")
	j.Sender = "<>"
	id := e2.enqueue(j)
	e2.clk.Advance(5 * time.Hour)
	if st := e2.run(RunOptions{}); st.DSNs != 0 || !e2.read(id).HasFlag(queue.FlagWarned) {
		t.Errorf("null sender delay: %+v", st)
	}
}

func TestLockedJobSkipped(t *testing.T) {
	e := newEnv(t, nil)
	id := e.enqueue(e.job("PFD:<bob@refhost.example.org>"))
	l, err := e.store.Lock(e.dir, id)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.run(RunOptions{}); st.Skipped != 1 || st.Sent != 0 {
		t.Errorf("stats %+v", st)
	}
	l.Unlock()
	if st := e.run(RunOptions{}); st.Sent != 1 {
		t.Errorf("after unlock: %+v", st)
	}
}

func TestCorruptQfLost(t *testing.T) {
	e := newEnv(t, nil)
	ok := e.enqueue(e.job("PFD:<bob@refhost.example.org>"))
	if err := os.WriteFile(filepath.Join(e.dir, "qf6AP4T98Y005913"), []byte("V8\nTbogus\n.\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A qf whose df is gone is lost too.
	nodf := e.enqueue(e.job("PFD:<bob@refhost.example.org>"))
	os.Remove(filepath.Join(e.dir, "df"+nodf))
	st := e.run(RunOptions{})
	if st.Sent != 1 || st.Lost != 2 {
		t.Errorf("stats %+v", st)
	}
	for _, id := range []string{"6AP4T98Y005913", nodf} {
		if _, err := os.Stat(filepath.Join(e.dir, "Qf"+id)); err != nil {
			t.Errorf("Qf%s: %v", id, err)
		}
	}
	if e.read(ok) != nil {
		t.Error("good job not delivered")
	}
	if !strings.Contains(e.log.String(), "Losing") {
		t.Errorf("log:\n%s", e.log)
	}
}

func TestFiltersAndOrder(t *testing.T) {
	e := newEnv(t, nil)
	e.failures()
	a := e.job("PFD:<someone@remote.example>")
	a.Priority = 90000
	ida := e.enqueue(a)
	b := e.job("PFD:<other@remote.example>")
	b.Priority = 30000
	idb := e.enqueue(b)
	c := e.job("PFD:<someone@remote.example>")
	c.Sender = "<carol@refhost.example.org>"
	c.Priority = 60000
	idc := e.enqueue(c)

	order := func(o RunOptions) []string {
		var v bytes.Buffer
		o.Verbose = &v
		e.run(o)
		var ids []string
		for _, line := range strings.Split(v.String(), "\n") {
			if strings.HasPrefix(line, "Running ") {
				ids = append(ids, filepath.Base(strings.Fields(line)[1]))
			}
		}
		return ids
	}
	tests := []struct {
		limits []string
		want   []string
	}{
		{nil, []string{idb, idc, ida}},
		{[]string{"Rsomeone"}, []string{idc, ida}},
		{[]string{"!Rsomeone"}, []string{idb}},
		{[]string{"Scarol"}, []string{idc}},
		{[]string{"!Scarol", "Rsomeone"}, []string{ida}},
		{[]string{"I" + ida}, []string{ida}},
	}
	for _, tt := range tests {
		var f queue.Filter
		for _, l := range tt.limits {
			if err := f.Add(l); err != nil {
				t.Fatal(err)
			}
		}
		if got := order(RunOptions{Filter: f, Force: true}); strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%v: ran %v, want %v", tt.limits, got, tt.want)
		}
	}
}

func TestMinQueueAge(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Schedule.MinQueueAge = 30 * time.Minute })
	e.failures()
	e.enqueue(e.job("PFD:<someone@remote.example>"))
	if st := e.run(RunOptions{}); st.Jobs != 1 {
		t.Fatalf("first run %+v", st)
	}
	e.clk.Advance(10 * time.Minute)
	if st := e.run(RunOptions{}); st.Jobs != 0 {
		t.Errorf("too young but run: %+v", st)
	}
	e.clk.Advance(20 * time.Minute)
	if st := e.run(RunOptions{}); st.Jobs != 1 {
		t.Errorf("due but not run: %+v", st)
	}
}

// No more than MaxQueueChildren deliveries of one class at once, queue
// runs and background deliveries together, and the bound is used.
func TestConcurrencyBound(t *testing.T) {
	var cur, peak atomic.Int32
	slow := MailerFunc(func(ctx context.Context, d *Delivery) []Result {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		cur.Add(-1)
		return make([]Result, len(d.Rcpts))
	})
	e := newEnv(t, func(c *Config) {
		c.MaxQueueChildren = 3
		c.Mailers["local"] = slow
	})
	for i := 0; i < 12; i++ {
		e.enqueue(e.job("PFD:<bob@refhost.example.org>"))
	}
	// A queue run and background deliveries share the bound.
	if err := e.r.Start(); err != nil {
		t.Fatal(err)
	}
	extra := e.job("PFD:<bob@refhost.example.org>")
	extra.Created = extra.Created.Add(time.Hour) // not due by the run's clock order
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.run(RunOptions{}) }()
	for i := 0; i < 4; i++ {
		j := e.job("PFD:<bob@refhost.example.org>")
		txn, err := e.store.Begin()
		if err != nil {
			t.Fatal(err)
		}
		txn.Write([]byte("x\n"))
		l, err := txn.CommitLocked(j)
		if err != nil {
			t.Fatal(err)
		}
		e.r.Background(l)
	}
	wg.Wait()
	e.r.Wait()
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrency %d, bound 3", p)
	}
	if left, _ := filepath.Glob(filepath.Join(e.dir, "qf*")); len(left) != 0 {
		t.Errorf("jobs left: %d", len(left))
	}
}

// Daemon mode: Start builds the index; Kick delivers without a scan and
// the index follows.
func TestKickAndIndex(t *testing.T) {
	e := newEnv(t, nil)
	e.failures()
	if err := e.r.Start(); err != nil {
		t.Fatal(err)
	}
	id := e.enqueue(e.job("PFD:<someone@remote.example>"))
	e.r.Kick(e.dir, id)
	e.r.Wait()
	ent, ok := e.indexed(id)
	if !ok || ent.Attempts != 1 {
		t.Fatalf("index entry %+v %v", ent, ok)
	}
	// The first attempt leaves the priority alone.
	if j := e.read(id); j.Priority != 30155 {
		t.Errorf("P=%d", j.Priority)
	}
	delete(e.mail.fails, "<someone@remote.example>")
	if st := e.run(RunOptions{}); st.Sent != 1 {
		t.Errorf("run from index: %+v", st)
	}
	if _, ok := e.indexed(id); ok {
		t.Error("delivered job still in the index")
	}
}

// A recipient whose mailer is not wired (the remote relay before it
// exists) is deferred, never lost.
func TestMissingMailerDefers(t *testing.T) {
	e := newEnv(t, func(c *Config) { delete(c.Mailers, "esmtp") })
	id := e.enqueue(e.job("PFD:<x@remote.example>"))
	if st := e.run(RunOptions{}); st.Deferred != 1 {
		t.Errorf("stats %+v", st)
	}
	if j := e.read(id); j == nil || j.Message != "Deferred: Mailer esmtp not available" {
		t.Errorf("job %+v", j)
	}
}

func TestServeStops(t *testing.T) {
	e := newEnv(t, nil)
	e.enqueue(e.job("PFD:<bob@refhost.example.org>"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.r.Serve(ctx, time.Hour) }()
	for i := 0; i < 200 && len(e.mail.deliveries()) == 0; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if len(e.mail.deliveries()) != 1 {
		t.Error("periodic run did not deliver")
	}
}

// Recipients from alias expansion (C lines, A flag) log their controlling
// user; recipients of one mailer call with the same result share a line;
// file and program recipients go to their mailers.
func TestAliasRecipientsLog(t *testing.T) {
	e := newEnv(t, nil)
	e.failures()
	j := e.job()
	j.Recipients = []queue.Recipient{
		{Ctl: ":root", Flags: "PFDA", Addr: "alice"},
		{Ctl: ":root", Flags: "PFDA", Addr: "bob"},
		{Ctl: "to-file:8:0:<to-file@localhost>", Flags: "PFDA", Addr: "/var/tmp/to-file.mbox"},
		{Ctl: "to-file:8:0:<to-file@localhost>", Flags: "PFDA", Addr: `"|/usr/bin/logger -t to-prog"`},
		{Ctl: "to-remote:8:0:to-remote", Flags: "PFDA", Addr: "someone@remote.example"},
	}
	e.enqueue(j)
	var v bytes.Buffer
	e.run(RunOptions{Verbose: &v})
	golden(t, "alias-log.txt", e.normalize(e.log.String()))
	golden(t, "alias-v.txt", e.normalize(v.String()))
	got := map[string]bool{}
	for _, d := range e.mail.deliveries() {
		got[d.mailer] = true
		if d.mailer == "*file*" && !strings.HasPrefix(d.header, "Return-Path: <alice@refhost.example.org>\n") {
			t.Errorf("file header:\n%s", d.header)
		}
	}
	if !got["*file*"] || !got["prog"] {
		t.Errorf("mailers used: %v", got)
	}
}

// A daemon's periodic run sees jobs queued by other processes after its
// start (one rescan per run), and coordinates with them only by locks.
func TestServeSeesNewJobs(t *testing.T) {
	e := newEnv(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.r.Serve(ctx, 20*time.Millisecond) }()
	time.Sleep(30 * time.Millisecond)
	id := e.enqueue(e.job("PFD:<bob@refhost.example.org>"))
	for i := 0; i < 400 && e.read(id) != nil; i++ {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if e.read(id) != nil {
		t.Error("job queued after start not delivered by a periodic run")
	}
}

// A mailer that panics defers its recipients; a quarantined job is left
// alone.
func TestMailerPanicAndQuarantine(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Mailers["esmtp"] = MailerFunc(func(ctx context.Context, d *Delivery) []Result { panic("boom") })
	})
	id := e.enqueue(e.job("PFD:<x@remote.example>"))
	if st := e.run(RunOptions{}); st.Deferred != 1 {
		t.Errorf("stats %+v", st)
	}
	if j := e.read(id); j == nil || !strings.Contains(j.Message, "Internal error in mailer esmtp: boom") {
		t.Errorf("job %+v", j)
	}
	q := e.job("PFD:<bob@refhost.example.org>")
	q.Quarantine = "held by the admin"
	qid := e.enqueue(q)
	if st := e.run(RunOptions{Filter: queue.Filter{IDs: []queue.Match{{Substr: qid}}}}); st.Skipped != 1 || st.Sent != 0 {
		t.Errorf("quarantined: %+v", st)
	}
}

// A mailer that keeps reading the body after it returned (a relay client's
// writer still draining) never sees another job's data: the df is closed
// when the delivered job is removed, before its files can be reused. Here
// the late read happens while the run delivers the job's return receipt,
// after the job's removal, and right after a new job took the files.
func TestBodyNotReadAfterRemoval(t *testing.T) {
	var (
		e    *env
		kept io.Reader
		late []byte
		err  error
	)
	e = newEnv(t, func(c *Config) {
		c.Mailers["local"] = MailerFunc(func(ctx context.Context, d *Delivery) []Result {
			if kept == nil {
				kept = d.Body
			} else if late == nil {
				if err := e.store.Enqueue(e.job("PFD:<carol@remote.example>"), strings.NewReader(strings.Repeat("NEW BODY\n", 1000))); err != nil {
					t.Error(err)
				}
				late, err = io.ReadAll(kept)
			}
			return []Result{{Relay: "local", Delivered: true}}
		})
	})
	if err := e.store.Enqueue(e.job("PNS:<bob@refhost.example.org>"), strings.NewReader(strings.Repeat("old body\n", 1000))); err != nil {
		t.Fatal(err)
	}
	if st := e.run(RunOptions{}); st.Sent != 2 || st.DSNs != 1 {
		t.Fatalf("stats %+v", st)
	}
	if late == nil {
		t.Fatal("the receipt was not delivered")
	}
	if strings.Contains(string(late), "NEW") || strings.Contains(string(late), "V8\n") || !errors.Is(err, os.ErrClosed) {
		t.Errorf("late read of the removed job's body: %d bytes (%q...), err %v", len(late), late[:min(len(late), 20)], err)
	}
}
