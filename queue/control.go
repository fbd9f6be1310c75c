package queue

import (
	"strconv"
	"strings"
)

// Control is a recipient's controlling user, the qf C line
// ("C<user>:<uid>:<gid>:<address>"): whose privileges a file or program
// delivery runs with, and the ctladdr= of log lines. sendmail writes
// "C:<address>" (no user, no ids) when the controller is root or an alias
// run as DefaultUser; an alias controller with a user has gid 0.
type Control struct {
	User     string // login name; "" for root or DefaultUser
	UID, GID int    // meaningful only when User is set
	Addr     string // the controlling address as written: an alias, a .forward user, an :include: file
}

// ParseControl reads the text after the 'C' of a qf C line. Malformed
// numbers read as 0; a line with fewer than four fields is all address.
func ParseControl(s string) Control {
	if addr, ok := strings.CutPrefix(s, ":"); ok { // root: the rest is the address
		return Control{Addr: addr}
	}
	p := strings.SplitN(s, ":", 4)
	if len(p) < 4 {
		return Control{Addr: s}
	}
	uid, _ := strconv.Atoi(p[1])
	gid, _ := strconv.Atoi(p[2])
	return Control{User: p[0], UID: uid, GID: gid, Addr: p[3]}
}

// String is the C line's text, the inverse of ParseControl.
func (c Control) String() string {
	if c.User == "" {
		return ":" + c.Addr
	}
	return c.User + ":" + strconv.Itoa(c.UID) + ":" + strconv.Itoa(c.GID) + ":" + c.Addr
}

// LogAddr is the ctladdr= value of a log line: "addr (uid/gid)".
func (c Control) LogAddr() string {
	if c.User == "" {
		return c.Addr + " (0/0)"
	}
	return c.Addr + " (" + strconv.Itoa(c.UID) + "/" + strconv.Itoa(c.GID) + ")"
}

// Control returns the recipient's controlling user; ok is false when the
// qf has no C line for it.
func (r *Recipient) Control() (c Control, ok bool) {
	if r.Ctl == "" {
		return Control{}, false
	}
	return ParseControl(r.Ctl), true
}
