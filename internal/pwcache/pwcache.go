// Package pwcache answers password and group database lookups (os/user)
// from a cache, because the daemon asks for the same few accounts many
// times per message (the RCPT check, the alias expansion, the ~/.forward,
// the mailbox owner) and each getpwnam(3) through NSS costs dozens of
// system calls (nss-systemd alone walks /run/systemd/userdb).
//
// An answer is kept for at most TTL. All answers are dropped as soon as
// /etc/passwd or /etc/group changes (useradd, userdel, vipw replace or
// rewrite the file: its inode, size or modification time differ), which
// is checked with one stat each before an unknown name is answered from
// the cache and at most once a second otherwise, so a local account made
// is seen at once and one removed within a second. Accounts from other NSS sources (LDAP, sssd)
// are seen within TTL, as Postfix's local(8) sees them within the life of
// its process. Unknown names and IDs are cached too; other errors
// (temporary failures of a source) are not.
package pwcache

import (
	"errors"
	"os/user"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// TTL bounds how long an answer is used.
const TTL = 30 * time.Second

// The files whose change drops the cache.
var watched = []string{"/etc/passwd", "/etc/group"}

type fileID struct {
	ino, size int64
	mtime     unix.Timespec
	ok        bool
}

type entry struct {
	u    *user.User
	gids []string
	err  error
	at   time.Time
}

var (
	mu      sync.Mutex
	files   []fileID
	byName  = map[string]entry{}
	byID    = map[string]entry{}
	groups  = map[string]entry{} // by user name: the supplementary group IDs
	maxSize = 4096               // entries per map before it is emptied
	now     = time.Now

	// The lookups behind the cache (tests count them).
	osLookup   = user.Lookup
	osLookupId = user.LookupId
	osGroupIds = (*user.User).GroupIds
)

// checked is when fresh last looked at the files.
var checked time.Time

// fresh drops everything when a watched file changed; mu is held.
func fresh() {
	cur := make([]fileID, len(watched))
	for i, p := range watched {
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil {
			cur[i] = fileID{ino: int64(st.Ino), size: st.Size, mtime: st.Mtim, ok: true}
		}
	}
	same := len(files) == len(cur)
	for i := 0; same && i < len(cur); i++ {
		same = files[i] == cur[i]
	}
	if !same {
		files = cur
		clear(byName)
		clear(byID)
		clear(groups)
	}
}

// cached looks key up in m, or asks find and keeps a definite answer.
func cached(m map[string]entry, key string, find func() entry) entry {
	t := now()
	mu.Lock()
	e, ok := m[key]
	if !ok || e.err != nil || t.Sub(checked) >= time.Second {
		fresh()
		checked = t
		e, ok = m[key]
	}
	mu.Unlock()
	if ok && t.Sub(e.at) < TTL {
		return e
	}
	e = find()
	if e.err != nil && !unknown(e.err) {
		return e
	}
	e.at = t
	mu.Lock()
	if len(m) >= maxSize {
		clear(m)
	}
	m[key] = e
	mu.Unlock()
	return e
}

func unknown(err error) bool {
	var un user.UnknownUserError
	var ui user.UnknownUserIdError
	return errors.As(err, &un) || errors.As(err, &ui)
}

// copyUser keeps callers from changing the cached value.
func copyUser(u *user.User) *user.User {
	if u == nil {
		return nil
	}
	c := *u
	return &c
}

// Lookup is user.Lookup, cached.
func Lookup(name string) (*user.User, error) {
	e := cached(byName, name, func() entry {
		u, err := osLookup(name)
		return entry{u: u, err: err}
	})
	return copyUser(e.u), e.err
}

// LookupId is user.LookupId, cached.
func LookupId(uid string) (*user.User, error) {
	e := cached(byID, uid, func() entry {
		u, err := osLookupId(uid)
		return entry{u: u, err: err}
	})
	return copyUser(e.u), e.err
}

// GroupIds is u.GroupIds(), cached by user name and primary group.
func GroupIds(u *user.User) ([]string, error) {
	e := cached(groups, u.Username+":"+u.Gid, func() entry {
		gids, err := osGroupIds(u)
		return entry{gids: gids, err: err}
	})
	return append([]string(nil), e.gids...), e.err
}
