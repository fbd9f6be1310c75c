package runner

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/status"
)

func TestParseSortOrder(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want SortOrder
		ok   bool
	}{
		{"", ByPriority, true}, {"priority", ByPriority, true}, {"Host", ByHost, true}, {"h", ByHost, true},
		{"time", ByTime, true}, {"filename", ByFilename, true}, {"random", ByRandom, true},
		{"modification", ByPriority, false}, {"none", ByPriority, false}, {"bogus", ByPriority, false},
	} {
		if got, ok := ParseSortOrder(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("ParseSortOrder(%q) = %v %v, want %v %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

// The order a run starts its jobs in, for each QueueSortOrder: with host,
// the jobs to one next hop follow each other (local ones first), in
// priority order within a host.
func TestSortOrders(t *testing.T) {
	type spec struct {
		rcpt string
		pri  int64
		age  int // minutes before the run
	}
	jobs := []spec{
		{"<x@b.example>", 30000, 10},
		{"<y@a.example>", 90000, 30},
		{"<bob@refhost.example.org>", 60000, 20},
		{"<z@b.example>", 10000, 40},
		{"<w@mx.a.example>", 20000, 50},
	}
	for _, tt := range []struct {
		order SortOrder
		want  string // job numbers in the order run
	}{
		{ByPriority, "3 4 0 2 1"},
		{ByHost, "2 1 4 3 0"}, // local first; then by reversed name (elpmaxe.a < elpmaxe.a.xm < elpmaxe.b), then priority
		{ByTime, "4 3 1 2 0"},
	} {
		e := newEnv(t, func(c *Config) { c.SortOrder = tt.order })
		e.failures()
		num := map[string]string{}
		for i, s := range jobs {
			j := e.job("PFD:" + s.rcpt)
			j.Priority = s.pri
			j.Created = j.Created.Add(-time.Duration(s.age) * time.Minute)
			num[e.enqueue(j)] = fmt.Sprint(i)
		}
		var v bytes.Buffer
		e.run(RunOptions{Verbose: &v})
		var got []string
		for _, line := range strings.Split(v.String(), "\n") {
			if strings.HasPrefix(line, "Running ") {
				got = append(got, num[filepath.Base(strings.Fields(line)[1])])
			}
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("order %v: ran %v, want %s", tt.order, got, tt.want)
		}
	}
}

// A host the HostDown hook knows to be down is not called: its recipients
// are deferred with the hook's reason; other hosts are tried as usual.
func TestHostDown(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.HostDown = func(ctx context.Context, mailer, host string) error {
			if host == "down.example" {
				return status.New(451, "4.4.1", "Connection refused by mx.down.example.")
			}
			return nil
		}
	})
	id := e.enqueue(e.job("PFD:<a@down.example>", "PFD:<b@up.example>"))
	if st := e.run(RunOptions{}); st.Sent != 1 || st.Deferred != 1 {
		t.Errorf("stats %+v", st)
	}
	for _, d := range e.mail.deliveries() {
		if d.host == "down.example" {
			t.Error("the mailer was called for a host known to be down")
		}
	}
	if j := e.read(id); j == nil || j.Message != "Deferred: Connection refused by mx.down.example." {
		t.Errorf("job %+v", j)
	}
	if !strings.Contains(e.log.String(), "to=<a@down.example>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=120155, dsn=4.4.1, stat=Deferred: Connection refused by mx.down.example.") {
		t.Errorf("log:\n%s", e.log)
	}
}

func TestToLines(t *testing.T) {
	rest := "delay=00:00:01, xdelay=00:00:01, mailer=local, pri=30155, relay=local, dsn=2.0.0, stat=Sent"
	room := syslogBufSize - 100 - len(rest) - 2 // what one line's list may hold
	addr := func(i int) string { return fmt.Sprintf("<user%04d@refhost.example.org>", i) }
	var many []string
	for i := 0; i < 500; i++ {
		many = append(many, addr(i))
	}
	lines := toLines(joinTo(many), rest)
	if len(lines) < 2 {
		t.Fatalf("%d lines for 500 recipients", len(lines))
	}
	var seen []string
	for i, l := range lines {
		list, tail, ok := strings.Cut(strings.TrimPrefix(l, "to="), ", delay=")
		if !ok || "delay="+tail != rest || !strings.HasPrefix(l, "to=") {
			t.Fatalf("line %d: %q", i, l)
		}
		if more := i < len(lines)-1; more != strings.HasSuffix(list, ", [more]") {
			t.Errorf("line %d: [more] mark wrong: %q", i, list)
		}
		list = strings.TrimSuffix(strings.TrimSuffix(list, " [more]"), ",")
		if len(list) > room {
			t.Errorf("line %d: %d bytes of recipients, room for %d", i, len(list), room)
		}
		seen = append(seen, strings.Split(list, ",")...)
	}
	if strings.Join(seen, ",") != joinTo(many) {
		t.Error("the lines do not hold the recipients once each, in order")
	}
	if got := toLines("<a@b>,<c@d>", rest); len(got) != 1 || got[0] != "to=<a@b>,<c@d>, "+rest {
		t.Errorf("short list: %q", got)
	}
	// One address too long for a line is cut, as sendmail's %.*s does.
	long := "<" + strings.Repeat("x", 2000) + "@b>"
	if got := toLines(long, rest); len(got) != 1 || len(got[0]) != len("to=")+room+len(", "+rest) {
		t.Errorf("long address: %d lines, %d bytes", len(got), len(got[0]))
	}
}

func TestShorten(t *testing.T) {
	long := strings.Repeat("a", 150) + strings.Repeat("b", 150)
	if got := shorten(long, maxShortStr); got != strings.Repeat("a", 100)+"..."+strings.Repeat("b", 100) {
		t.Errorf("shorten: %q", got)
	}
	if got := shorten("Sent", maxShortStr); got != "Sent" {
		t.Errorf("short: %q", got)
	}
}

// A delivery to many recipients logs them over several lines, each within
// sendmail's bound, instead of one line per mailer call of any length.
func TestLongRecipientListLogged(t *testing.T) {
	e := newEnv(t, nil)
	var rl []string
	for i := 0; i < 300; i++ {
		rl = append(rl, fmt.Sprintf("PFD:<user%03d@refhost.example.org>", i))
	}
	e.enqueue(e.job(rl...))
	if st := e.run(RunOptions{}); st.Sent != 300 {
		t.Fatalf("stats %+v", st)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
		if strings.Contains(l, " to=") {
			n++
			if _, msg, _ := strings.Cut(l, ": to="); len(msg) > syslogBufSize-100 {
				t.Errorf("a log line of %d bytes", len(msg))
			}
		}
	}
	if n < 5 || strings.Count(e.log.String(), "refhost.example.org>") != 300 {
		t.Errorf("%d to= lines:\n%s", n, e.log)
	}
}
