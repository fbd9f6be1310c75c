package relay

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// localSink is the local mailer of the runner test: it keeps what it gets.
type localSink struct {
	mu  sync.Mutex
	got []string
}

func (l *localSink) Deliver(ctx context.Context, d *runner.Delivery) []runner.Result {
	body, _ := io.ReadAll(d.Body)
	l.mu.Lock()
	l.got = append(l.got, string(d.Header)+"\n"+string(body))
	l.mu.Unlock()
	res := make([]runner.Result, len(d.Rcpts))
	for i := range res {
		res[i] = runner.Result{Relay: "local", DSN: "2.1.5", Delivered: true}
	}
	return res
}

// A queue run with the client as the esmtp mailer: the log lines, the
// envelope message and the failure DSN come out as in sendmail's
// reference (05-syslog-mail-log-full.txt, 03-dsn-permanent-failure-...).
func TestThroughRunner(t *testing.T) {
	w := newWorld(t, nil)
	w.host("mx.accept.example", "127.0.0.12", &sink{})
	w.host("mx.bounce.example", "127.0.0.11", &sink{mode: "reject-rcpt"})
	w.host("mx.remote.example", "127.0.0.10", nil)
	w.mx("accept.example", "mx.accept.example")
	w.mx("bounce.example", "mx.bounce.example")
	w.mx("remote.example", "mx.remote.example")

	var logBuf syncBuffer
	lg := maillog.New(&logBuf, "sm-mta")
	st, err := queue.Open(queue.Options{Dirs: []string{t.TempDir()}, Sync: queue.SyncNone, Mode: 0o600, Now: w.clock.Now, Pid: 5913})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	local := &localSink{}
	route := runner.RouterFunc(func(ctx context.Context, j *queue.Job, rc *queue.Recipient) (runner.Route, error) {
		a := strings.Trim(rc.Addr, "<>")
		_, dom, _ := strings.Cut(a, "@")
		if dom == "refhost.example.org" || dom == "" {
			return runner.Route{Mailer: "local", User: strings.TrimSuffix(a, "@refhost.example.org")}, nil
		}
		return runner.Route{Mailer: "esmtp", Host: dom, User: a}, nil
	})
	r, err := runner.New(runner.Config{Store: st, Router: route,
		Mailers:  map[string]runner.Mailer{"esmtp": w.client, "local": local},
		Schedule: queue.DefaultSchedule(), Hostname: "refhost.example.org", Version: "8.17.1.9/8.17.1.9/Debian-2+deb12u2",
		Logger: lg, Now: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	j := &queue.Job{Created: w.clock.Now(), Priority: 30155, Flags: "bs", Sender: "<alice@refhost.example.org>",
		Macros:  []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}, {Name: "r", Value: "ESMTP"}},
		Headers: []queue.Header{{HasCond: true, Name: "Subject", Value: " this one will bounce"}}}
	for _, a := range []string{"<user@accept.example>", "<user@bounce.example>", "<someone@remote.example>", "<user@nxdomain.invalid>"} {
		j.Recipients = append(j.Recipients, queue.Recipient{Flags: "PFD", Addr: a, FinalRcpt: "RFC822; " + strings.Trim(a, "<>")})
	}
	if err := st.Enqueue(j, strings.NewReader("body\n")); err != nil {
		t.Fatal(err)
	}
	var v bytes.Buffer
	stats, err := r.Run(context.Background(), runner.RunOptions{Force: true, Verbose: &v})
	if err != nil {
		t.Fatal(err)
	}
	if stats.Sent != 2 || stats.Bounced != 2 || stats.Deferred != 1 || stats.DSNs != 1 { // the DSN is sent too
		t.Errorf("stats %+v", stats)
	}
	log := regexp.MustCompile(`delay=\d\d:\d\d:\d\d, xdelay=\d\d:\d\d:\d\d`).ReplaceAllString(logBuf.String(), "delay=D, xdelay=X")
	for _, want := range []string{
		"to=<user@accept.example>, delay=D, xdelay=X, mailer=esmtp, pri=120155, relay=mx.accept.example. [127.0.0.12], dsn=2.0.0, stat=Sent (Ok: queued as SINK1000)",
		"to=<user@bounce.example>, delay=D, xdelay=X, mailer=esmtp, pri=120155, relay=mx.bounce.example. [127.0.0.11], dsn=5.1.1, reply=550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink, stat=User unknown",
		"to=<someone@remote.example>, delay=D, xdelay=X, mailer=esmtp, pri=120155, relay=mx.remote.example. [127.0.0.10], dsn=4.4.1, stat=Deferred: Connection refused by mx.remote.example.",
		"to=<user@nxdomain.invalid>, delay=D, xdelay=X, mailer=esmtp, pri=120155, relay=nxdomain.invalid, dsn=5.1.2, stat=Host unknown (Name server: nxdomain.invalid: host not found)",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks\n%s\nin\n%s", want, log)
		}
	}
	if len(local.got) != 1 {
		t.Fatalf("%d local deliveries", len(local.got))
	}
	dsn := local.got[0]
	for _, want := range []string{
		"   ----- Transcript of session follows -----\n... while talking to mx.bounce.example.:\n>>> DATA\n" +
			"<<< 550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink\n" +
			"550 5.1.1 <user@bounce.example>... User unknown\n",
		"    (reason: 550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink)",
		"Remote-MTA: DNS; mx.bounce.example\nDiagnostic-Code: SMTP; 550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink\n",
		"Status: 5.1.2\nRemote-MTA: DNS; nxdomain.invalid\nDiagnostic-Code: SMTP; 550 Host unknown\n",
		"<user@nxdomain.invalid>\n    (reason: 550 Host unknown)",
	} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks\n%s\nin\n%s", want, dsn)
		}
	}
	if strings.Contains(v.String(), "<<<") || !strings.Contains(v.String(), "<user@accept.example>... Connecting to mx.accept.example. port 2526 via esmtp...") {
		t.Errorf("-v:\n%s", v.String())
	}
	// What stays queued, and mailq's reason.
	idx, _, err := st.LoadIndex()
	if err != nil {
		t.Fatal(err)
	}
	left := idx.Select(queue.Filter{}, queue.Schedule{}, w.clock.Now())
	if len(left) != 1 {
		t.Fatalf("%d jobs left", len(left))
	}
	l, err := st.Lock(left[0].Dir, left[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if jj := l.Job(); len(jj.Recipients) != 1 || jj.Recipients[0].Addr != "<someone@remote.example>" ||
		!strings.HasPrefix(jj.Message, "Deferred: ") {
		t.Errorf("queued %+v, M=%q", jj.Recipients, jj.Message)
	}
}
