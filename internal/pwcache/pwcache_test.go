package pwcache

import (
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"testing"
	"time"
)

// fake replaces the system lookups with a table and counts the calls.
type fake struct {
	users map[string]*user.User
	calls int
	fail  error
}

func setup(t *testing.T) (*fake, string, *time.Time) {
	t.Helper()
	f := &fake{users: map[string]*user.User{"alice": {Username: "alice", Uid: "1001", Gid: "1001", HomeDir: "/home/alice"}}}
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte("alice:x:1001:1001::/home/alice:/bin/sh\n"), 0o644)
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	oldW, oldL, oldI, oldG, oldNow := watched, osLookup, osLookupId, osGroupIds, now
	watched = []string{passwd}
	osLookup = func(name string) (*user.User, error) {
		f.calls++
		if f.fail != nil {
			return nil, f.fail
		}
		if u, ok := f.users[name]; ok {
			return u, nil
		}
		return nil, user.UnknownUserError(name)
	}
	osLookupId = func(uid string) (*user.User, error) {
		f.calls++
		for _, u := range f.users {
			if u.Uid == uid {
				return u, nil
			}
		}
		return nil, user.UnknownUserIdError(1)
	}
	osGroupIds = func(u *user.User) ([]string, error) { f.calls++; return []string{u.Gid, "27"}, nil }
	now = func() time.Time { return clock }
	mu.Lock()
	files, checked = nil, time.Time{}
	clear(byName)
	clear(byID)
	clear(groups)
	mu.Unlock()
	t.Cleanup(func() { watched, osLookup, osLookupId, osGroupIds, now = oldW, oldL, oldI, oldG, oldNow })
	return f, passwd, &clock
}

func TestCachedUntilTTL(t *testing.T) {
	f, _, clock := setup(t)
	for range 5 {
		u, err := Lookup("alice")
		if err != nil || u.Uid != "1001" {
			t.Fatalf("Lookup: %v %v", u, err)
		}
	}
	if f.calls != 1 {
		t.Errorf("%d system lookups for 5 cached ones, want 1", f.calls)
	}
	*clock = clock.Add(TTL)
	Lookup("alice")
	if f.calls != 2 {
		t.Errorf("after TTL: %d system lookups, want 2", f.calls)
	}
}

func TestUnknownCachedAndDroppedWhenPasswdChanges(t *testing.T) {
	f, passwd, _ := setup(t)
	var unk user.UnknownUserError
	if _, err := Lookup("bob"); !errors.As(err, &unk) {
		t.Fatalf("bob: %v, want UnknownUserError", err)
	}
	Lookup("bob")
	if f.calls != 1 {
		t.Fatalf("unknown user: %d system lookups, want 1 (cached)", f.calls)
	}
	// useradd: a new passwd file replaces the old one.
	f.users["bob"] = &user.User{Username: "bob", Uid: "1002", Gid: "1002"}
	os.WriteFile(passwd+".new", []byte("alice:x:1001:1001::/home/alice:/bin/sh\nbob:x:1002:1002::/:/bin/sh\n"), 0o644)
	os.Rename(passwd+".new", passwd)
	u, err := Lookup("bob")
	if err != nil || u.Uid != "1002" {
		t.Fatalf("bob after useradd: %v %v", u, err)
	}
}

func TestTemporaryErrorsNotCached(t *testing.T) {
	f, _, _ := setup(t)
	f.fail = errors.New("ldap down")
	if _, err := Lookup("alice"); err == nil {
		t.Fatal("no error")
	}
	f.fail = nil
	if u, err := Lookup("alice"); err != nil || u.Username != "alice" {
		t.Fatalf("after the source recovered: %v %v", u, err)
	}
	if f.calls != 2 {
		t.Errorf("%d system lookups, want 2", f.calls)
	}
}

func TestCallersCannotChangeTheCache(t *testing.T) {
	setup(t)
	u, _ := Lookup("alice")
	u.HomeDir = "/tmp/evil"
	g, _ := GroupIds(u)
	g[0] = "0"
	if u2, _ := Lookup("alice"); u2.HomeDir != "/home/alice" {
		t.Errorf("cached user changed: %q", u2.HomeDir)
	}
	if g2, _ := GroupIds(u); g2[0] != "1001" {
		t.Errorf("cached groups changed: %v", g2)
	}
}

func TestLookupId(t *testing.T) {
	f, _, _ := setup(t)
	LookupId("1001")
	u, err := LookupId("1001")
	if err != nil || u.Username != "alice" || f.calls != 1 {
		t.Fatalf("LookupId: %v %v, %d calls", u, err, f.calls)
	}
}

// A removed account is forgotten once the files are looked at again,
// within a second.
func TestRemovedUserForgotten(t *testing.T) {
	f, passwd, clock := setup(t)
	if _, err := Lookup("alice"); err != nil {
		t.Fatal(err)
	}
	delete(f.users, "alice")
	os.WriteFile(passwd+".new", []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	os.Rename(passwd+".new", passwd)
	*clock = clock.Add(time.Second)
	var unk user.UnknownUserError
	if _, err := Lookup("alice"); !errors.As(err, &unk) {
		t.Errorf("alice after userdel: %v, want UnknownUserError", err)
	}
}
