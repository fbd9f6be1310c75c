package runner

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// eventually waits (polling) until cond holds; the bound only keeps a
// broken build from hanging, nothing is measured.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// gate is a mailer that counts the calls in progress and blocks each until
// the gate opens (or its context ends: then its recipients are deferred).
type gate struct {
	open       chan struct{}
	cur, peak  atomic.Int32
	calls      atomic.Int32
	mu         sync.Mutex
	byRcpt     map[string]int
	cancelled  atomic.Int32
	onDelivery func(d *Delivery)
}

func newGate() *gate { return &gate{open: make(chan struct{}), byRcpt: map[string]int{}} }

func (g *gate) Deliver(ctx context.Context, d *Delivery) []Result {
	n := g.cur.Add(1)
	defer g.cur.Add(-1)
	g.calls.Add(1)
	for p := g.peak.Load(); n > p && !g.peak.CompareAndSwap(p, n); p = g.peak.Load() {
	}
	g.mu.Lock()
	for _, rc := range d.Rcpts {
		g.byRcpt[rc.Addr]++
	}
	g.mu.Unlock()
	if g.onDelivery != nil {
		g.onDelivery(d)
	}
	res := make([]Result, len(d.Rcpts))
	select {
	case <-g.open:
		for i := range res {
			res[i] = Result{Relay: "local", Delivered: true}
		}
	case <-ctx.Done():
		g.cancelled.Add(1)
		for i := range res {
			res[i] = Result{Err: status.New(451, "4.3.0", "delivery interrupted")}
		}
	}
	return res
}

func (g *gate) count(addr string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.byRcpt[addr]
}

