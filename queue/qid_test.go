package queue

import (
	"sync"
	"testing"
	"time"
)

func TestEncodeID(t *testing.T) {
	for _, tc := range []struct {
		t    time.Time
		seq  int
		pid  int
		want string
	}{
		// IDs seen in the reference captures (the sequence decoded from them).
		{time.Date(2026, 11, 25, 4, 29, 9, 0, time.UTC), 8*60 + 33, 5913, "6AP4T98X005913"},
		{time.Date(2026, 11, 25, 4, 29, 33, 0, time.UTC), 13*60 + 19, 6594, "6AP4TXDJ006594"},
		{time.Date(2026, 11, 25, 4, 29, 35, 0, time.UTC), 20*60 + 54, 6657, "6AP4TZKs006657"},
		{time.Date(2026, 11, 25, 4, 30, 33, 0, time.UTC), 59*60 + 58, 8257, "6AP4UXxw008257"},
		// Each field at its limits.
		{time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), 0, 0, "0010000000000"[:8] + "000000"},
		{time.Date(1959, 12, 31, 23, 59, 59, 0, time.UTC), 3599, 999999, "xBVNxxxx999999"},
		{time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC), 3600, 1234567, "001000001234567"},
		// Local times are converted to UTC.
		{time.Date(2026, 11, 24, 23, 29, 9, 0, time.FixedZone("EST", -5*3600)), 1, 42, "6AP4T901000042"},
		// Negative sequence numbers wrap.
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), -1, 7, "6023" + "45xx000007"},
	} {
		if got := EncodeID(tc.t, tc.seq, tc.pid); got != tc.want {
			t.Errorf("EncodeID(%v, %d, %d) = %q, want %q", tc.t, tc.seq, tc.pid, got, tc.want)
		}
	}
}

func TestIDGenUniqueAcrossGoroutines(t *testing.T) {
	now := time.Date(2026, 11, 25, 4, 29, 9, 0, time.UTC)
	g := NewIDGen(4242, func() time.Time { return now }) // a frozen clock: the worst case
	const workers, each = 8, 1000
	var mu sync.Mutex
	seen := make(map[string]bool)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, each)
			for i := range ids {
				ids[i] = g.Next()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] {
					t.Errorf("duplicate ID %s", id)
				}
				seen[id] = true
			}
		}()
	}
	wg.Wait()
	if len(seen) != workers*each {
		t.Errorf("%d IDs", len(seen))
	}
}

func TestIDGenClockBackwards(t *testing.T) {
	now := time.Date(2026, 11, 25, 4, 29, 9, 0, time.UTC)
	g := NewIDGen(1, func() time.Time { return now })
	seen := map[string]bool{}
	for i := 0; i < 5000; i++ {
		if i == 2000 {
			now = now.Add(-time.Hour)
		}
		id := g.Next()
		if seen[id] {
			t.Fatalf("duplicate %s after %d", id, i)
		}
		seen[id] = true
	}
}
