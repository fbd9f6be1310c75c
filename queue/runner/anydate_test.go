package runner

import (
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/rfcdate"
	"github.com/posthorn/posthorn/queue"
)

// anyDate is the moments the queue-time tests run at: the reference's
// date, today, a year ahead, the 32-bit time_t rollover and a far date.
func anyDate() []time.Time {
	now := time.Now().Truncate(time.Second).Round(0).UTC()
	return []time.Time{
		time.Date(2026, 11, 25, 4, 29, 9, 0, time.UTC),
		now,
		now.AddDate(1, 0, 0),
		time.Date(2038, 1, 19, 3, 14, 7, 0, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
	}
}

// The queue-time rules (MinQueueAge, the next try, Timeout.queuewarn,
// Timeout.queuereturn) and the dates in the reports follow the runner's
// clock, whatever the date: the same job history at every date.
func TestQueueTimesAnyDate(t *testing.T) {
	for _, t0 := range anyDate() {
		e := newEnvAt(t, t0, func(c *Config) { c.Schedule.MinQueueAge = 30 * time.Minute })
		e.failures()
		id := e.enqueue(e.job("PFD:<someone@remote.example>"))
		step := func(d time.Duration, wantJobs, wantDSNs int) {
			t.Helper()
			e.clk.Advance(d)
			if st := e.run(RunOptions{}); st.Jobs != wantJobs || st.DSNs != wantDSNs {
				t.Errorf("at %v + %v: %+v, want %d jobs, %d DSNs", t0, e.clk.Now().Sub(t0), st, wantJobs, wantDSNs)
			}
		}
		step(time.Minute, 1, 0)    // never tried: due
		step(10*time.Minute, 0, 0) // tried 10 minutes ago: too young
		step(25*time.Minute, 1, 0) // 35 minutes: due again
		j := e.read(id)
		if j == nil || !j.LastTry.Equal(e.clk.Now()) || j.Attempts != 2 || !j.Created.Equal(t0) {
			t.Fatalf("at %v: qf after two tries %+v", t0, j)
		}
		step(4*time.Hour, 1, 1) // past Timeout.queuewarn: one warning
		if j := e.read(id); !j.HasFlag(queue.FlagWarned) {
			t.Errorf("at %v: no w flag after the warning", t0)
		}
		warn := e.mail.deliveries()[len(e.mail.deliveries())-1].body
		until := rfcdate.Format(t0.Add(5 * 24 * time.Hour))
		if !strings.Contains(warn, "Will-Retry-Until: "+until) || !strings.Contains(warn, "received at "+rfcdate.Format(t0)) {
			t.Errorf("at %v: the warning's dates (want Will-Retry-Until: %s):\n%s", t0, until, warn)
		}
		step(time.Hour, 1, 0)      // warned once only
		step(5*24*time.Hour, 1, 1) // past Timeout.queuereturn: returned
		if e.read(id) != nil {
			t.Errorf("at %v: the job outlived Timeout.queuereturn", t0)
		}
	}
}
