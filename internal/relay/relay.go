package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/resolve"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// Resolver answers the two routing questions of the client.
// *resolve.Resolver satisfies it. Errors are *status.Error: permanent for
// a name that does not exist (5.1.10 for a null MX), temporary otherwise.
type Resolver interface {
	Exchangers(ctx context.Context, domain string) ([]resolve.MX, error)
	Addrs(ctx context.Context, host string) ([]netip.Addr, error)
}

// HostStatus is the host status table the client reads and records:
// *hoststat.Table satisfies it. Lookup returns a status only while it is
// younger than Timeout.hoststatus.
type HostStatus interface {
	Lookup(host string) (hoststat.Status, bool)
	Record(s hoststat.Status) error
}

var _ HostStatus = (*hoststat.Table)(nil)

// HostLocker is SingleThreadDelivery's lock on a host, shared with other
// processes: *hoststat.Table's Lock (an exclusive flock on the host's
// status file). Lock does not wait; hoststat.ErrLocked says another
// holds the host.
type HostLocker interface {
	Lock(host string) (unlock func(), err error)
}

var _ HostLocker = (*hoststat.Table)(nil)

// Timeouts are sendmail's Timeout.* options for the client side. A zero
// field takes sendmail's default (in parentheses).
type Timeouts struct {
	Connect   time.Duration // Timeout.connect: connect(2) (5m)
	IConnect  time.Duration // Timeout.iconnect: connect(2) on a job's first attempt (Connect)
	Initial   time.Duration // Timeout.initial: the greeting (5m)
	Helo      time.Duration // Timeout.helo: EHLO/HELO (5m)
	Mail      time.Duration // Timeout.mail: MAIL (10m)
	Rcpt      time.Duration // Timeout.rcpt: each RCPT (1h)
	DataInit  time.Duration // Timeout.datainit: DATA's 354 (5m)
	DataBlock time.Duration // Timeout.datablock: each block of the message (1h)
	DataFinal time.Duration // Timeout.datafinal: the reply to the final dot (1h)
	Rset      time.Duration // Timeout.rset: RSET (5m)
	Quit      time.Duration // Timeout.quit: QUIT (2m)
	Misc      time.Duration // Timeout.misc: the RSET that probes a cached connection (2m)
	StartTLS  time.Duration // Timeout.starttls: STARTTLS and the handshake (1h)
}

// TimeoutsFrom reads the Timeout.<name> options through get (as
// conf.Config.Timeout does; zero for an option not set).
func TimeoutsFrom(get func(name string) time.Duration) Timeouts {
	return Timeouts{
		Connect: get("connect"), IConnect: get("iconnect"), Initial: get("initial"), Helo: get("helo"),
		Mail: get("mail"), Rcpt: get("rcpt"), DataInit: get("datainit"), DataBlock: get("datablock"),
		DataFinal: get("datafinal"), Rset: get("rset"), Quit: get("quit"), Misc: get("misc"),
		StartTLS: get("starttls"),
	}
}

func (t Timeouts) withDefaults() Timeouts {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.Connect, 5*time.Minute)
	def(&t.IConnect, t.Connect)
	def(&t.Initial, 5*time.Minute)
	def(&t.Helo, 5*time.Minute)
	def(&t.Mail, 10*time.Minute)
	def(&t.Rcpt, time.Hour)
	def(&t.DataInit, 5*time.Minute)
	def(&t.DataBlock, time.Hour)
	def(&t.DataFinal, time.Hour)
	def(&t.Rset, 5*time.Minute)
	def(&t.Quit, 2*time.Minute)
	def(&t.Misc, 2*time.Minute)
	def(&t.StartTLS, time.Hour)
	return t
}

// EightBitMode is sendmail's EightBitMode option: what to do with 8-bit
// data for a peer that does not offer 8BITMIME.
type EightBitMode int

const (
	// Pass8 (p, sendmail's default): convert a MIME message to 7-bit MIME;
	// send any other 8-bit message as it is.
	Pass8 EightBitMode = iota
	// Mimefy (m): convert every 8-bit message, giving a non-MIME one MIME
	// headers; to a peer with 8BITMIME, label undeclared 8-bit data
	// BODY=8BITMIME and give a non-MIME message MIME headers.
	Mimefy
	// Strict (s): convert every 8-bit message.
	Strict
)

