package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/queue"
)

// Route is the mailer triple one recipient resolves to: what -bv prints
// ("deliverable: mailer esmtp, host remote.example, user a@remote.example").
type Route struct {
	Mailer string // "local", "*file*", "prog", "esmtp", "relay", ...
	Host   string // next hop for SMTP mailers; "" for local ones
	User   string // mailbox user, file path, program, or remote address
}

// Router resolves a final recipient address of a qf (aliases were expanded
// at acceptance: the runner never expands again) to a Route. An error is
// that recipient's delivery result: a *status.Error with a 5xx code bounces
// it, anything else defers it.
type Router interface {
	Route(ctx context.Context, j *queue.Job, rcpt *queue.Recipient) (Route, error)
}

// RouterFunc adapts a function to Router.
type RouterFunc func(ctx context.Context, j *queue.Job, rcpt *queue.Recipient) (Route, error)

// Route calls f.
func (f RouterFunc) Route(ctx context.Context, j *queue.Job, rcpt *queue.Recipient) (Route, error) {
	return f(ctx, j, rcpt)
}

// Rcpt is one recipient handed to a mailer.
type Rcpt struct {
	Route
	*queue.Recipient // as in the qf: Addr, Ctl, flags, ORCPT
}

// Delivery is one call of a mailer: one message to the recipients of the
// job that route to the same mailer and host.
type Delivery struct {
	Job *queue.Job
	// Sender is the envelope sender for the mailer ($g): brackets removed,
	// qualified with $j; for <> it is MAILER-DAEMON@$j in reports made
	// here and "" otherwise. Null says the sender is <> (MAIL FROM:<>).
	Sender string
	Null   bool
	Mailer string
	Host   string
	Rcpts  []Rcpt
	// Header is the header block rendered for this mailer (conditions
	// applied, macros expanded), LF line ends, without the blank line.
	Header []byte
	// Body is the df: the body only, LF line ends.
	Body io.Reader
	// Transcript receives what goes into a DSN's "Transcript of session"
	// as well as to the -v output ("... while talking to mx.example.:",
	// ">>> DATA", "<<< 550 ..."). Never nil.
	Transcript io.Writer
	// Verbose receives lines shown only with -v ("<a@b>... Connecting to
	// mx.example. port 25 via esmtp...", the LMTP dialogue). Never nil.
	Verbose io.Writer
}

// Result is the outcome for one recipient of a Delivery.
type Result struct {
	// Err is nil when the recipient was delivered. A *status.Error with a
	// 5xx code is a permanent failure (bounce); any other error defers.
	// Its Text is logged as stat= ("User unknown", "Connection refused by
	// mx.example.") after any leading "<addr>... ".
	Err error
	// Relay is the log's relay= value ("local", "mx.example. [192.0.2.1]").
	Relay string
	// RemoteMTA is the host that answered, for the DSN's Remote-MTA.
	RemoteMTA string
	// Reply is the remote reply ("250 2.1.5 Ok", "550 5.1.1 <a@b>...
	// User unknown"): the DSN's Diagnostic-Code, logged as reply= for
	// failures.
	Reply string
	// Diagnostic is the DSN's Diagnostic-Code when no reply was received
	// (sendmail's "550 Host unknown" for a domain that does not exist); ""
	// gives Reply, or for failures the error ("550 5.1.1 <a@b>... User
	// unknown").
	Diagnostic string
	// Stat, for a success, is shown in parentheses after "Sent" in the
	// log and -v ("Sent (6AP4QBh8001245 Message accepted for delivery)").
	Stat string
	// DSN is the enhanced status of a success ("2.1.5" for a mailbox);
	// "" gives 2.0.0. Failures take theirs from Err.
	DSN string
	// Delivered is set when the message reached its final mailbox (local,
	// file, program), so that NOTIFY=SUCCESS gets a return receipt; a
	// relay to a DSN-aware host leaves the receipt to that host.
	Delivered bool
}

// Mailer delivers one Delivery and returns one Result per recipient, in
// order. Missing results count as temporary failures.
type Mailer interface {
	Deliver(ctx context.Context, d *Delivery) []Result
}

// MailerFunc adapts a function to Mailer.
type MailerFunc func(ctx context.Context, d *Delivery) []Result

// Deliver calls f.
func (f MailerFunc) Deliver(ctx context.Context, d *Delivery) []Result { return f(ctx, d) }

