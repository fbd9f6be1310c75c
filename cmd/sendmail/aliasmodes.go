package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/internal/addr"
	"github.com/posthorn/posthorn/internal/mta"
	"github.com/posthorn/posthorn/internal/sysexits"
)

// initAliases is newaliases / -bi: rebuild the database of every AliasFile.
func (a *app) initAliases() int {
	if len(a.cfg.AliasFiles) == 0 {
		return sysexits.OK
	}
	if os.Getuid() != 0 && !a.trusted() {
		// A user who may write the database's directory (make run, a
		// private root) may rebuild it; others get sendmail's refusal.
		if unix.Access(filepath.Dir(a.cfg.AliasFiles[0]), unix.W_OK) != nil {
			fmt.Fprintln(a.stderr, "Permission denied (real uid not trusted)")
			return sysexits.Usage
		}
	}
	code := sysexits.OK
	for _, f := range a.cfg.AliasFiles {
		if mta.IsLDAPSpec(f) {
			continue // a directory has no database to rebuild
		}
		c := aliases.Newaliases(a.stdout, f, aliases.BuildOptions{
			IsLocal: addr.NewNames(a.cfg.Class("w")...).Contains, Logger: a.log, RunUser: mta.RunUser(), Warnings: a.stderr,
		})
		if c != sysexits.OK {
			code = c
		}
	}
	return code
}

// verify is -bv: show how each address would be delivered.
func (a *app) verify() int {
	if os.Getuid() != 0 && a.cfg.Privacy("restrictexpand") && !a.trusted() {
		fmt.Fprintln(a.stderr, "Notice: -bv may give misleading output for non-privileged user")
		fmt.Fprintln(a.stderr, "Program mode requires special privileges, e.g., root or TrustedUser.")
		return sysexits.Config
	}
	site := a.site(nil)
	defer site.Close()
	return site.Expander.Verify(a.stdout, a.inv.Args, a.inv.Verbose)
}
