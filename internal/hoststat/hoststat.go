// Package hoststat keeps sendmail 8's host status: the outcome of the last
// connection to each host, in memory for one process and, when
// HostStatusDirectory is set, in sendmail's on-disk layout so that other
// processes (queue runs, hoststat, purgestat) share it.
//
// This file fixes the API the relay client uses; the store itself is being
// written (see the relay-client issue).
package hoststat

import (
	"time"
)

// Status is the outcome of the last attempt on one host.
type Status struct {
	Host    string    // "mx.remote.example", or "local" for the local mailer
	Errno   int       // E: errno of a failed connection (111 ECONNREFUSED), 0 if none
	Herrno  int       // H: resolver error (h_errno), 0 if none
	Exit    int       // S: sysexits status of the attempt (0 success, 75 temporary)
	DSN     string    // D: enhanced status, "4.4.1"
	Reply   string    // R: the host's last reply, or "" (sendmail omits the line)
	Updated time.Time // U: when this was recorded
}

// Down reports whether the host failed at connection level (it is skipped
// until Timeout.hoststatus has passed).
func (s Status) Down() bool { return s.Exit != 0 }

// Table is the host status of this process, backed by a directory when
// one is configured.
type Table struct {
	dir    string
	expire time.Duration
	now    func() time.Time
}

// Open returns the table for dir ("" keeps status in memory only, as
// sendmail does within one run when HostStatusDirectory is unset); expire is
// Timeout.hoststatus; now is the clock (nil: time.Now).
func Open(dir string, expire time.Duration, now func() time.Time) *Table {
	if now == nil {
		now = time.Now
	}
	return &Table{dir: dir, expire: expire, now: now}
}

// Lookup returns the recorded status of host while it is younger than
// Timeout.hoststatus.
func (t *Table) Lookup(host string) (Status, bool) { return Status{}, false }

// Record stores the outcome of an attempt on s.Host.
func (t *Table) Record(s Status) error { return nil }
