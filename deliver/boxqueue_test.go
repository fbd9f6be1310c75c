package deliver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// pending is the number of deliveries queued for mailboxes (not leading).
func (a *Agent) pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, q := range a.queues {
		n += len(q.pending)
	}
	return n
}

func waitPending(t *testing.T, a *Agent, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for a.pending() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries queued, want %d", a.pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// While one batch is being appended, the deliveries arriving meanwhile
// form the next batch, and each gets its own result.
func TestAppendBatchedGroupsWaiting(t *testing.T) {
	a, _, _ := testAgent(t, nil)
	const n = 10
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	run := func(batch []*boxReq) []error {
		mu.Lock()
		first := len(sizes) == 0
		sizes = append(sizes, len(batch))
		mu.Unlock()
		if first {
			<-release
		}
		errs := make([]error, len(batch))
		for i, r := range batch {
			if r.qid == "fail" {
				errs[i] = errors.New("this one failed")
			}
		}
		return errs
	}
	results := make([]error, n)
	var wg sync.WaitGroup
	deliver := func(i int) {
		defer wg.Done()
		qid := "ok"
		if i%3 == 1 {
			qid = "fail"
		}
		results[i] = a.appendBatched("box", &boxReq{ctx: context.Background(), qid: qid, deadline: time.Now().Add(time.Minute)}, run)
	}
	wg.Add(1)
	go deliver(0)
	for {
		mu.Lock()
		started := len(sizes) == 1
		mu.Unlock()
		if started {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		wg.Add(1)
		go deliver(i)
	}
	waitPending(t, a, n-1)
	close(release)
	wg.Wait()
	if fmt.Sprint(sizes) != fmt.Sprint([]int{1, n - 1}) {
		t.Errorf("batches %v, want [1 %d]", sizes, n-1)
	}
	for i, err := range results {
		if (err != nil) != (i%3 == 1) {
			t.Errorf("delivery %d: %v", i, err)
		}
	}
	if len(a.queues) != 0 {
		t.Errorf("queues left: %v", a.queues)
	}
}

// Deliveries queued behind a held dot-lock are appended together once it
// is gone, each message whole; one whose body cannot be read fails alone
// and leaves nothing of itself in the mailbox.
func TestMailboxBatchWithOneFailure(t *testing.T) {
	a, spool, _ := testAgent(t, nil)
	box := filepath.Join(spool, "carol")
	must(t, os.WriteFile(box+".lock", []byte("1\n"), 0o600))
	body := strings.Repeat("From a line that needs quoting, and some more text.\n", 20)
	const n = 8
	ids := map[string]bool{}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		m := msg("s@x", fmt.Sprintf("message-%02d", i), body)
		if i == 5 {
			m.Body, m.BodySize = &errReader{"partial body\n"}, 1<<20
		} else {
			ids[fmt.Sprintf("message-%02d", i)] = true
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = a.Mailbox(context.Background(), "carol", m) }()
	}
	waitPending(t, a, n-1)
	must(t, os.Remove(box+".lock"))
	wg.Wait()
	for i, err := range errs {
		if i == 5 {
			wantStatus(t, err, 451, "4.3.0")
		} else if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	checkMbox(t, readFile(t, box), ids, 20)
	if _, err := os.Stat(box + ".lock"); !os.IsNotExist(err) {
		t.Error("lock left behind")
	}
}

// A queued delivery whose lock timeout passes leaves the queue with 450
// 4.2.0; one whose context ends with 451; the mailbox is untouched.
func TestQueuedDeliveryGivesUp(t *testing.T) {
	a, spool, _ := testAgent(t, func(o *Options) { o.LockTimeout = 400 * time.Millisecond })
	box := filepath.Join(spool, "carol")
	must(t, os.WriteFile(box+".lock", []byte("1\n"), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		c := context.Background()
		if i == 2 {
			c = ctx
		}
		go func() { defer wg.Done(); errs[i] = a.Mailbox(c, "carol", msg("s@x", "x", "b\n")) }()
		if i == 0 {
			time.Sleep(50 * time.Millisecond) // the first leads
		}
	}
	waitPending(t, a, 2)
	cancel()
	wg.Wait()
	wantStatus(t, errs[0], 450, "4.2.0")
	wantStatus(t, errs[1], 450, "4.2.0")
	wantStatus(t, errs[2], 451, "4.3.0")
	if data, _ := os.ReadFile(box); len(data) != 0 {
		t.Errorf("mailbox written: %q", data)
	}
	if a.pending() != 0 || len(a.queues) != 0 {
		t.Errorf("queue not empty: %d pending, %d queues", a.pending(), len(a.queues))
	}
	// The mailbox works again once the lock is gone.
	must(t, os.Remove(box+".lock"))
	must(t, a.Mailbox(context.Background(), "carol", msg("s@x", "x", "b\n")))
}
