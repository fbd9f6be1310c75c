package main

import (
	"bufio"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/cli"
	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/sysexits"
)

// hostStatus is hoststat / -bh (print the table) and purgestat / -bH
// (remove entries older than Timeout.hoststatus). With host status keeping
// off (no HostStatusDirectory) sendmail prints nothing and succeeds; so do
// we. Both exit 0 otherwise too, as sendmail, with problems on stderr.
func (a *app) hostStatus() int {
	dir := a.cfg.HostStatusDirectory
	if dir == "" {
		return sysexits.OK
	}
	tab := hoststat.Open(dir, a.cfg.Timeout("hoststatus"), nil)
	if a.inv.Mode == cli.ModePurgeHostStatus {
		// sendmail lets only trusted users purge; a user who may write the
		// directory (a private root) may as well.
		if os.Getuid() != 0 && !trusted(a.cfg, runUser()) && unix.Access(dir, unix.W_OK) != nil {
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