// ParseEightBitMode reads the option's value by its first letter, as
// sendmail does ("pass8", "mimefy", "strict").
func ParseEightBitMode(s string) (EightBitMode, error) {
	switch strings.ToLower(strings.TrimSpace(s) + " ")[0] {
	case 'p':
		return Pass8, nil
	case 'm':
		return Mimefy, nil
	case 's':
		return Strict, nil
	}
	return Pass8, fmt.Errorf("unknown 8-bit mode %s", s)
}

// Config configures a Client.
type Config struct {
	Hostname string   // $j: the EHLO name and the loop check
	Resolver Resolver // MX and address lookups; nil: only address literals work
	// HostStatus keeps the outcome of each host (*hoststat.Table); hosts
	// it says are down are skipped. nil keeps none.
	HostStatus HostStatus
	// HostLocks is SingleThreadDelivery (nil: off): each host is locked
	// for as long as a connection to it is open, idle in the cache
	// included, so that this process and others never have two
	// connections to one host at once. Deliveries of this client wait
	// for each other's turn at a host (the idle connection passes to the
	// next); a host another process holds is skipped for this attempt
	// (the next MX, else deferred with 4.4.5). It should be the
	// HostStatus table, so that a host's status is written through the
	// lock held for it.
	HostLocks HostLocker
	// TLS is the template of the client TLS settings (RootCAs, client
	// certificate, versions); nil: Go's defaults. Certificates are
	// checked only to log verify=OK/FAIL unless TLSPolicy says TLSVerify.
	TLS *tls.Config
	// TLSPolicy gives the TLS requirement for each host of a destination
	// before it is tried (see tls.go); nil: always TLSOpportunistic.
	TLSPolicy func(ctx context.Context, q TLSQuery) TLSRequirement
	Timeouts  Timeouts
	// ConnectionCacheSize is how many idle connections are kept (sendmail
	// option k); 0 gives sendmail's default 2, a negative value keeps
	// none. ConnectionCacheTimeout is how long one stays idle (option K;
	// 0: 5m).
	ConnectionCacheSize    int
	ConnectionCacheTimeout time.Duration
	// MaxPerDestination bounds the deliveries to one destination at once
	// (0: 20, as Postfix's default_destination_concurrency_limit).
	MaxPerDestination int
	MaxHopCount       int          // 0: 25
	EightBitMode      EightBitMode // default Pass8
	DefaultCharSet    string       // charset of added Content-Type headers; "": unknown-8bit
	Port              int          // 0: 25
	// Dial opens connections (tests); nil: net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// IsLocal reports whether a host name is this host ($=w): MX hosts
	// that are, and the less preferred ones, are not tried.
	IsLocal func(host string) bool
	Logger  *maillog.Logger
	Now     func() time.Time // nil: time.Now
}

var (
	errNoResolver = errors.New("relay: no resolver configured")
	errNoMX       = errors.New("relay: no mail exchanger")
)

// Client is the esmtp, smtp, smtp8, dsmtp and relay mailers. It is safe
// for concurrent use.
type Client struct {
	cfg   Config
	to    Timeouts
	now   func() time.Time
	log   *maillog.Logger
	dial  func(ctx context.Context, network, address string) (net.Conn, error)
	cache connCache
	slots destSlots
	turns destSlots // SingleThreadDelivery: one delivery at a time per host
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// New returns a Client. It starts a goroutine that closes cached
// connections idle past ConnectionCacheTimeout; Close stops it.
func New(cfg Config) *Client {
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.Port <= 0 {
		cfg.Port = 25
	}
	if cfg.MaxHopCount <= 0 {
		cfg.MaxHopCount = 25
	}
	if cfg.MaxPerDestination <= 0 {
		cfg.MaxPerDestination = 20
	}
	if cfg.DefaultCharSet == "" {
		cfg.DefaultCharSet = "unknown-8bit"
	}
	size := cfg.ConnectionCacheSize
	switch {
	case size == 0:
		size = 2
	case size < 0:
		size = 0
	}
	idle := cfg.ConnectionCacheTimeout
	if idle <= 0 {
		idle = 5 * time.Minute
	}
	c := &Client{cfg: cfg, to: cfg.Timeouts.withDefaults(), now: cfg.Now, log: cfg.Logger, dial: cfg.Dial,
		stop: make(chan struct{}), done: make(chan struct{})}
	if c.now == nil {
		c.now = time.Now
	}
	if c.dial == nil {
		var d net.Dialer
		c.dial = d.DialContext
	}
	c.cache = connCache{size: size, idle: idle}
	c.slots = destSlots{limit: cfg.MaxPerDestination, m: map[string]*destSlot{}}
	c.turns = destSlots{limit: 1, m: map[string]*destSlot{}}
	go c.sweeper(idle)
	return c
}

// Close says QUIT to every cached connection and stops the sweeper.
// Deliveries after Close still work, without caching.
func (c *Client) Close() error {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		for _, sc := range c.cache.drain() {
			fmt.Fprintf(sc.lastV, "Closing connection to %s\n", sc.name)
			sc.v = sc.lastV
			sc.quit(c.to.Quit)
		}
	})
	return nil
}

