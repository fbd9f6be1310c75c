package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// AuthFile is the AUTH password file (posthorn's AuthFile option): one
// "user:bcrypt-hash" per line, '#' comments and blank lines ignored, e.g.
//
//	alice:$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy
//
// It implements smtpd.Authenticator.
type AuthFile struct {
	users map[string][]byte
	dummy []byte // compared against for unknown users, so timing does not tell
}

// LoadAuthFile reads an auth file; a missing file gives an empty one (no
// user can authenticate).
func LoadAuthFile(path string) (*AuthFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return ParseAuthFile(strings.NewReader(""), path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseAuthFile(f, path)
}

// ParseAuthFile reads "user:hash" lines from r.
func ParseAuthFile(r io.Reader, name string) (*AuthFile, error) {
	a := &AuthFile{users: map[string][]byte{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("%s: line %d: want user:bcrypt-hash", name, n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%s: line %d: %s: not a bcrypt hash", name, n, user)
		}
		a.users[user] = []byte(hash)
		if a.dummy == nil {
			a.dummy = []byte(hash)
		}
	}
	return a, sc.Err()
}

// Authenticate checks a user name and password.
func (a *AuthFile) Authenticate(user, password string) bool {
	if a == nil {
		return false
	}
	h, ok := a.users[user]
	if !ok {
		if a.dummy != nil {
			_ = bcrypt.CompareHashAndPassword(a.dummy, []byte(password))
		}
		return false
	}
	return bcrypt.CompareHashAndPassword(h, []byte(password)) == nil
}
