// Command sendmail is posthorn: one binary that is /usr/sbin/sendmail,
// mailq, newaliases, hoststat, purgestat and mail.local. It parses sendmail's
// command line, loads the configuration, wires the parts together explicitly
// and exits with a sysexits code.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/cli"
	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

func main() {
	// Before anything reads the arguments or the environment: a set-ID
	// copy becomes the invoking user (privilege.go).
	if err := dropSetID(); err != nil {
		fmt.Fprintln(os.Stderr, "sendmail:", err)
		os.Exit(sysexits.OSErr)
	}
	// The hidden child mode appends to a file with another user's
	// credentials (package deliver); it must never see sendmail's flags.
	if len(os.Args) > 1 && os.Args[1] == deliver.ChildFlag {
		os.Exit(deliver.RunChild(os.Args[2:], os.Stdin, os.Stdout))
	}
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// app is one invocation's object graph.
type app struct {
	inv    *cli.Invocation
	cfg    *conf.Config
	log    *maillog.Logger
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	argv   []string

	// live is what sessions use; SIGHUP replaces it.
	live   atomic.Pointer[liveState]
	store  *queue.Store
	runner delivery

	relayMu sync.Mutex
	relays  []*relay.Client // one per runner: see relayClient
}

// liveState is one configuration's SMTP side.
type liveState struct {
	cfg     *conf.Config
	svc     *smtpService
	aliases *aliases.Source
}

func run(argv []string, stdin io.Reader, stdout, stderr io.Writer) int {
	inv, err := cli.Parse(argv)
	if err != nil {
		var ue *cli.UsageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, ue.Msg)
			return ue.Exit
		}
		fmt.Fprintln(stderr, err)
		return sysexits.Usage
	}
	for _, w := range inv.Warnings {
		fmt.Fprintln(stderr, w)
	}

	cfg, err := loadConfig(inv)
	if err != nil {
		return reportConfigError(stderr, err)
	}
	a := &app{inv: inv, cfg: cfg, stdin: stdin, stdout: stdout, stderr: stderr, argv: argv}
	a.log = a.openLog()
	defer a.log.Close()
	a.log.SetLevel(cfg.LogLevel)

	if wantsIdentity(inv.Debug) {
		cfg.WriteIdentity(stdout)
	}

	code := a.dispatch()
	a.closeRelay()
	if code == sysexits.OK && len(inv.Warnings) > 0 {
		code = sysexits.Usage
	}
	return code
}

func loadConfig(inv *cli.Invocation) (*conf.Config, error) {
	opts := conf.LoadOptions{Path: inv.ConfigFile, Macros: inv.Macros}
	for _, o := range inv.Options {
		opts.Overrides = append(opts.Overrides, conf.Override{Name: o.Name, Short: o.Short, Value: o.Value})
	}
	return conf.Load(opts)
}

func reportConfigError(stderr io.Writer, err error) int {
	var ce *conf.Error
	if errors.As(err, &ce) {
		fmt.Fprintln(stderr, ce.Msg)
		return ce.Exit
	}
	fmt.Fprintln(stderr, err)
	return sysexits.Config
}

// wantsIdentity reports whether -d turns on category 0 (a list such as
// "0.1,8.2" or a range "0-99.1"; a missing level means 1): the version and
// identity banner.
func wantsIdentity(debug []string) bool {
	for _, d := range debug {
		for _, item := range strings.Split(d, ",") {
			cats, level, _ := strings.Cut(item, ".")
			lo, _, _ := strings.Cut(cats, "-")
			if lo == "0" && level != "0" {
				return true
			}
		}
	}
	return false
}

// openLog picks the log destination: -X file, else syslog (stderr when no
// syslog is listening); the tag is -L, or sm-mta for a daemon and sendmail
// otherwise.
func (a *app) openLog() *maillog.Logger {
	tag := a.inv.LogTag
	if tag == "" {
		tag = "sendmail"
		if a.inv.Mode == cli.ModeDaemon || a.inv.Mode == cli.ModeDaemonFG {
			tag = "sm-mta"
		}
		if a.inv.Mode == cli.ModeMailLocal {
			tag = "mail.local"
		}
	}
	if a.inv.TraceFile != "" {
		f, err := os.OpenFile(a.inv.TraceFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err == nil {
			return maillog.New(f, tag)
		}
		fmt.Fprintf(a.stderr, "cannot open %s: %v\n", a.inv.TraceFile, err)
	}
	if a.inv.Mode == cli.ModeSMTP {
		return maillog.OpenSyslogOnly(tag)
	}
	return maillog.Open(tag)
}

func (a *app) dispatch() int {
	switch a.inv.Mode {
	case cli.ModeDaemon, cli.ModeDaemonFG:
		return a.runDaemon()
	case cli.ModeTest:
		return a.addressTest()
	case cli.ModeHostStatus, cli.ModePurgeHostStatus:
		return a.hostStatus()
	case cli.ModePrintQueue:
		return a.printQueue()
	case cli.ModeQueueRun:
		return a.runQueue()
	case cli.ModeInitAliases:
		return a.initAliases()
	case cli.ModeVerify:
		return a.verify()
	case cli.ModeSMTP:
		return a.smtpOnStdio()
	case cli.ModeMailLocal:
		return deliver.MailLocal(a.inv.Args, a.stdin, a.stderr, a.deliverOptions(a.cfg))
	default:
		return a.submitMessage()
	}
}
