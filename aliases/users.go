package aliases

import (
	"errors"
	"os/user"
	"strconv"
	"strings"
	"unicode"

	"github.com/posthorn/posthorn/internal/pwcache"
)

// User is a local account: what the local mailer and the controlling-user
// logic need from the password database.
type User struct {
	Name     string // login name
	UID, GID int
	Home     string
	FullName string // from the GECOS field, as sendmail shows it in EXPN/VRFY
}

// ErrNoUser is returned by a Users implementation for an unknown account.
var ErrNoUser = errors.New("no such user")

// Users looks accounts up. Tests pass a fixed table; the default is the
// system's password database (os/user).
type Users interface {
	// Lookup finds a login name (exactly as given). It returns ErrNoUser
	// when there is none; any other error is temporary.
	Lookup(name string) (*User, error)
	// LookupID finds the account of a uid (ErrNoUser when unknown).
	LookupID(uid int) (*User, error)
}

// SystemUsers reads the system's password database (through pwcache).
type SystemUsers struct{}

// Lookup implements Users.
func (SystemUsers) Lookup(name string) (*User, error) {
	if name == "" || strings.ContainsAny(name, "/:\x00") {
		return nil, ErrNoUser
	}
	u, err := pwcache.Lookup(name)
	if err != nil {
		var unk user.UnknownUserError
		if errors.As(err, &unk) {
			return nil, ErrNoUser
		}
		return nil, err
	}
	return fromOSUser(u)
}

// LookupID implements Users.
func (SystemUsers) LookupID(uid int) (*User, error) {
	u, err := pwcache.LookupId(strconv.Itoa(uid))
	if err != nil {
		var unk user.UnknownUserIdError
		if errors.As(err, &unk) {
			return nil, ErrNoUser
		}
		return nil, err
	}
	return fromOSUser(u)
}

func fromOSUser(u *user.User) (*User, error) {
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, err
	}
	return &User{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir,
		FullName: FullName(u.Name, u.Username)}, nil
}

// FullName turns a GECOS field into the full name sendmail shows: the text
// before the first comma, with '&' replaced by the capitalised login name.
func FullName(gecos, login string) string {
	if i := strings.IndexByte(gecos, ','); i >= 0 {
		gecos = gecos[:i]
	}
	if !strings.Contains(gecos, "&") {
		return gecos
	}
	cap := login
	if login != "" {
		r := []rune(login)
		r[0] = unicode.ToUpper(r[0])
		cap = string(r)
	}
	return strings.ReplaceAll(gecos, "&", cap)
}

// UserTable is a fixed set of accounts, for tests and for callers that
// already hold the password data.
type UserTable map[string]*User

// Lookup implements Users.
func (t UserTable) Lookup(name string) (*User, error) {
	if u, ok := t[name]; ok {
		return u, nil
	}
	return nil, ErrNoUser
}

// LookupID implements Users.
func (t UserTable) LookupID(uid int) (*User, error) {
	for _, u := range t {
		if u.UID == uid {
			return u, nil
		}
	}
	return nil, ErrNoUser
}
