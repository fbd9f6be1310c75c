package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/cli"
	"github.com/posthorn/posthorn/internal/daemon"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue/runner"
)

// detachedEnv marks the re-executed child of `sendmail -bd`. Go cannot fork,
// so -bd starts itself again in a new session and waits until the child has
// bound its listeners (or failed), then exits with the child's verdict.
const detachedEnv = "POSTHORN_DETACHED_CHILD"

func (a *app) runDaemon() int {
	if a.inv.Mode == cli.ModeDaemon && os.Getenv(detachedEnv) == "" {
		return a.detach()
	}
	st, code := a.openStore(true)
	if st == nil {
		a.notifyParent("error: cannot open the queue " + a.cfg.QueueDirectory)
		return code
	}
	defer st.Close()
	a.store = st
	// The runner lives across SIGHUPs; its reports are expanded through
	// an alias source of its own, which follows rebuilds of the database.
	x, src := newExpander(a.cfg, a)
	if src != nil {
		defer src.Close()
	}
	r, err := a.newRunner(a.cfg, st, newAcceptor(a.cfg, st, queueExpander{x}, a.log))
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		a.notifyParent("error: " + err.Error())
		return sysexits.Config
	}
	run := newRunnerDelivery(r)
	defer run.Wait()
	a.runner = run
	if err := a.reload(); err != nil {
		fmt.Fprintln(a.stderr, err)
		a.notifyParent("error: " + err.Error())
		return sysexits.Config
	}
	dc := a.daemonConfig()
	if a.inv.QueueInterval > 0 {
		// Each periodic run scans the directories, so jobs queued by other
		// processes (sendmail -odq, a -q from cron) are seen.
		dc.RunQueue = func(ctx context.Context) { run.current().Run(ctx, runner.RunOptions{}) }
	}
	d, err := daemon.Listen(dc)
	if err != nil {
		a.log.Errf("", "%v", err)
		fmt.Fprintln(a.stderr, err)
		a.notifyParent("error: " + err.Error())
		return sysexits.OSErr
	}
	if err := d.Serve(context.Background()); err != nil {
		a.log.Errf("", "%v", err)
		fmt.Fprintln(a.stderr, err)
		return sysexits.OSErr
	}
	return sysexits.OK
}

func (a *app) daemonConfig() daemon.Config {
	return daemon.Config{
		Ports:         a.cfg.Daemons,
		PidFile:       a.cfg.PidFile,
		CommandLine:   strings.Join(a.argv, " "),
		Handler:       a.serveConn,
		QueueInterval: a.inv.QueueInterval,
		Reload:        a.reload,
		Grace:         30 * time.Second,
		Log:           a.log,
		Ready: func() {
			for _, w := range a.cfg.Warnings {
				a.log.Warnf("", "%s", w)
			}
			if len(a.cfg.NotInterpreted) > 0 {
				a.log.Infof("", "configuration %s: not interpreted: %s", a.cfg.Path, strings.Join(a.cfg.NotInterpreted, ", "))
			}
			a.notifyParent("ok")
		},
	}
}

// reload (re)builds what sessions use from the configuration: at start
// and on SIGHUP. Listeners and the queue stay as they are: a change of
// DaemonPortOptions or QueueDirectory needs a restart.
func (a *app) reload() error {
	cfg := a.cfg
	if a.live.Load() != nil { // SIGHUP: read the file again
		var err error
		if cfg, err = loadConfig(a.inv); err != nil {
			return err
		}
	}
	x, src := newExpander(cfg, a)
	backend := &smtpBackend{cfg: cfg, store: a.store, x: x, run: a.runner}
	backend.acc = newAcceptor(cfg, a.store, queueExpander{x}, a.log)
	svc, err := a.newSMTPService(cfg, backend)
	if err == nil && cfg != a.cfg {
		// Delivery follows the new configuration too (routing, smart
		// host, resolver, timeouts, mailers' options), as sendmail's
		// restart on SIGHUP does.
		var r *runner.Runner
		if r, err = a.newRunner(cfg, a.store, backend.acc); err == nil {
			if rd, ok := a.runner.(*runnerDelivery); ok {
				rd.replace(r)
			}
		}
	}
	if err != nil {
		if src != nil {
			src.Close()
		}
		return err
	}
	old := a.live.Swap(&liveState{cfg: cfg, svc: svc, aliases: src})
	if old != nil && old.aliases != nil {
		// Sessions still using the old expander keep working: a closed
		// Source still answers; closing only releases the database file.
		if d := reloadCloseDelay(); d > 0 {
			time.AfterFunc(d, func() { old.aliases.Close() })
		} else {
			old.aliases.Close()
		}
	}
	return nil
}

// reloadCloseDelayEnv sets how long after a SIGHUP the old configuration's
// alias database is closed (a Go duration; "0" at once). It exists for the
// black-box tests, which must not wait the default minute.
const reloadCloseDelayEnv = "POSTHORN_RELOAD_CLOSE_DELAY"

func reloadCloseDelay() time.Duration {
	if v, ok := os.LookupEnv(reloadCloseDelayEnv); ok {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
	}
	return time.Minute
}

// serveConn is the daemon's session entry point.
func (a *app) serveConn(ctx context.Context, conn net.Conn, port conf.DaemonPort) {
	a.live.Load().svc.serve(ctx, conn, port)
}

// detach re-executes the binary as a session leader with its standard files
// on /dev/null and a pipe on fd 3 on which the child reports "ok" once it
// listens, or the error that stopped it.
func (a *app) detach() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(a.stderr, "cannot find own executable:", err)
		return sysexits.OSErr
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.OSErr
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.OSErr
	}
	cmd := exec.Command(self, a.argv[1:]...)
	cmd.Args[0] = a.argv[0]
	cmd.Env = append(os.Environ(), detachedEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(a.stderr, "cannot start daemon:", err)
		return sysexits.OSErr
	}
	w.Close()
	devnull.Close()
	line, _ := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "ok" {
		cmd.Process.Release()
		return sysexits.OK
	}
	if msg, ok := strings.CutPrefix(line, "error: "); ok {
		fmt.Fprintln(a.stderr, msg)
	} else {
		fmt.Fprintln(a.stderr, "daemon exited before it was ready")
	}
	cmd.Wait()
	return sysexits.OSErr
}

// notifyParent tells a detaching parent how the start went.
func (a *app) notifyParent(msg string) {
	if os.Getenv(detachedEnv) == "" {
		return
	}
	f := os.NewFile(3, "parent")
	if f == nil {
		return
	}
	fmt.Fprintln(f, msg)
	f.Close()
	os.Unsetenv(detachedEnv)
}
