package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/cli"
	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/sysexits"
)

// hostStatus is hoststat / -bh (print the table) and purgestat / -bH
// (remove entries older than Timeout.hoststatus). With host status keeping
// off (no HostStatusDirectory) sendmail prints nothing and succeeds; so do
// we. Both exit 0 otherwise too, as sendmail, with problems on stderr.
func (a *app) hostStatus() int {
	dir := hostStatusDir(a.cfg, a.stdout)
	if dir == "" {
		return sysexits.OK
	}
	tab := hoststat.Open(dir, a.cfg.Timeout("hoststatus"), nil)
	if a.inv.Mode == cli.ModePurgeHostStatus {
		// sendmail lets only trusted users purge; a user who may write the
		// directory (a private root) may as well.
		if os.Getuid() != 0 && !a.trusted() && unix.Access(dir, unix.W_OK) != nil {
			fmt.Fprintln(a.stderr, "Permission denied (real uid not trusted)")
			return sysexits.Usage
		}
		if err := tab.Purge(); err != nil {
			fmt.Fprintln(a.stderr, err)
		}
		return sysexits.OK
	}
	w := bufio.NewWriter(a.stdout)
	err := tab.Print(w, a.inv.Verbose)
	w.Flush()
	if err != nil {
		fmt.Fprintln(a.stderr, err)
	}
	return sysexits.OK
}

// hostStatusDir is HostStatusDirectory as sendmail uses it: a relative
// name is below the queue directory (sendmail runs there; the cf's
// commented default is ".hoststat"), and a name that is not a directory
// turns host status keeping off with sendmail's warning on warn. "" when
// it is off.
func hostStatusDir(cfg *conf.Config, warn io.Writer) string {
	dir := cfg.HostStatusDirectory
	if dir == "" {
		return ""
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(cfg.QueueDirectory, dir)
	}
	fi, err := os.Stat(dir)
	reason := ""
	switch {
	case err != nil:
		reason = conf.ErrnoText(err)
	case !fi.IsDir():
		reason = "Not a directory"
	}
	if reason != "" {
		fmt.Fprintf(warn, "Warning: Cannot use HostStatusDirectory = %s: %s\n", cfg.HostStatusDirectory, reason)
		return ""
	}
	return dir
}