// Config configures a Runner. Store and Router are required.
type Config struct {
	Store  *queue.Store
	Router Router
	// Mailers by name (Route.Mailer). A recipient routed to a mailer that
	// is not here is deferred ("Mailer <m> not available"), never lost.
	Mailers map[string]Mailer
	// MailerFlags overrides the F= flags of mailers by name, which decide
	// the ?flags? header conditions; defaults are the reference
	// sendmail.cf's (local and *file* have P, so get Return-Path).
	MailerFlags map[string]string

	// Schedule: MinQueueAge, the run interval, Timeout.queuewarn and
	// Timeout.queuereturn (queue.DefaultSchedule gives 4h and 5d).
	Schedule queue.Schedule
	// MaxQueueChildren bounds the jobs delivered at once by this process,
	// queue runs and deliveries after acceptance together (0 = 4 ×
	// GOMAXPROCS).
	MaxQueueChildren int
	// MaxRunnersPerQueue bounds the jobs one queue run works on at once
	// (0 = MaxQueueChildren).
	MaxRunnersPerQueue int

	Hostname string // $j: DSN Reporting-MTA, $g qualification
	Version  string // "$v/$Z" for the DSN's Received header
	// ExpandReport, when set, expands the recipient of a report the runner
	// queues (the original sender, or the postmaster) as acceptance does
	// (aliases, ~/.forward) into final qf recipients with their C lines
	// and A flags; the runner itself never expands. nil, or an error
	// (logged), queues the address as it is.
	ExpandReport func(ctx context.Context, addr string) ([]queue.Recipient, error)
	// DoubleBounceAddress receives failures of mail from <> (default
	// "postmaster").
	DoubleBounceAddress string
	// NoBodyReturn is PrivacyOptions=nobodyreturn: DSNs carry only the
	// headers unless RET=FULL was given.
	NoBodyReturn bool

	Logger *maillog.Logger
	Now    func() time.Time // nil = time.Now
}

// Runner delivers queued jobs. It is safe for concurrent use: queue runs,
// Kick and DeliverLocked share one bound on concurrent deliveries.
type Runner struct {
	cfg  Config
	sem  chan struct{}
	log  *maillog.Logger
	now  func() time.Time
	wg   sync.WaitGroup // Kick goroutines
	mu   sync.Mutex
	idx  *queue.Index // nil until Start: runs then scan the directories
	flag map[string]string
}

// New returns a Runner for cfg.
func New(cfg Config) (*Runner, error) {
	if cfg.Store == nil || cfg.Router == nil {
		return nil, errors.New("runner: Store and Router are required")
	}
	n := cfg.MaxQueueChildren
	if n <= 0 {
		n = 4 * runtime.GOMAXPROCS(0)
	}
	r := &Runner{cfg: cfg, sem: make(chan struct{}, n), log: cfg.Logger, now: cfg.Now,
		flag: map[string]string{}}
	if r.now == nil {
		r.now = time.Now
	}
	for k, v := range defaultMailerFlags {
		r.flag[k] = v
	}
	for k, v := range cfg.MailerFlags {
		r.flag[k] = v
	}
	return r, nil
}

// RunOptions are the knobs of one queue run.
type RunOptions struct {
	Filter queue.Filter // -qI, -qR, -qS limits
	// Verbose receives the delivery transcript (-v): "Running <dir>/<ID>
	// (sequence i of n)", "<rcpt>... Sent". Jobs then run one at a time.
	Verbose io.Writer
	// Force ignores MinQueueAge (sendmail -qf... and -qI given an ID are
	// still subject to it in sendmail; this is for tests and ETRN).
	Force bool
	// Quarantined runs the quarantined jobs only (-qQ); other runs
	// leave them alone.
	Quarantined bool
}

// Stats counts what a run did.
type Stats struct {
	Jobs     int // jobs selected
	Skipped  int // locked by another process, or gone
	Lost     int // unreadable qf renamed to Qf
	Sent     int // recipients delivered
	Deferred int // recipients kept for a later try
	Bounced  int // recipients failed permanently (or timed out)
	DSNs     int // reports queued
}

func (s *Stats) add(o Stats) {
	s.Skipped += o.Skipped
	s.Lost += o.Lost
	s.Sent += o.Sent
	s.Deferred += o.Deferred
	s.Bounced += o.Bounced
	s.DSNs += o.DSNs
}

// Start loads the in-memory index of the queue (daemon mode). From then on
// queue runs select from the index, which deliveries keep current, and
// Serve refreshes it with one directory scan per periodic run.
func (r *Runner) Start() error {
	return r.reload()
}

func (r *Runner) reload() error {
	// Unreadable files are renamed to Qf and logged by the store.
	idx, _, err := r.cfg.Store.LoadIndex()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.idx = idx
	r.mu.Unlock()
	return nil
}

func (r *Runner) index() *queue.Index {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.idx
}

