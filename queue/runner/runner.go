package runner

import (
	"context"
	"errors"
	"io"
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
	// TranscriptOnly receives the lines of the DSN's transcript that -v
	// does not show (sendmail's xf file alone): the remote dialogue of a
	// failure ("... while talking to mx.example.:", ">>> DATA", "<<< 550
	// ..."). nil: write them to Transcript.
	TranscriptOnly io.Writer
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
	// Relayed is set when the message went to a host that does not offer
	// DSN: a recipient with NOTIFY=SUCCESS then gets sendmail's "relayed"
	// receipt (Action: relayed), as no further notice will come.
	Relayed bool
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
	// LocalMailers names the mailers of the local class (default local,
	// *file*, prog, *include*); every other mailer is remote. See
	// MaxQueueChildren.
	LocalMailers []string

	// Schedule: MinQueueAge, the run interval, Timeout.queuewarn and
	// Timeout.queuereturn (queue.DefaultSchedule gives 4h and 5d).
	Schedule queue.Schedule
	// SortOrder is QueueSortOrder: the order a queue run starts its jobs.
	SortOrder SortOrder
	// MaxQueueChildren bounds the jobs this process delivers at once in
	// the background (queue runs, deliveries after acceptance, ETRN), for
	// each mailer class: a job with a recipient on a remote mailer counts
	// against the remote bound, any other against the local one, so
	// that local delivery never waits behind slow remote hosts (0 = 4 ×
	// GOMAXPROCS each).
	MaxQueueChildren int
	// MaxRunnersPerQueue bounds the jobs one queue run has in delivery
	// at once, per class (0 = MaxQueueChildren).
	MaxRunnersPerQueue int
	// MaxWaiting bounds the jobs handed over for background delivery
	// that wait for room (0 = 10,000). A waiting job does not hold its
	// lock. Beyond the bound a job is left in the queue for the next run.
	MaxWaiting int
	// MaxNodeRuns bounds the ETRN queue runs at once (0 = 2); see ETRN.
	MaxNodeRuns int
	// HostDown, when set, is asked before a remote mailer is called for a
	// host: a (temporary) error defers that mailer's recipients with it,
	// without calling the mailer (sendmail's host status: a host known
	// to be down is not tried again until Timeout.hoststatus).
	HostDown func(ctx context.Context, mailer, host string) error

	Hostname string // $j: DSN Reporting-MTA, $g qualification
	Version  string // "$v/$Z" for the DSN's Received header

	// HostNames are this host's own names (header.HostNames), which header
	// addresses are rewritten from to $j at delivery; nil: localhost and
	// $j.
	HostNames func(domain string) bool

	// ExpandReport, when set, expands the recipient of a report the runner
	// queues (the original sender, or the postmaster) as acceptance does
	// (aliases, ~/.forward) into final qf recipients with their C lines
	// and A flags; the runner itself never expands. nil, or an error
	// (logged), queues the address as it is.
	ExpandReport func(ctx context.Context, addr string) ([]queue.Recipient, error)
	// ExpandQueued, when set, expands a recipient that acceptance queued
	// unexpanded (flag queue.RcptUnexpanded: the alias database was
	// unavailable) into final qf recipients, keeping its DSN parameters;
	// an error defers it (a temporary one) or fails it. nil: such a
	// recipient is routed as it is.
	ExpandQueued func(ctx context.Context, rc queue.Recipient) ([]queue.Recipient, error)
	// DoubleBounceAddress receives failures of mail from <> (default
	// "postmaster").
	DoubleBounceAddress string
	// NoBodyReturn is PrivacyOptions=nobodyreturn: DSNs carry only the
	// headers unless RET=FULL was given.
	NoBodyReturn bool

	Logger *maillog.Logger
	Now    func() time.Time // nil = time.Now
}

