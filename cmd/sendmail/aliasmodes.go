package main

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/aliases"
	"github.com/posthorn/posthorn/internal/sysexits"
)

// initAliases is newaliases / -bi: rebuild the database of every AliasFile.
func (a *app) initAliases() int {
	if len(a.cfg.AliasFiles) == 0 {
		return sysexits.OK
	}
	if os.Getuid() != 0 && !trusted(a.cfg, runUser()) {
		// A user who may write the database's directory (make run, a
		// private root) may rebuild it; others get sendmail's refusal.
		if unix.Access(filepath.Dir(a.cfg.AliasFiles[0]), unix.W_OK) != nil {
			fmt.Fprintln(a.stderr, "Permission denied (real uid not trusted)")
			return sysexits.Usage
		}
	}
	code := sysexits.OK
	for _, f := range a.cfg.AliasFiles {
		c := aliases.Newaliases(a.stdout, f, aliases.BuildOptions{
			IsLocal: isLocal(a.cfg), Logger: a.log, RunUser: runUser(), Warnings: a.stderr,
		})
		if c != sysexits.OK {
			code = c
		}
	}
	return code
}

// verify is -bv: show how each address would be delivered.
func (a *app) verify() int {
	if os.Getuid() != 0 && a.cfg.Privacy("restrictexpand") && !trusted(a.cfg, runUser()) {
		fmt.Fprintln(a.stderr, "Notice: -bv may give misleading output for non-privileged user")
		fmt.Fprintln(a.stderr, "Program mode requires special privileges, e.g., root or TrustedUser.")
		return sysexits.Config
	}
	x, src := newExpander(a.cfg, a)
	if src != nil {
		defer src.Close()
	}
	return x.Verify(a.stdout, a.inv.Args, a.inv.Verbose)
}