// commitLocked queues j and returns it locked, as acceptance does.
func (e *env) commitLocked(j *queue.Job) *queue.Locked {
	e.t.Helper()
	txn, err := e.store.Begin()
	if err != nil {
		e.t.Fatal(err)
	}
	txn.Write([]byte("Hello.\n"))
	l, err := txn.CommitLocked(j)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// isLocked tells whether another holder has job id locked.
func (e *env) isLocked(id string) bool {
	l, err := e.store.Lock(e.dir, id)
	if err == nil {
		l.Unlock()
		return false
	}
	return errors.Is(err, queue.ErrLocked)
}

// Local delivery never waits behind slow remote hosts: with every remote
// slot taken by a host that does not answer, local jobs of the same run
// and handed over in the background are delivered; each class keeps its
// own bound.
func TestLocalNeverWaitsBehindRemote(t *testing.T) {
	remote, local := newGate(), newGate()
	close(local.open)
	e := newEnv(t, func(c *Config) {
		c.MaxQueueChildren = 2
		c.Mailers["esmtp"] = remote
		c.Mailers["local"] = local
	})
	for i := 0; i < 5; i++ {
		e.enqueue(e.job("PFD:<someone@remote.example>"))
	}
	var localIDs []string
	for i := 0; i < 5; i++ {
		localIDs = append(localIDs, e.enqueue(e.job("PFD:<bob@refhost.example.org>")))
	}
	done := make(chan Stats)
	go func() { st, _ := e.r.Run(context.Background(), RunOptions{}); done <- st }()
	eventually(t, "two remote deliveries", func() bool { return remote.cur.Load() == 2 })
	for i := 0; i < 3; i++ {
		e.r.Background(e.commitLocked(e.job("PFD:<carol@refhost.example.org>")))
	}
	eventually(t, "the local jobs delivered", func() bool {
		return local.count("<bob@refhost.example.org>") == 5 && local.count("<carol@refhost.example.org>") == 3
	})
	for _, id := range localIDs {
		if e.read(id) != nil {
			t.Errorf("local job %s still queued while remote hosts hang", id)
		}
	}
	close(remote.open)
	st := <-done
	e.r.Wait()
	if st.Sent != 10 || st.Jobs != 10 {
		t.Errorf("run %+v", st)
	}
	if p := remote.peak.Load(); p != 2 {
		t.Errorf("remote peak %d, bound 2", p)
	}
	if p := local.peak.Load(); p > 2 {
		t.Errorf("local peak %d, bound 2", p)
	}
}

// Jobs handed over for background delivery: as many as the class allows
// start at once, still locked; the others wait without holding their lock,
// up to MaxWaiting; beyond that they stay in the queue for the next run.
func TestBackgroundBounded(t *testing.T) {
	g := newGate()
	e := newEnv(t, func(c *Config) {
		c.MaxQueueChildren = 2
		c.MaxWaiting = 3
		c.Mailers["local"] = g
	})
	var ids []string
	for i := 0; i < 8; i++ {
		l := e.commitLocked(e.job("PFD:<bob@refhost.example.org>"))
		ids = append(ids, l.ID())
		e.r.Background(l)
	}
	eventually(t, "two deliveries", func() bool { return g.cur.Load() == 2 })
	locked := 0
	for _, id := range ids {
		if e.isLocked(id) {
			locked++
		}
	}
	if locked != 2 {
		t.Errorf("%d jobs locked while 2 are in delivery and the rest wait or stay queued", locked)
	}
	close(g.open)
	e.r.Wait()
	if n := g.calls.Load(); n != 5 {
		t.Errorf("%d deliveries, want 2 running + 3 waiting", n)
	}
	left, _ := filepath.Glob(filepath.Join(e.dir, "qf*"))
	if len(left) != 3 {
		t.Errorf("%d jobs left in the queue, want the 3 over the bound", len(left))
	}
	if st := e.run(RunOptions{}); st.Sent != 3 {
		t.Errorf("the next run: %+v", st)
	}
}

// A job is in one delivery at a time: handing it over again, or a run
// that selects it meanwhile, does not start it twice.
func TestNoDoubleDelivery(t *testing.T) {
	g := newGate()
	e := newEnv(t, func(c *Config) { c.Mailers["local"] = g })
	if err := e.r.Start(); err != nil {
		t.Fatal(err)
	}
	id := e.enqueue(e.job("PFD:<bob@refhost.example.org>"))
	e.r.Kick(e.dir, id)
	eventually(t, "the delivery", func() bool { return g.cur.Load() == 1 })
	e.r.Kick(e.dir, id)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); e.r.Run(context.Background(), RunOptions{Force: true}) }()
	}
	time.Sleep(20 * time.Millisecond) // give a second delivery every chance
	close(g.open)
	wg.Wait()
	e.r.Wait()
	if n := g.count("<bob@refhost.example.org>"); n != 1 {
		t.Errorf("delivered %d times", n)
	}
}