// Run runs the queue once (sendmail -q): the due jobs that pass the filter,
// lowest priority value first, each locked (jobs held by another process
// are skipped), at most MaxRunnersPerQueue at a time. Without Start it
// scans the queue directories first (a -q from cron).
func (r *Runner) Run(ctx context.Context, o RunOptions) (Stats, error) {
	idx := r.index()
	lostAtScan := 0
	if idx == nil {
		var lost []string
		var err error
		idx, lost, err = r.cfg.Store.LoadIndex()
		if err != nil {
			return Stats{}, err
		}
		lostAtScan = len(lost)
	}
	sched := r.cfg.Schedule
	if o.Force {
		sched.MinQueueAge = 0
	}
	entries := idx.Select(o.Filter, sched, r.now())
	st := Stats{Jobs: len(entries), Lost: lostAtScan}
	par := r.cfg.MaxRunnersPerQueue
	if par <= 0 || par > cap(r.sem) {
		par = cap(r.sem)
	}
	if o.Verbose != nil {
		par = 1 // the transcript is read in order
	}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		runs = make(chan struct{}, par)
	)
	for i := range entries {
		if ctx.Err() != nil {
			break
		}
		e := entries[i]
		runs <- struct{}{}
		r.sem <- struct{}{}
		wg.Add(1)
		go func(seq int) {
			defer func() { <-r.sem; <-runs; wg.Done() }()
			var v io.Writer
			if o.Verbose != nil {
				v = o.Verbose
				fmt.Fprintf(v, "\nRunning %s (sequence %d of %d)\n", filepath.Join(e.Dir, e.ID), seq, len(entries))
			}
			js := r.runEntry(ctx, idx, e, v, o.Quarantined)
			mu.Lock()
			st.add(js)
			mu.Unlock()
		}(i + 1)
	}
	wg.Wait()
	return st, ctx.Err()
}

// runEntry locks and delivers one job of a queue run.
func (r *Runner) runEntry(ctx context.Context, idx *queue.Index, e queue.Entry, v io.Writer, quarantined bool) Stats {
	l, err := r.cfg.Store.Lock(e.Dir, e.ID)
	switch {
	case errors.Is(err, queue.ErrLocked):
		return Stats{Skipped: 1}
	case errors.Is(err, queue.ErrNotFound):
		idx.Delete(e.Dir, e.ID)
		return Stats{Skipped: 1}
	case errors.Is(err, queue.ErrCorrupt):
		idx.Delete(e.Dir, e.ID)
		return Stats{Lost: 1}
	case err != nil:
		r.log.Errf(e.ID, "queue run: %v", err)
		return Stats{Skipped: 1}
	}
	return r.deliverJob(ctx, l, false, v, quarantined)
}

// Serve runs the queue every interval (sendmail -q30m, also inside -bd)
// until ctx ends, rescanning the directories before each run so that jobs
// queued by other processes are seen. It calls Start first when needed.
func (r *Runner) Serve(ctx context.Context, interval time.Duration) error {
	if r.index() == nil {
		if err := r.Start(); err != nil {
			return err
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := r.Run(ctx, RunOptions{}); err != nil && ctx.Err() == nil {
			r.log.Errf("", "queue run: %v", err)
		}
		select {
		case <-ctx.Done():
			r.Wait()
			return nil
		case <-t.C:
		}
		if err := r.reload(); err != nil {
			r.log.Errf("", "queue run: %v", err)
		}
	}
}

// Kick delivers job id of queue directory dir in the background, as soon
// as a delivery slot is free (DeliveryMode=background after acceptance,
// or ETRN). It never scans the directory. A job another process holds is
// left alone.
func (r *Runner) Kick(ctx context.Context, dir, id string) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case r.sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-r.sem }()
		l, err := r.cfg.Store.Lock(dir, id)
		if err != nil {
			if !errors.Is(err, queue.ErrLocked) && !errors.Is(err, queue.ErrNotFound) && !errors.Is(err, queue.ErrCorrupt) {
				r.log.Errf(id, "delivery: %v", err)
			}
			return
		}
		r.deliver(ctx, l, true, nil)
	}()
}

// DeliverLocked makes the first delivery attempt of a job just accepted
// and still locked (queue.Txn.CommitLocked), waiting for a delivery slot;
// verbose gets the transcript (-v, or nil). The lock is released on return.
// Run it in a goroutine for DeliveryMode=background, inline for
// interactive.
func (r *Runner) DeliverLocked(ctx context.Context, l *queue.Locked, verbose io.Writer) Stats {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		l.Unlock()
		return Stats{}
	}
	defer func() { <-r.sem }()
	return r.deliver(ctx, l, true, verbose)
}

// Wait waits for the deliveries started by Kick.
func (r *Runner) Wait() { r.wg.Wait() }
