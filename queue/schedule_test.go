package queue

import (
	"testing"
	"time"
)

func TestPriority(t *testing.T) {
	for _, tc := range []struct {
		size         int64
		rcpts, class int
		want         int64
	}{
		{155, 1, 0, 30155},     // qf6AP4T98X005913: 111 header bytes + 44 body
		{421, 2, 0, 60421},     // qf6AP4TXDJ006594
		{55, 2, 0, 60055},      // qf6AP4TZoV006667
		{1000, 1, -60, 139000}, // Precedence: bulk
		{0, 0, 100, -180000},   // special-delivery
	} {
		if got := InitialPriority(tc.size, tc.rcpts, tc.class); got != tc.want {
			t.Errorf("InitialPriority(%d, %d, %d) = %d, want %d", tc.size, tc.rcpts, tc.class, got, tc.want)
		}
	}
	// Reference: P30155 with N1 became P390155 after four queue runs.
	p := int64(30155)
	for i := 0; i < 4; i++ {
		p = RunPriority(p)
	}
	if p != 390155 {
		t.Errorf("after 4 runs: %d", p)
	}
}

// anyDate is the moments the queue-time tests run at: the reference's
// date, today, a year ahead, the 32-bit time_t rollover and a far date.
// The rules depend only on intervals, never on the date.
func anyDate() []time.Time {
	now := time.Now().Truncate(time.Second).Round(0) // qf times are seconds
	return []time.Time{
		time.Date(2026, 11, 25, 4, 0, 0, 0, time.UTC),
		now,
		now.AddDate(1, 0, 0),
		time.Date(2038, 1, 19, 3, 14, 7, 0, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
	}
}

func TestDecide(t *testing.T) {
	for _, t0 := range anyDate() {
		testDecide(t, t0)
	}
}

func testDecide(t *testing.T, t0 time.Time) {
	h := time.Hour
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	std := Schedule{Interval: 30 * time.Minute, QueueWarn: 4 * h, QueueReturn: 120 * h}
	for _, tc := range []struct {
		name string
		s    Schedule
		a    Attempt
		now  time.Time
		want Decision
	}{
		{"never tried", std, Attempt{Created: t0}, at(time.Minute),
			Decision{Due: true, NextTry: t0, WarnAt: at(4 * h), ReturnAt: at(120 * h)}},
		{"tried, next run", std, Attempt{Created: t0, LastTry: at(h), Attempts: 2}, at(h + time.Minute),
			Decision{Due: true, NextTry: at(h + 30*time.Minute), WarnAt: at(4 * h), ReturnAt: at(120 * h)}},
		{"min queue age holds back", Schedule{MinQueueAge: 2 * h, Interval: 30 * time.Minute}, Attempt{Created: t0, LastTry: at(h), Attempts: 1}, at(2 * h),
			Decision{Due: false, NextTry: at(3 * h)}},
		{"min queue age passed", Schedule{MinQueueAge: 2 * h}, Attempt{Created: t0, LastTry: at(h), Attempts: 1}, at(3 * h),
			Decision{Due: true, NextTry: at(3 * h)}},
		{"warning due", std, Attempt{Created: t0, LastTry: at(3*h + 50*time.Minute), Attempts: 8}, at(4*h + time.Second),
			Decision{Due: true, Warn: true, NextTry: at(4 * h), WarnAt: at(4 * h), ReturnAt: at(120 * h)}},
		{"exactly at warn time: not yet", std, Attempt{Created: t0, LastTry: at(3 * h), Attempts: 8}, at(4 * h),
			Decision{Due: true, NextTry: at(3*h + 30*time.Minute), WarnAt: at(4 * h), ReturnAt: at(120 * h)}},
		{"already warned", std, Attempt{Created: t0, LastTry: at(5 * h), Attempts: 9, Warned: true}, at(5*h + time.Minute),
			Decision{Due: true, NextTry: at(5*h + 30*time.Minute), ReturnAt: at(120 * h)}},
		{"give up", std, Attempt{Created: t0, LastTry: at(119*h + 50*time.Minute), Attempts: 99, Warned: true}, at(120*h + time.Second),
			Decision{Due: true, GiveUp: true, NextTry: at(120 * h), ReturnAt: at(120 * h)}},
		{"give up wins over warn", Schedule{QueueWarn: h, QueueReturn: h}, Attempt{Created: t0, LastTry: at(h), Attempts: 1}, at(2 * h),
			Decision{Due: true, GiveUp: true, NextTry: at(h), WarnAt: at(h), ReturnAt: at(h)}},
		{"no interval no age: at once", Schedule{}, Attempt{Created: t0, LastTry: at(h), Attempts: 1}, at(h),
			Decision{Due: true, NextTry: at(h)}},
		{"clock went back", Schedule{MinQueueAge: h}, Attempt{Created: t0, LastTry: at(5 * h), Attempts: 1}, at(2 * h),
			Decision{Due: true, NextTry: at(6 * h)}},
		{"tried but K zero (old file)", std, Attempt{Created: t0, Attempts: 3}, at(h),
			Decision{Due: true, NextTry: t0, WarnAt: at(4 * h), ReturnAt: at(120 * h)}},
	} {
		if got := tc.s.Decide(tc.a, tc.now); got != tc.want {
			t.Errorf("%s at %v:\n got %+v\nwant %+v", tc.name, t0, got, tc.want)
		}
	}
}

func TestTooYoung(t *testing.T) {
	for _, t0 := range anyDate() {
		testTooYoung(t, t0)
	}
}

func testTooYoung(t *testing.T, t0 time.Time) {
	s := Schedule{MinQueueAge: 30 * time.Minute}
	for _, tc := range []struct {
		a    Attempt
		now  time.Time
		want bool
	}{
		{Attempt{LastTry: t0, Attempts: 1}, t0.Add(time.Minute), true},
		{Attempt{LastTry: t0, Attempts: 1}, t0.Add(30 * time.Minute), false},
		{Attempt{LastTry: t0, Attempts: 0}, t0.Add(time.Minute), false},
		{Attempt{LastTry: t0, Attempts: 1}, t0.Add(-time.Minute), false},
	} {
		if got := s.TooYoung(tc.a, tc.now); got != tc.want {
			t.Errorf("TooYoung(%+v, %v) = %v", tc.a, tc.now, got)
		}
	}
	if (Schedule{}).TooYoung(Attempt{LastTry: t0, Attempts: 1}, t0) {
		t.Error("no MinQueueAge: never too young")
	}
}