// Shutdown drops the jobs waiting for room (unlocked, still queued), lets
// a delivery in progress finish while its context allows, and then cancels
// it: the mailer sees the cancellation, the recipient is deferred, the qf
// rewritten, and Shutdown returns only after that.
func TestShutdown(t *testing.T) {
	g := newGate()
	e := newEnv(t, func(c *Config) {
		c.MaxQueueChildren = 1
		c.Mailers["local"] = g
	})
	first := e.commitLocked(e.job("PFD:<bob@refhost.example.org>"))
	id := first.ID()
	e.r.Background(first)
	eventually(t, "the delivery", func() bool { return g.cur.Load() == 1 })
	var waiting []string
	for i := 0; i < 3; i++ {
		l := e.commitLocked(e.job("PFD:<carol@refhost.example.org>"))
		waiting = append(waiting, l.ID())
		e.r.Background(l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.r.Shutdown(ctx); close(done) }()
	select {
	case <-done:
		t.Fatal("Shutdown returned while a delivery was in progress")
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	<-done
	if g.cancelled.Load() != 1 || g.calls.Load() != 1 {
		t.Errorf("%d calls, %d cancelled", g.calls.Load(), g.cancelled.Load())
	}
	if j := e.read(id); j == nil || j.Attempts != 1 || !strings.Contains(j.Message, "delivery interrupted") {
		t.Errorf("interrupted job: %+v", j)
	}
	for _, w := range waiting {
		if e.read(w) == nil || e.isLocked(w) {
			t.Errorf("waiting job %s not left in the queue, unlocked", w)
		}
	}
	// Nothing starts after Shutdown.
	l := e.commitLocked(e.job("PFD:<dave@refhost.example.org>"))
	e.r.Background(l)
	e.r.Wait()
	if e.isLocked(l.ID()) || g.calls.Load() != 1 {
		t.Error("work started after Shutdown")
	}
}

// ETRN: one run per node however many clients ask, a bound on the runs at
// once with the others waiting their turn, and a refusal beyond.
func TestETRN(t *testing.T) {
	g := newGate()
	var routed atomic.Int32 // routings of remote.example's recipients: each run's plan and attempt
	e := newEnv(t, func(c *Config) {
		c.MaxNodeRuns = 1
		c.Mailers["esmtp"] = g
		c.Router = RouterFunc(func(ctx context.Context, j *queue.Job, rc *queue.Recipient) (Route, error) {
			if strings.Contains(rc.Addr, "remote.example") {
				routed.Add(1)
			}
			return fakeRouter(ctx, j, rc)
		})
	})
	for i := 0; i < 3; i++ {
		e.enqueue(e.job("PFD:<someone@remote.example>"))
	}
	other := e.enqueue(e.job("PFD:<x@other.example>"))
	if err := e.r.ETRN("remote.example"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the run for remote.example", func() bool { return g.cur.Load() >= 1 })
	for i := 0; i < 30; i++ {
		if err := e.r.ETRN("@Remote.Example"); err != nil {
			t.Errorf("a joined ETRN: %v", err)
		}
	}
	if err := e.r.ETRN("other.example"); err != nil {
		t.Errorf("a waiting ETRN: %v", err)
	}
	for i := 0; i < maxPendingNodes-1; i++ {
		if err := e.r.ETRN("n" + string(rune('a'+i%26)) + strings.Repeat("x", i) + ".example"); err != nil {
			t.Fatalf("ETRN %d: %v", i, err)
		}
	}
	err := e.r.ETRN("one-too-many.example")
	if st := status.From(err); err == nil || st.Code != 458 || st.Text != "Unable to queue messages for node one-too-many.example" {
		t.Errorf("over the bound: %v", err)
	}
	close(g.open)
	eventually(t, "the runs", func() bool { return e.read(other) == nil })
	e.r.Wait()
	if n := g.count("<someone@remote.example>"); n != 3 {
		t.Errorf("%d deliveries to remote.example's 3 jobs", n)
	}
	if n := routed.Load(); n != 6 {
		t.Errorf("remote.example's jobs routed %d times: %d runs instead of one", n, n/6)
	}
}

// A job handed over while its lane is full waits unlocked; a lane that
// frees up at that very moment takes it and must find it unlocked: none
// of many jobs handed over at once is dropped (left for the next run).
func TestBackgroundNoneLostWhileWaiting(t *testing.T) {
	g := newGate()
	close(g.open)
	e := newEnv(t, func(c *Config) {
		c.MaxQueueChildren = 1
		c.Mailers["local"] = g
	})
	const n = 300
	locked := make(chan *queue.Locked, n)
	for range n {
		locked <- e.commitLocked(e.job("PFD:<bob@refhost.example.org>"))
	}
	close(locked)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for l := range locked {
				e.r.Background(l)
			}
		}()
	}
	wg.Wait()
	e.r.Wait()
	if c := g.calls.Load(); c != n {
		left, _ := filepath.Glob(filepath.Join(e.dir, "qf*"))
		t.Errorf("%d of %d jobs delivered, %d left in the queue", c, n, len(left))
	}
}