func (c *Client) sweeper(idle time.Duration) {
	defer close(c.done)
	every := idle / 2
	if every > time.Minute {
		every = time.Minute
	}
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.sweep()
		}
	}
}

// sweep closes the cached connections idle for longer than
// ConnectionCacheTimeout.
func (c *Client) sweep() {
	for _, sc := range c.cache.expired(c.now()) {
		sc.quit(c.to.Quit)
	}
}

// mailerKind is what the mailer name decides (F= and L= of sendmail.cf).
type mailerKind struct {
	name       string
	alwaysEHLO bool // F=a: EHLO even when the greeting does not say ESMTP
	eightBits  bool // F=8: send 8-bit data as it is, never convert
	limit      int  // L=
}

func kindOf(name string) mailerKind {
	switch name {
	case "smtp":
		return mailerKind{name: name, limit: smtpLineLimit}
	case "smtp8":
		return mailerKind{name: name, eightBits: true, limit: smtpLineLimit}
	case "relay":
		return mailerKind{name: name, alwaysEHLO: true, eightBits: true, limit: relayLineLimit}
	case "":
		name = "esmtp"
	}
	return mailerKind{name: name, alwaysEHLO: true, limit: smtpLineLimit}
}

// Deliver sends the message to the recipients of d, all bound for
// d.Host, and returns one result per recipient in order.
func (c *Client) Deliver(ctx context.Context, d *runner.Delivery) []runner.Result {
	dl := &delivery{c: c, d: d, kind: kindOf(d.Mailer),
		res: make([]runner.Result, len(d.Rcpts)), done: make([]bool, len(d.Rcpts)),
		v: d.Verbose, xf: d.TranscriptOnly}
	if dl.v == nil {
		dl.v = io.Discard
	}
	if dl.xf == nil {
		dl.xf = d.Transcript
	}
	if dl.xf == nil {
		dl.xf = io.Discard
	}
	// Never a success by omission: every result starts as a failure.
	unset := status.New(451, "4.3.0", "Internal error: recipient not attempted")
	for i := range dl.res {
		dl.res[i].Err = unset
	}
	if len(d.Rcpts) > 0 {
		dl.run(ctx)
	}
	return dl.res
}

// delivery is one Deliver call.
type delivery struct {
	c      *Client
	d      *runner.Delivery
	kind   mailerKind
	res    []runner.Result
	done   []bool // res[i] is final
	v, xf  io.Writer
	msg    *message
	domain string // the destination's domain, or its host
	dest   destination
	port   int
}

func (dl *delivery) qid() string {
	if dl.d.Job == nil {
		return ""
	}
	return dl.d.Job.ID
}

// settle gives every recipient not yet final the failure's result.
func (dl *delivery) settle(f *failure) {
	for i := range dl.res {
		if !dl.done[i] {
			dl.res[i] = f.result()
			dl.done[i] = true
		}
	}
}

