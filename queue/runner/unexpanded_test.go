package runner

import (
	"context"
	"testing"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// A recipient queued unexpanded (flag X) is expanded at the queue run;
// what it expands to that the job already delivers to (another recipient
// of the message, or the expansion of another X recipient) is delivered
// once, as acceptance and sendmail's sendq would have it.
func TestUnexpandedNoDuplicates(t *testing.T) {
	lists := map[string][]queue.Recipient{
		"staff":  {{Ctl: ":root", Flags: "PFDA", Addr: "alice"}, {Ctl: ":root", Flags: "PFDA", Addr: "bob"}},
		"admins": {{Ctl: ":root", Flags: "PFDA", Addr: "bob"}, {Ctl: ":root", Flags: "PFDA", Addr: "carol"}},
	}
	e := newEnv(t, func(c *Config) {
		c.ExpandQueued = func(ctx context.Context, rc queue.Recipient) ([]queue.Recipient, error) {
			if x, ok := lists[rc.Addr]; ok {
				return x, nil
			}
			return nil, status.New(451, "4.3.0", "%s... Deferred: alias database unavailable", rc.Addr)
		}
	})
	id := e.enqueue(e.job("PFDX:staff", "PFD:<alice@refhost.example.org>", "PFDX:admins"))
	st := e.run(RunOptions{})
	count := map[string]int{}
	for _, d := range e.mail.deliveries() {
		for _, r := range d.rcpts {
			route, _ := fakeRouter(context.Background(), nil, &queue.Recipient{Addr: r})
			count[route.User]++
		}
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		if count[u] != 1 {
			t.Errorf("%s delivered %d times (all: %v)", u, count[u], count)
		}
	}
	if st.Sent != 3 {
		t.Errorf("stats %+v", st)
	}
	if e.read(id) != nil {
		t.Error("job left in the queue")
	}
}
