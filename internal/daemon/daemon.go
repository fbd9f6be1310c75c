// Package daemon is the life cycle of `sendmail -bd`/`-bD`: it binds one
// listener per DaemonPortOptions, writes the pid file, hands each accepted
// connection to a session handler, runs the queue runner's loop, re-reads
// the configuration on SIGHUP without dropping listeners, and on SIGTERM
// stops accepting, stops the queue loop, lets open sessions and the
// deliveries in progress finish within one bound (then cancels them and
// waits until they have returned or rolled back), and removes the pid
// file.
//
// The pid file has sendmail's two lines: the process id, then the command
// line that started the daemon, each ending in a newline; mode 0640.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/maillog"
)

// Handler serves one accepted connection. It must return when ctx is
// cancelled (the daemon's shutdown bound has passed).
type Handler func(ctx context.Context, conn net.Conn, port conf.DaemonPort)

// Config is what the daemon needs from its caller.
type Config struct {
	Ports       []conf.DaemonPort
	PidFile     string
	CommandLine string // the second line of the pid file
	Handler     Handler

	// QueueInterval is -q<interval> (for the start-up log line); Queue,
	// when set, runs for the daemon's lifetime: the queue runner's
	// periodic runs (package runner's Serve). Its ctx ends at SIGTERM, and
	// it should return promptly then, leaving deliveries in progress to
	// Drain.
	QueueInterval time.Duration
	Queue         func(ctx context.Context)
	// Drain, when set, is called at SIGTERM once the listeners and the
	// queue loop have stopped, while the open sessions finish: it stops
	// the background deliveries and returns when every delivery in
	// progress has ended. Its ctx ends when Grace has passed; the
	// deliveries still going are then cancelled (and roll back).
	Drain func(ctx context.Context)

	// Reload is called on SIGHUP.
	Reload func() error

	// Grace is how long open sessions and deliveries in progress may go
	// on after SIGTERM.
	Grace time.Duration

	Log *maillog.Logger

	// Ready is called once the listeners are bound and the pid file is
	// written: the moment a detaching parent may exit.
	Ready func()
}

// Daemon is a running daemon.
type Daemon struct {
	cfg       Config
	listeners []net.Listener
	sessions  sync.WaitGroup
	active    atomic.Int64
}