func (dl *delivery) run(ctx context.Context) {
	c, d := dl.c, dl.d
	if hops := hopCount(d.Header); hops > c.cfg.MaxHopCount {
		from := "<>"
		if d.Job != nil {
			from = d.Job.Sender
		}
		msg := fmt.Sprintf("Too many hops %d (%d max): from %s via localhost, to %s", hops, c.cfg.MaxHopCount, from, d.Rcpts[0].Addr)
		fmt.Fprintf(dl.xf, "554 5.4.6 %s\n", msg)
		c.log.Errf(dl.qid(), "SYSERR(root): %s", msg)
		dl.settle(&failure{st: status.New(554, "5.4.6", "Too many hops"), diag: "554 5.4.6 Too many hops"})
		return
	}
	dest, err := parseDest(d.Host)
	if err != nil {
		dl.settle(configFailure("554 5.3.5 "+err.Error(), d.Host, d.Host))
		return
	}
	dl.port = c.cfg.Port
	if dest.port != 0 {
		dl.port = dest.port
	}
	dl.dest = dest
	dl.domain = dest.domain
	if dl.domain == "" {
		dl.domain = dest.host
	}

	release, err := c.slots.acquire(ctx, strings.ToLower(d.Host))
	if err != nil {
		dl.settle(interrupted(ctx, d.Host, d.Host))
		return
	}
	defer release()

	if dl.msg, err = newMessage(d); err != nil {
		dl.settle(&failure{st: status.From(err)})
		return
	}
	targets, f := c.targets(ctx, dest)
	if f != nil {
		if f.syserr != "" {
			c.log.Errf(dl.qid(), "SYSERR(root): %s", f.syserr)
		}
		dl.settle(f)
		return
	}
	dl.walk(ctx, targets)
}

// walk tries the hosts in order until no recipient is left to try. A host
// recorded as down is skipped with its recorded failure. A host that
// cannot be reached passes all recipients on to the next; after a
// transaction, the temporarily failed recipients go on to the next host
// only when the transaction failed as a whole before the message was
// sent (sendmail's rule, without its retry after a lost connection
// during DATA, which could deliver twice).
func (dl *delivery) walk(ctx context.Context, targets []target) {
	pending := make([]int, len(dl.res))
	for i := range pending {
		pending[i] = i
	}
	var last, lastTemp *failure
	for _, t := range targets {
		if len(pending) == 0 || ctx.Err() != nil {
			break
		}
		if st, ok := dl.hostStatus(t); ok && st.Down() {
			last = statusFailure(st, t.name)
			dl.tentative(pending, last)
			continue
		}
		out := dl.tryHost(ctx, t, pending)
		if out.fail != nil {
			last = out.fail
			if last.temporary() {
				lastTemp = last
			}
			if last.stick {
				dl.record(t, last.hostStatus(t.key()), true)
			}
			out.hold.release() // after the record, which it writes through
			dl.tentative(pending, last)
			continue
		}
		last = nil
		dl.record(t, out.hs, true)
		out.hold.release()
		pending = pending[:0]
		if out.tryNext {
			for _, i := range out.retry {
				if !dl.done[i] {
					pending = append(pending, i)
				}
			}
		}
	}
	if ctx.Err() != nil && len(pending) > 0 {
		dl.tentative(pending, interrupted(ctx, dl.d.Host, dl.d.Host))
		last = nil
	}
	// A host without addresses bounces only when no other host failed
	// temporarily (sendmail's goodmxfound).
	if last != nil && last.exit == exitNoHost && lastTemp != nil && dl.domain != "" {
		dl.tentative(pending, lastTemp)
	}
	for i := range dl.done {
		dl.done[i] = true
	}
}

// tentative sets the results of recipients that a later host may still
// change.
func (dl *delivery) tentative(idx []int, f *failure) {
	for _, i := range idx {
		if !dl.done[i] {
			dl.res[i] = f.result()
		}
	}
}

func (dl *delivery) hostStatus(t target) (hoststat.Status, bool) {
	if dl.c.cfg.HostStatus == nil {
		return hoststat.Status{}, false
	}
	return dl.c.cfg.HostStatus.Lookup(t.key())
}

// record stores a host's outcome. Failures sendmail does not keep
// (NOTSTICKY: one transaction's replies) leave the host up.
func (dl *delivery) record(t target, s hoststat.Status, sticky bool) {
	if dl.c.cfg.HostStatus == nil {
		return
	}
	if !sticky {
		s.Exit = exitOK
	}
	s.Host = t.key()
	s.Updated = dl.c.now()
	if err := dl.c.cfg.HostStatus.Record(s); err != nil {
		dl.c.log.Errf(dl.qid(), "host status %s: %v", s.Host, err)
	}
}

// who is the recipient sendmail names in its -v lines.
func (dl *delivery) who(pending []int) string {
	if len(pending) == 0 {
		return dl.d.Rcpts[0].Addr
	}
	return dl.d.Rcpts[pending[0]].Addr
}

// job fields, for deliveries without a job (tests of the transport).
func (dl *delivery) job() *queue.Job {
	if dl.d.Job == nil {
		return &queue.Job{}
	}
	return dl.d.Job
}
