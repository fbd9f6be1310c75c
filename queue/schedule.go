package queue

import (
	"strings"
	"time"
)

// Priority factors, sendmail's defaults (RecipientFactor, ClassFactor,
// RetryFactor).
const (
	WkRecipFact = 30000 // per recipient
	WkClassFact = 1800  // per precedence class point (subtracted)
	WkTimeFact  = 90000 // added each time a queue run picks the job up
)

// InitialPriority is the P value of a new job: the message size in bytes
// (header lines as received plus the body), minus 1800 per precedence class
// point (Precedence: bulk is -60, junk -100, list -30, special-delivery
// 100), plus 30000 per recipient. Lower runs first.
func InitialPriority(size int64, nrcpts int, class int) int64 {
	return size - int64(class)*WkClassFact + int64(nrcpts)*WkRecipFact
}

// PrecedenceClass is the class of a message with the Precedence: header
// value v, from sendmail's default P lines (first-class 0,
// special-delivery 100, list -30, bulk -60, junk -100; anything else 0).
// It goes into the priority and into the from= log line's class=.
func PrecedenceClass(v string) int {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "special-delivery":
		return 100
	case "list":
		return -30
	case "bulk":
		return -60
	case "junk":
		return -100
	}
	return 0
}

// RunPriority is the priority a job gets when a queue run reads it
// (sendmail adds RetryFactor on reading the P line); the runner stores it
// with the next rewrite. The first delivery attempt, made right after
// acceptance, leaves the priority alone.
func RunPriority(p int64) int64 { return p + WkTimeFact }

// Schedule holds the options that decide when a job is tried again, warned
// about and given up.
type Schedule struct {
	MinQueueAge time.Duration // do not retry before this long after the last try
	Interval    time.Duration // queue run interval (-q30m); 0 = no periodic runs
	QueueWarn   time.Duration // Timeout.queuewarn: delay warning after this age; 0 = never
	QueueReturn time.Duration // Timeout.queuereturn: give up after this age; 0 = never
}

// DefaultSchedule returns sendmail's defaults: warn after 4 hours, return
// after 5 days, no MinQueueAge, no interval.
func DefaultSchedule() Schedule {
	return Schedule{QueueWarn: 4 * time.Hour, QueueReturn: 5 * 24 * time.Hour}
}

// Attempt is what the schedule needs to know about a job.
type Attempt struct {
	Created  time.Time // T
	LastTry  time.Time // K; zero if never tried
	Attempts int       // N
	Warned   bool      // F has w
}

// AttemptOf returns the schedule facts of a job.
func AttemptOf(j *Job) Attempt {
	return Attempt{Created: j.Created, LastTry: j.LastTry, Attempts: j.Attempts, Warned: j.HasFlag(FlagWarned)}
}

// Decision is the schedule's answer for a job at a given moment.
type Decision struct {
	Due      bool      // a queue run may try the job now (not too young)
	NextTry  time.Time // when the job should next be tried
	Warn     bool      // a delay warning DSN is due (if the attempt fails again)
	GiveUp   bool      // the job is older than QueueReturn: return it to the sender
	WarnAt   time.Time // when the warning falls due (zero if never)
	ReturnAt time.Time // when the job expires (zero if never)
}

// Decide applies the schedule to a job at time now. It is pure: the same
// inputs always give the same answer.
//
// As in sendmail, a job is too young while fewer than MinQueueAge have
// passed since its last try (a job never tried is always due); it is retried
// at each queue run, so the next try is the last try plus the larger of
// MinQueueAge and the run interval, brought forward to the warning or
// expiry moment when one of those comes first (but never before
// MinQueueAge). A warning is due once the job is older than QueueWarn and
// none was sent; the job is given up once it is older than QueueReturn.
func (s Schedule) Decide(a Attempt, now time.Time) Decision {
	var d Decision
	if s.QueueWarn > 0 && !a.Warned {
		d.WarnAt = a.Created.Add(s.QueueWarn)
	}
	if s.QueueReturn > 0 {
		d.ReturnAt = a.Created.Add(s.QueueReturn)
	}
	d.GiveUp = !d.ReturnAt.IsZero() && now.After(d.ReturnAt)
	d.Warn = !d.GiveUp && !d.WarnAt.IsZero() && now.After(d.WarnAt)

	tried := a.Attempts > 0 && !a.LastTry.IsZero()
	if !tried {
		d.Due = true
		d.NextTry = a.Created
		return d
	}
	earliest := a.LastTry.Add(s.MinQueueAge)
	d.Due = now.Before(a.LastTry) || !now.Before(earliest)
	step := s.MinQueueAge
	if s.Interval > step {
		step = s.Interval
	}
	next := a.LastTry.Add(step)
	for _, ev := range []time.Time{d.WarnAt, d.ReturnAt} {
		if !ev.IsZero() && ev.After(a.LastTry) && ev.Before(next) {
			next = ev
		}
	}
	if next.Before(earliest) {
		next = earliest
	}
	d.NextTry = next
	return d
}

// TooYoung reports mailq's "-" mark: tried less than MinQueueAge ago.
func (s Schedule) TooYoung(a Attempt, now time.Time) bool {
	if s.MinQueueAge <= 0 || a.Attempts == 0 {
		return false
	}
	age := now.Sub(a.LastTry)
	return age >= 0 && age < s.MinQueueAge
}