// listenConfig sets TCP keepalive (15 s idle, probes every 15 s, 9 of
// them: Go's defaults) once on each listening socket, whose accepted
// connections inherit it, instead of four setsockopt calls on every
// connection.
var listenConfig = net.ListenConfig{
	KeepAlive: -1,
	Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			for _, o := range []struct{ level, opt, v int }{
				{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15},
				{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15},
				{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, 9},
			} {
				if serr == nil {
					serr = unix.SetsockoptInt(int(fd), o.level, o.opt, o.v)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	},
}

// Listen binds every port. An error names the daemon and the address, as
// sendmail's "opendaemonsocket: daemon MTA: cannot bind" does.
func Listen(cfg Config) (*Daemon, error) {
	d := &Daemon{cfg: cfg}
	for _, p := range cfg.Ports {
		l, err := listenConfig.Listen(context.Background(), p.Network(), p.Address())
		if err != nil {
			d.closeListeners()
			return nil, fmt.Errorf("opendaemonsocket: daemon %s: cannot bind %s: %w", p.Name, p.Address(), err)
		}
		d.listeners = append(d.listeners, l)
	}
	return d, nil
}

// Addrs returns the bound addresses (useful when a port was 0).
func (d *Daemon) Addrs() []net.Addr {
	out := make([]net.Addr, len(d.listeners))
	for i, l := range d.listeners {
		out[i] = l.Addr()
	}
	return out
}

func (d *Daemon) closeListeners() {
	for _, l := range d.listeners {
		l.Close()
	}
}

// Serve runs until ctx is cancelled or SIGTERM/SIGINT arrives, then shuts
// down in order. It returns nil after a clean shutdown.
func (d *Daemon) Serve(ctx context.Context) error {
	if err := writePidFile(d.cfg.PidFile, d.cfg.CommandLine); err != nil {
		d.closeListeners()
		return err
	}
	defer os.Remove(d.cfg.PidFile)

	stopSignals := make(chan os.Signal, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(stopSignals, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(stopSignals)
	defer signal.Stop(hup)

	// Sessions get their own context so that they outlive the stop of
	// accepting by up to Grace.
	sessionCtx, cancelSessions := context.WithCancel(context.Background())
	defer cancelSessions()
	loopCtx, stopLoops := context.WithCancel(ctx)
	defer stopLoops()

	var loops sync.WaitGroup
	for i, l := range d.listeners {
		loops.Add(1)
		go func(l net.Listener, port conf.DaemonPort) {
			defer loops.Done()
			d.accept(sessionCtx, l, port)
		}(l, d.cfg.Ports[i])
	}
	if d.cfg.Queue != nil {
		loops.Add(1)
		go func() {
			defer loops.Done()
			d.cfg.Queue(loopCtx)
		}()
	}

	d.cfg.Log.Infof("", "starting daemon (posthorn %s): %s", conf.Version, d.describe())
	if d.cfg.Ready != nil {
		d.cfg.Ready()
	}

	for stopping := false; !stopping; {
		select {
		case <-ctx.Done():
			stopping = true
		case sig := <-stopSignals:
			d.cfg.Log.Infof("", "stopping daemon, reason=signal %s", sig)
			stopping = true
		case <-hup:
			if d.cfg.Reload == nil {
				continue
			}
			if err := d.cfg.Reload(); err != nil {
				d.cfg.Log.Errf("", "restart: configuration not reloaded: %v", err)
			} else {
				d.cfg.Log.Infof("", "restart: configuration reloaded")
			}
		}
	}

	d.closeListeners()
	stopLoops()
	loops.Wait()
	grace := d.cfg.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	// Sessions and deliveries share one bound: sessions may still hand
	// over work while the deliveries drain.
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), grace)
	defer cancelGrace()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		if d.cfg.Drain != nil {
			d.cfg.Drain(graceCtx)
		}
	}()
	done := make(chan struct{})
	go func() { d.sessions.Wait(); close(done) }()
	select {
	case <-done:
	case <-graceCtx.Done():
		d.cfg.Log.Noticef("", "stopping daemon: %d sessions still open after %s, closing them", d.active.Load(), grace)
		cancelSessions()
		<-done
	}
	<-drained
	return nil
}

func (d *Daemon) describe() string {
	s := "SMTP"
	if d.cfg.QueueInterval > 0 && d.cfg.Queue != nil {
		s += "+queueing@" + maillog.Delay(d.cfg.QueueInterval)
	}
	return s
}

func (d *Daemon) accept(ctx context.Context, l net.Listener, port conf.DaemonPort) {
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait and retry rather than spin.
			if backoff == 0 {
				backoff = 5 * time.Millisecond
			} else if backoff < time.Second {
				backoff *= 2
			}
			d.cfg.Log.Errf("", "daemon %s: accept: %v", port.Name, err)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		// MaxDaemonChildren and ConnectionRateThrottle are the handler's
		// (policy.Limiter per listener): it answers 421 4.3.2 itself.
		d.active.Add(1)
		d.sessions.Add(1)
		go func() {
			defer d.sessions.Done()
			defer d.active.Add(-1)
			defer conn.Close()
			d.cfg.Handler(ctx, conn, port)
		}()
	}
}

// Active is the number of open sessions.
func (d *Daemon) Active() int { return int(d.active.Load()) }

func writePidFile(path, cmdline string) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d\n%s\n", os.Getpid(), cmdline)), 0o640); err != nil {
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("pid file %s: %w", path, err)
	}
	return nil
}