// Runner delivers queued jobs. It is safe for concurrent use. Everything
// it does in the background is tracked, so that Shutdown can wait for it.
type Runner struct {
	cfg   Config
	log   *maillog.Logger
	now   func() time.Time
	flag  map[string]string
	local map[string]bool
	par   int // per run and class

	// hard is the context of background deliveries: cancelled when
	// Shutdown runs out of time. quit is closed when Shutdown starts.
	hard     context.Context
	cancel   context.CancelFunc
	quit     chan struct{}
	quitOnce sync.Once
	active   sync.WaitGroup // every delivery and run in progress

	mu    sync.Mutex // guards idx, lanes and nodes
	idx   *queue.Index
	lanes lanes
	nodes nodeRuns
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
	r := &Runner{cfg: cfg, log: cfg.Logger, now: cfg.Now, flag: map[string]string{}, local: localMailers,
		par: cfg.MaxRunnersPerQueue, quit: make(chan struct{})}
	if r.par <= 0 || r.par > n {
		r.par = n
	}
	if r.now == nil {
		r.now = time.Now
	}
	if cfg.LocalMailers != nil {
		r.local = map[string]bool{}
		for _, m := range cfg.LocalMailers {
			r.local[m] = true
		}
	}
	for k, v := range defaultMailerFlags {
		r.flag[k] = v
	}
	for k, v := range cfg.MailerFlags {
		r.flag[k] = v
	}
	r.hard, r.cancel = context.WithCancel(context.Background())
	r.lanes = lanes{r: r, keys: map[jobKey]bool{}, maxWaiting: cfg.MaxWaiting}
	if r.lanes.maxWaiting <= 0 {
		r.lanes.maxWaiting = 10000
	}
	for c := range r.lanes.lane {
		r.lanes.lane[c].max = n
	}
	r.nodes = nodeRuns{max: cfg.MaxNodeRuns, pending: map[string]bool{}, running: map[string]bool{}}
	if r.nodes.max <= 0 {
		r.nodes.max = 2
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
	Skipped  int // locked by another process, gone, or already in delivery here
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
// Serve and ETRN runs refresh it with one directory scan each.
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

// stopping reports whether Shutdown has begun.
func (r *Runner) stopping() bool {
	select {
	case <-r.quit:
		return true
	default:
		return false
	}
}

// DeliverLocked makes the first delivery attempt of a job just accepted
// and still locked (queue.Txn.CommitLocked), at once, in the caller's
// goroutine: the caller waits for it (DeliveryMode=interactive, VERB,
// -v). verbose gets the transcript (or nil). The lock is released on
// return. It takes no background room: the callers are bounded by the
// SMTP sessions, as sendmail delivers interactively in the session's
// process. Shutdown waits for it and cancels it with the rest.
func (r *Runner) DeliverLocked(ctx context.Context, l *queue.Locked, verbose io.Writer) Stats {
	r.active.Add(1)
	defer r.active.Done()
	ctx, stop := r.bound(ctx)
	defer stop()
	if ctx.Err() != nil {
		l.Unlock()
		return Stats{Skipped: 1}
	}
	return r.deliver(ctx, l, true, verbose)
}

// bound derives a context from ctx that Shutdown also cancels.
func (r *Runner) bound(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.hard, cancel)
	return ctx, func() { stop(); cancel() }
}

// Background hands a job just accepted and still locked to the runner for
// its first delivery attempt (DeliveryMode=background) and returns at
// once. When its class has room the job starts at once, still locked;
// otherwise it waits, unlocked (see MaxWaiting), or, when too many wait or
// the runner is stopping, it is left in the queue for the next run.
func (r *Runner) Background(l *queue.Locked) {
	c, _ := r.jobClass(r.hard, l.Job())
	r.lanes.submit(c, &task{key: jobKey{l.Dir(), l.ID()}, l: l, first: true, ctx: r.hard, done: func(Stats) {}})
}

// Kick delivers job id of queue directory dir in the background (a job
// queued by this process that another part wants tried now, such as the
// owner- list copy of a message), as Background does. It locks and reads
// that one job, never scanning the directory; a job another process
// holds is left alone.
func (r *Runner) Kick(dir, id string) {
	if r.stopping() {
		return
	}
	if l, _ := r.lock(dir, id); l != nil {
		r.Background(l)
	}
}

// Shutdown stops the runner's background work: queue runs start no
// further jobs, jobs waiting for room are dropped (they stay queued,
// unlocked, for the next run) and new ones are left in the queue. It
// waits for the deliveries in progress; when ctx ends first it cancels
// them (a mailer sees its context cancelled and rolls back: a mailbox
// append is undone, a program is killed; its recipients are deferred and
// the qf rewritten) and waits until they have returned, so that nothing
// is cut off half-way when the process exits.
func (r *Runner) Shutdown(ctx context.Context) {
	r.quitOnce.Do(func() { close(r.quit) })
	r.lanes.close()
	r.nodes.close(r)
	done := make(chan struct{})
	go func() { r.active.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		<-done
	}
	r.cancel()
}

// Wait waits for the background deliveries, runs and ETRN runs in
// progress (and those they start) to end.
func (r *Runner) Wait() { r.active.Wait() }
