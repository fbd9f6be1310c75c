package mta

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/route"
	"github.com/posthorn/posthorn/internal/status"

	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// TestMessageBody: the body reaches package deliver whether the runner
// hands an io.ReaderAt (the df) or a plain reader.
func TestMessageBody(t *testing.T) {
	m := &localMailers{}
	for name, body := range map[string]io.Reader{
		"section": io.NewSectionReader(strings.NewReader("df body\n"), 0, 8),
		"plain":   io.MultiReader(strings.NewReader("df body\n")),
	} {
		msg, err := m.message(&runner.Delivery{Job: &queue.Job{ID: "Q"}, Body: body})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := make([]byte, msg.BodySize)
		if _, err := msg.Body.ReadAt(got, 0); err != nil && err != io.EOF {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, []byte("df body\n")) {
			t.Errorf("%s: body %q", name, got)
		}
	}
}

// TestErrorTargetThroughQueue: a failed list member is queued as an
// error: address and the router turns it back into the same failure; a
// temporary one (error:450 later) stays temporary instead of becoming a
// bounce.
func TestErrorTargetThroughQueue(t *testing.T) {
	rt := routerOf(route.New(route.Config{Names: addr.NewNames("localhost")}))
	for _, tt := range []struct {
		fail aliases.Failure
		want string
	}{
		{aliases.Failure{Addr: "error:450 later", Err: status.New(450, "4.0.0", "list... later")}, "450 4.0.0 list... later"},
		{aliases.Failure{Addr: "error:5.1.1:550 nosuch", Err: status.New(550, "5.1.1", "list... nosuch")}, "550 5.1.1 list... nosuch"},
		{aliases.Failure{Addr: "|/bin/x", Err: status.New(550, "5.7.1", `"|/bin/x"... Address bob is unsafe for mailing to programs`)},
			`550 5.7.1 "|/bin/x"... Address bob is unsafe for mailing to programs`},
	} {
		a := errorAddress(tt.fail)
		_, err := rt.Route(context.Background(), &queue.Job{}, &queue.Recipient{Addr: a})
		if err == nil || err.Error() != tt.want {
			t.Errorf("%q queued as %q delivers as %v, want %s", tt.fail.Addr, a, err, tt.want)
		}
	}
	// An unknown user is queued as itself: the local mailer fails it.
	if a := errorAddress(aliases.Failure{Addr: "nosuch", Err: status.New(550, "5.1.1", "nosuch... User unknown")}); a != "nosuch" {
		t.Errorf("unknown user queued as %q", a)
	}
	// Plain qf addresses route as at acceptance.
	for in, want := range map[string]runner.Route{
		"<alice@localhost>":        {Mailer: "local", User: "alice"},
		`\bob`:                     {Mailer: "local", User: "bob"},
		`"|/usr/bin/logger x"`:     {Mailer: "prog", User: "|/usr/bin/logger x"},
		"/var/tmp/box":             {Mailer: "*file*", User: "/var/tmp/box"},
		"<someone@remote.example>": {Mailer: "esmtp", Host: "remote.example", User: "someone@remote.example"},
	} {
		got, err := rt.Route(context.Background(), &queue.Job{}, &queue.Recipient{Addr: in})
		if err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, err, want)
		}
	}
}

// TestLocalHostStatus: with HostStatusDirectory the local mailer's last
// outcome is the entry "local", as sendmail keeps it for Debian's
// mail.local -l ("250 2.1.5 alice Ok"), and a failure does not mark the
// mailer down.
func TestLocalHostStatus(t *testing.T) {
	now := time.Now()
	hs := hoststat.Open(t.TempDir(), 30*time.Minute, func() time.Time { return now })
	for _, tt := range []struct {
		err       error
		dsn, want string
	}{
		{nil, "2.1.5", "250 2.1.5 alice Ok"},
		{status.New(550, "5.1.1", "alice... User unknown"), "5.1.1", "550 5.1.1 alice... User unknown"},
	} {
		if err := hs.Record(localStatus("alice", tt.err)); err != nil {
			t.Fatal(err)
		}
		s, ok := hs.Lookup("local")
		if !ok || s.DSN != tt.dsn || s.Reply != tt.want || s.Down() {
			t.Errorf("after %v: %+v %v", tt.err, s, ok)
		}
	}
}
