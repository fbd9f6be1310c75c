package aliases

import (
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/route"
)

var update = flag.Bool("update", false, "rewrite golden files")

// refLocal is $=w of the reference host.
// refRouter routes as the reference host does.
var refRouter = route.New(route.Config{Names: route.LocalFunc(refLocal)})

func refLocal(d string) bool {
	switch d {
	case "localhost", "refhost", "refhost.example.org", "[127.0.0.1]":
		return true
	}
	return false
}

// refCanon is the reference lab's DNS: names it knows come back canonical
// with a trailing dot.
func refCanon(h string) (string, error) {
	switch h {
	case "remote.example", "accept.example", "bounce.example", "multi.example", "nomx.example":
		return h + ".", nil
	}
	return "", errors.New("host not found")
}

// refFixture rebuilds the reference machine under a temporary root: the
// reference aliases file (its :include: path moved under root), the include
// list, carol's .forward, and the users root, alice, bob, carol, dave.
type refFixture struct {
	root  string
	users UserTable
	m     StaticMap
	path  string // aliases file
}

func newRefFixture(t testing.TB) *refFixture {
	t.Helper()
	root := t.TempDir()
	f := &refFixture{root: root, path: filepath.Join(root, "etc/mail/aliases")}
	text, err := os.ReadFile("testdata/ref/aliases")
	if err != nil {
		t.Fatal(err)
	}
	incl, err := os.ReadFile("testdata/ref/incl.list")
	if err != nil {
		t.Fatal(err)
	}
	src := strings.ReplaceAll(string(text), ":include:/etc/mail/lists/", ":include:"+root+"/etc/mail/lists/")
	mustWrite(t, f.path, src, 0o644)
	mustWrite(t, filepath.Join(root, "etc/mail/lists/incl.list"), string(incl), 0o644)
	carolHome := filepath.Join(root, "home/carol")
	mustWrite(t, filepath.Join(carolHome, ".forward"), "bob\n", 0o644)
	uid := os.Getuid()
	f.users = UserTable{
		"root":  {Name: "root", UID: 0, GID: 0, Home: filepath.Join(root, "root"), FullName: "root"},
		"alice": {Name: "alice", UID: 1000, GID: 1000, Home: filepath.Join(root, "home/alice"), FullName: "Alice Example"},
		"bob":   {Name: "bob", UID: 1001, GID: 1001, Home: filepath.Join(root, "home/bob"), FullName: "Bob Example"},
		// carol must own her .forward: the test's own uid unless root.
		"carol": {Name: "carol", UID: pick(uid == 0, 1002, uid), GID: 1002, Home: carolHome, FullName: "Carol Forward"},
		"dave":  {Name: "dave", UID: 1003, GID: 1003, Home: filepath.Join(root, "home/dave"), FullName: "Dave Example"},
	}
	p, err := Parse(strings.NewReader(src), refLocal)
	if err != nil || p.Errors() {
		t.Fatalf("reference aliases: %v %v", err, p.Diags)
	}
	f.m = p.Map()
	return f
}

func pick[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

func (f *refFixture) expander(opts Options) *Expander {
	if opts.Aliases == nil {
		opts.Aliases = f.m
	}
	opts.Users = f.users
	opts.IsLocal = refLocal
	if opts.Canon == nil {
		opts.Canon = refCanon
	}
	opts.DefaultUID, opts.DefaultGID = 8, 8
	return New(opts)
}

// unroot turns paths under the fixture root back into the reference's.
func (f *refFixture) unroot(s string) string {
	return strings.ReplaceAll(s, f.root, "")
}

func mustWrite(t testing.TB, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// golden compares got with testdata/<name>, rewriting it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", name, got, want)
	}
}

// refBody returns a reference capture without its "# command" header and
// "# exit status" trailer lines.
func refBody(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata/ref", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if strings.HasPrefix(l, "# ") {
			continue
		}
		out = append(out, l)
	}
	return out
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }

func lookPath(name string) (string, error) { return exec.LookPath(name) }

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
