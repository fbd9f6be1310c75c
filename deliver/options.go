package deliver

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/internal/pwcache"
)

// Options configure the local delivery agents. The zero value of a field
// means its default; cmd/sendmail fills them from sendmail.cf.
type Options struct {
	// MailSpoolDirectory holds the mailboxes (posthorn option of that name).
	// Default /var/mail.
	MailSpoolDirectory string
	// SafeFileEnvironment (sendmail option): when set, /file deliveries are
	// confined to this directory: "/x/y" is written to
	// SafeFileEnvironment/x/y (a name that already starts with the directory
	// is used as is) and neither ".." nor a symlink can lead out of it.
	// "" or "/" means no confinement.
	SafeFileEnvironment string
	// SmrshDirectory (posthorn option): programs named in a ~/.forward must
	// be in this directory, as smrsh requires; "/usr/bin/vacation" runs
	// SmrshDirectory/vacation. Default /etc/mail/smrsh. "none" lifts the
	// restriction (not recommended).
	SmrshDirectory string
	// DefaultUser (sendmail option) runs programs and file deliveries that
	// come from the aliases file: "user", "user:group", "uid:gid".
	// Default "mail:mail".
	DefaultUser string
	// ProgramTimeout bounds a |program's run; at the limit its process group
	// is killed and the delivery deferred. Default 10 minutes.
	ProgramTimeout time.Duration
	// ProgramEnv are extra "NAME=value" entries for programs' environment
	// (sendmail.cf "E" lines). Programs always get AGENT=sendmail and, when
	// posthorn has one, TZ.
	ProgramEnv []string
	// LockTimeout bounds the wait for a mailbox's locks. Default 2 minutes.
	LockTimeout time.Duration
	// StaleLockAge: a dot-lock older than this is removed as left behind by
	// a crashed writer. Default 5 minutes (as liblockfile and procmail).
	StaleLockAge time.Duration
	// UnixFromLine (sendmail option) is the From_ line template of /file
	// and |program deliveries, with every macro but $g and $d expanded
	// (see UnixFromLine). Default "From $g $d". Mailboxes in the spool
	// always get "From <sender> <ctime>", as mail.local writes it (sendmail
	// does not give its local mailer a From_ line either: F=n).
	UnixFromLine string
	// FileMode is the mode of a /file target created by a delivery.
	// Default 0640, as sendmail created it in the reference capture.
	FileMode os.FileMode
	// Child is the command that starts the privileged-child mode (see
	// RunChild) for /file deliveries as another user: the posthorn binary
	// followed by ChildFlag. Default: os.Executable() and ChildFlag. It must
	// be executable by every user deliveries run as.
	Child []string
	// LookupUser finds a local user by name. Default: the passwd database
	// through os/user. It returns an error wrapping ErrUnknownUser for a
	// name that does not exist.
	LookupUser func(name string) (*User, error)
	// Logger receives refusals and failures (nil discards them).
	Logger *maillog.Logger
	// Now returns the current time (tests fix it). Default time.Now.
	Now func() time.Time
}

// User is a local account that mail is delivered to or run as.
type User struct {
	Name   string
	UID    int
	GID    int
	Groups []int // supplementary groups for programs and file deliveries
	Home   string
}

// ErrUnknownUser is wrapped by LookupUser errors for names with no account.
var ErrUnknownUser = errors.New("unknown user")

// LookupSystemUser is the default Options.LookupUser: the passwd and group
// databases through os/user (cached: internal/pwcache).
func LookupSystemUser(name string) (*User, error) {
	u, err := pwcache.Lookup(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			return nil, fmt.Errorf("%s: %w", name, ErrUnknownUser)
		}
		return nil, err
	}
	return fromOSUser(u)
}

func fromOSUser(u *user.User) (*User, error) {
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("%s: non-numeric uid %q or gid %q", u.Username, u.Uid, u.Gid)
	}
	out := &User{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}
	if ids, err := pwcache.GroupIds(u); err == nil {
		for _, s := range ids {
			if g, err := strconv.Atoi(s); err == nil && g != gid {
				out.Groups = append(out.Groups, g)
			}
		}
	}
	return out, nil
}

// ParseDefaultUser resolves sendmail's DefaultUser syntax: "user" (with the
// user's group), "user:group", "uid", or "uid:gid". Numbers are taken as they
// are, as sendmail does, so "1:1" works without passwd entries.
func ParseDefaultUser(s string, lookup func(string) (*User, error)) (*User, error) {
	name, group, hasGroup := strings.Cut(s, ":")
	var u *User
	if n, err := strconv.Atoi(name); err == nil {
		u = &User{Name: name, UID: n, GID: n, Home: "/"}
		if pu, err := pwcache.LookupId(name); err == nil {
			if full, err := fromOSUser(pu); err == nil {
				u = full
				u.Groups = nil
			}
		}
	} else {
		pu, err := lookup(name)
		if err != nil {
			return nil, fmt.Errorf("DefaultUser %s: %w", s, err)
		}
		cp := *pu
		cp.Groups = nil // sendmail does not initgroups() for DefaultUser
		u = &cp
	}
	if hasGroup {
		if n, err := strconv.Atoi(group); err == nil {
			u.GID = n
		} else if g, err := user.LookupGroup(group); err == nil {
			n, _ := strconv.Atoi(g.Gid)
			u.GID = n
		} else {
			return nil, fmt.Errorf("DefaultUser %s: unknown group %s", s, group)
		}
	}
	return u, nil
}

// Agent delivers messages locally. It is safe for concurrent use: deliveries
// to one mailbox from many goroutines are serialised by the mailbox locks.
type Agent struct {
	opt      Options
	root     bool // running as root: ownership and credentials apply
	euid     int
	deflt    *User
	defltErr error

	mu     sync.Mutex
	queues map[string]*boxQueue // the deliveries waiting per mailbox
}

// New returns an Agent with the defaults filled in. The error is reserved
// for future checks; today New always succeeds.
func New(opt Options) (*Agent, error) {
	if opt.MailSpoolDirectory == "" {
		opt.MailSpoolDirectory = "/var/mail"
	}
	if opt.SmrshDirectory == "" {
		opt.SmrshDirectory = "/etc/mail/smrsh"
	}
	if opt.DefaultUser == "" {
		opt.DefaultUser = "mail:mail"
	}
	if opt.ProgramTimeout <= 0 {
		opt.ProgramTimeout = 10 * time.Minute
	}
	if opt.LockTimeout <= 0 {
		opt.LockTimeout = 2 * time.Minute
	}
	if opt.StaleLockAge <= 0 {
		opt.StaleLockAge = 5 * time.Minute
	}
	if opt.UnixFromLine == "" {
		opt.UnixFromLine = DefaultUnixFromLine
	}
	if opt.FileMode == 0 {
		opt.FileMode = 0o640
	}
	if opt.LookupUser == nil {
		opt.LookupUser = LookupSystemUser
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.SafeFileEnvironment == "/" {
		opt.SafeFileEnvironment = ""
	}
	a := &Agent{opt: opt, euid: os.Geteuid(), queues: map[string]*boxQueue{}}
	a.root = a.euid == 0
	if len(a.opt.Child) == 0 {
		exe, err := os.Executable()
		if err == nil {
			a.opt.Child = []string{exe, ChildFlag}
		}
	}
	if a.root {
		// An unresolvable DefaultUser fails only the deliveries that need
		// it (temporarily), not mailboxes or mail.local.
		a.deflt, a.defltErr = ParseDefaultUser(opt.DefaultUser, opt.LookupUser)
	}
	return a, nil
}
