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
	"github.com/posthorn/posthorn/internal/mta"
	"github.com/posthorn/posthorn/internal/sysexits"
)

// detachedEnv marks the re-executed child of `sendmail -bd`. Go cannot fork,
// so -bd starts itself again in a new session and waits until the child has
// bound its listeners (or failed), then exits with the child's verdict.
const detachedEnv = "POSTHORN_DETACHED_CHILD"

func (a *app) runDaemon() int {
	if a.inv.Mode == cli.ModeDaemon && os.Getenv(detachedEnv) == "" {
		return a.detach()
	}
	defer a.startProfile()()
	st, code := a.openStore(storeCreate)
	if st == nil {
		a.notifyParent("error: cannot open the queue " + a.cfg.QueueDirectory)
		return code
	}
	defer st.Close()
	a.store = st
	// The runner lives across SIGHUPs; each reload gives it the new
	// configuration's routing and expansion (Delivery.SetSite).
	site := a.site(st)
	run, err := a.delivery(site)
	if err != nil {
		site.Close()
		fmt.Fprintln(a.stderr, err)
		a.notifyParent("error: " + err.Error())
		return sysexits.Config
	}
	defer run.Close()
	a.runner = run
	r := run.Runner
	// The index serves the periodic runs; each periodic and ETRN run
	// rescans to see jobs queued by other processes (sendmail -odq, a -q
	// from cron). It is not built here: with -q, Serve builds it in the
	// background before the first run, so that a big queue does not keep
	// the listeners closed (50,000 jobs took 0.9 s before the first 220);
	// without -q only ETRN runs use it, and they rescan anyway.
	defer r.Wait()
	if err := a.reload(site); err != nil {
		fmt.Fprintln(a.stderr, err)
		a.notifyParent("error: " + err.Error())
		return sysexits.Config
	}
	dc := a.daemonConfig()
	if a.inv.QueueInterval > 0 {
		dc.Queue = func(ctx context.Context) {
			if err := r.Serve(ctx, a.inv.QueueInterval); err != nil {
				a.log.Errf("", "queue run: %v", err)
			}
		}
	}
	dc.Queue = run.WithTLSReports(dc.Queue)
	dc.Drain = r.Shutdown
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
		Reload:        func() error { return a.reload(nil) },
		Grace:         shutdownGrace,
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
// (with the Site the runner was built from) and on SIGHUP (site nil: the
// file is read again). The runner routes and expands with the new Site
// from then on. Listeners and the queue stay as they are: a change of
// DaemonPortOptions or QueueDirectory needs a restart.
func (a *app) reload(site *mta.Site) error {
	if site == nil {
		cfg, err := loadConfig(a.inv)
		if err != nil {
			return err
		}
		site = mta.New(mta.Options{Config: cfg, Log: a.log, Store: a.store, NoAlias: a.inv.NoAlias})
	}
	svc, err := a.newSMTPService(site, mta.NewBackend(site, a.runner))
	if err != nil {
		site.Close()
		return err
	}
	if a.live.Load() != nil { // at start the runner was built from site
		if err := a.runner.SetSite(site); err != nil {
			site.Close()
			return err
		}
	}
	old := a.live.Swap(&liveState{site: site, svc: svc})
	if old != nil {
		// Sessions still using the old expander keep working: a closed
		// Source still answers; closing only releases the database file.
		if d := reloadCloseDelay(); d > 0 {
			time.AfterFunc(d, old.site.Close)
		} else {
			old.site.Close()
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
