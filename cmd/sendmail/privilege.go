package main

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/maillog"
)

// posthorn's privilege model: it has no set-user-ID or set-group-ID mode.
// The daemon and queue runs are started by root; a user who may not write
// the queue submits over SMTP to the local daemon (see the MSP path in
// local.go), with nothing but their own rights.
//
// A copy installed set-user-ID (or set-group-ID) anyway would let any user
// choose, with -C or -O, the queue, the aliases and DefaultUser of a process
// running as root, and so run programs as root. sendmail 8 guards this by
// giving up its privileges when a user names a configuration file or sets
// an unsafe option. posthorn needs its privileges for none of what an
// ordinary user may ask, so it gives them up for every invocation, before
// reading its arguments: a set-ID posthorn behaves exactly like a normal
// one run by the same user. The copy keeps working (submission goes through
// the daemon), and the set-ID bits are reported to syslog each time.

// dropSetID makes the process the user who ran it when the real and
// effective ids differ: real, effective and saved uid and gid all become
// the real ones, on every thread. It fails only if the kernel refuses,
// and the caller then must not go on.
func dropSetID() error {
	ruid, euid := syscall.Getuid(), syscall.Geteuid()
	rgid, egid := syscall.Getgid(), syscall.Getegid()
	if ruid == euid && rgid == egid {
		return nil
	}
	// The group first: once the uid is dropped, setresgid is no longer
	// permitted.
	if err := syscall.Setresgid(rgid, rgid, rgid); err != nil {
		return fmt.Errorf("cannot drop set-group-ID privileges: %v", err)
	}
	if err := syscall.Setresuid(ruid, ruid, ruid); err != nil {
		return fmt.Errorf("cannot drop set-user-ID privileges: %v", err)
	}
	r, e, s := unix.Getresuid()
	gr, ge, gs := unix.Getresgid()
	if r != ruid || e != ruid || s != ruid || gr != rgid || ge != rgid || gs != rgid {
		return fmt.Errorf("cannot drop set-ID privileges: uids %d/%d/%d gids %d/%d/%d remain", r, e, s, gr, ge, gs)
	}
	log := maillog.OpenSyslogOnly("sendmail")
	log.Warnf("", "installed set-user-ID or set-group-ID (euid=%d, egid=%d): running as the invoking user uid=%d gid=%d; posthorn needs no set-ID bits", euid, egid, ruid, rgid)
	log.Close()
	return nil
}
