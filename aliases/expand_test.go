package aliases

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/maillog"
)

// render prints a Result in a stable text form for golden files.
func render(res *Result, unroot func(string) string) string {
	var b strings.Builder
	b.WriteString("recipients:\n")
	for _, r := range res.Recipients {
		fmt.Fprintf(&b, "  %s mailer=%s", r.Addr, r.Mailer)
		if r.Host != "" {
			fmt.Fprintf(&b, " host=%s", r.Host)
		}
		fmt.Fprintf(&b, " user=%s", r.User)
		if r.Path != "" {
			fmt.Fprintf(&b, " path=%q", r.Path)
		}
		if r.Local != nil {
			fmt.Fprintf(&b, " uid=%d", r.Local.UID)
		}
		if r.Ctl != nil {
			fmt.Fprintf(&b, " ctladdr=%s(%d/%d)", r.Ctl.Addr, r.Ctl.UID, r.Ctl.GID)
		}
		if c := r.ControlLine(); c != "" {
			fmt.Fprintf(&b, " C=%s", c)
		}
		if r.Alias {
			b.WriteString(" A")
		}
		if r.Owner != "" {
			fmt.Fprintf(&b, " owner=%s", r.Owner)
		}
		if r.Top != r.Addr {
			fmt.Fprintf(&b, " top=%s", r.Top)
		}
		b.WriteString("\n")
	}
	b.WriteString("failures:\n")
	for _, f := range res.Failures {
		fmt.Fprintf(&b, "  %s: %s", f.Addr, f.Err.Error())
		if f.Owner != "" {
			fmt.Fprintf(&b, " owner=%s", f.Owner)
		}
		if f.Top != f.Addr {
			fmt.Fprintf(&b, " top=%s", f.Top)
		}
		b.WriteString("\n")
	}
	b.WriteString("transcript:\n")
	for _, l := range res.Transcript {
		mark := "  "
		if l.Verbose {
			mark = "v "
		}
		fmt.Fprintf(&b, "  %s%s\n", mark, l.Text)
	}
	fmt.Fprintf(&b, "exit: %d\n", res.Exit)
	return unroot(b.String())
}

var logStamp = regexp.MustCompile(`(?m)^\w{3} [ \d]\d \d\d:\d\d:\d\d \S+\[\d+\]: `)

type expandCase struct {
	name    string
	aliases string            // aliases file text
	files   map[string]string // path under the root -> content (mode 0644)
	setup   func(t *testing.T, root string)
	opts    func(o *Options)
	addrs   []string
	root    bool // needs root (file ownership)
}

var expandCases = []expandCase{
	{name: "list", aliases: "staff: alice, bob\nbig: staff, carol-x, dave, alice\ncarol-x: \\carol\n",
		addrs: []string{"big"}},
	{name: "duplicates", aliases: "staff: alice, bob, Alice, alice@localhost\nall: staff, bob\n",
		addrs: []string{"alice", "all", "bob@refhost.example.org", "alice"}},
	{name: "owner", aliases: "staff: alice, bob, nosuch, someone@remote.example\nowner-staff: root\n" +
		"team: carol-y, staff\ncarol-y: \\carol\nowner-team: a, b\n",
		addrs: []string{"team"}},
	{name: "error-target", aliases: "gone: error:5.1.1:550 This list is closed\nold: error:450 try later\nbare: error:no such thing\nmix: alice, gone\n",
		addrs: []string{"mix", "old", "bare"}},
	{name: "loop-two", aliases: "a: b\nb: a\n", addrs: []string{"a"}},
	{name: "loop-self-user", aliases: "alice: alice, bob\n", addrs: []string{"alice"}},
	{name: "loop-through-user", aliases: "alice: bob\nbob: alice, dave\n", addrs: []string{"alice"}},
	{name: "depth", aliases: "l0: l1\nl1: l2\nl2: l3\nl3: l4\nl4: alice\n",
		opts: func(o *Options) { o.MaxDepth = 3 }, addrs: []string{"l0"}},
	// The local mailer without F=w (an LMTP mail store with its own
	// users): any name that is no alias is taken, no .forward is read.
	{name: "any-local-user", aliases: "staff: Virtual1, bob\n",
		files: map[string]string{"home/carol/.forward": "dave\n"},
		opts:  func(o *Options) { o.AnyLocalUser = true }, addrs: []string{"staff", "NoSuchUser", "carol"}, root: true},
	{name: "quoted-user", aliases: "alice: bob\n", addrs: []string{"\\alice", "alice"}},
	{name: "direct-restricted", aliases: "", addrs: []string{"/tmp/x", "|/bin/true", ":include:/etc/x", "<bad", "nosuch@localhost"}},
	{name: "syntax-in-list", aliases: "list: alice, <bob, (comment) dave\n", addrs: []string{"list"}},
	{name: "include", aliases: "list: :include:$ROOT/lists/l\n",
		files: map[string]string{"lists/l": "# members\nalice\n\nbob, dave # not a comment\n\"|/usr/bin/archive list\"\n/var/tmp/list.archive\n"},
		addrs: []string{"list"}, root: true},
	{name: "include-owned-by-user", aliases: "list: :include:$ROOT/lists/l\n",
		files: map[string]string{"lists/l": "alice\n\"|/usr/bin/archive\"\n"},
		setup: func(t *testing.T, root string) { chown(t, filepath.Join(root, "lists/l"), 1001, 1001) },
		addrs: []string{"list"}, root: true},
	{name: "include-unsafe", aliases: "list: :include:$ROOT/lists/l\n",
		files: map[string]string{"lists/l": "alice\n\"|/usr/bin/archive\"\n/var/tmp/f\n"},
		setup: func(t *testing.T, root string) { chmod(t, filepath.Join(root, "lists/l"), 0o666) },
		addrs: []string{"list"}, root: true},
	{name: "include-missing", aliases: "list: alice, :include:$ROOT/lists/none\n",
		addrs: []string{"list"}, root: true},
	{name: "forward", aliases: "",
		files: map[string]string{"home/carol/.forward": "# vacation\n\\carol, \"|/usr/bin/vacation carol\"\nbob\n/var/tmp/carol.copy\n"},
		addrs: []string{"carol"}, root: true},
	{name: "forward-self", aliases: "",
		files: map[string]string{"home/carol/.forward": "carol, dave\n"},
		addrs: []string{"carol"}, root: true},
	{name: "forward-path", aliases: "",
		files: map[string]string{"home/carol/.forward.refhost": "dave\n", "home/carol/.forward": "bob\n"},
		opts: func(o *Options) {
			o.ForwardPath = "$z/.forward.$w:$z/.forward"
			o.Macros = map[string]string{"w": "refhost"}
		},
		addrs: []string{"carol"}, root: true},
	{name: "forward-group-writable", aliases: "",
		files: map[string]string{"home/carol/.forward": "bob\n"},
		setup: func(t *testing.T, root string) { chmod(t, filepath.Join(root, "home/carol/.forward"), 0o664) },
		addrs: []string{"carol"}, root: true},
	{name: "forward-other-owner", aliases: "",
		files: map[string]string{"home/carol/.forward": "bob\n"},
		setup: func(t *testing.T, root string) { chown(t, filepath.Join(root, "home/carol/.forward"), 1001, 1001) },
		addrs: []string{"carol"}, root: true},
	{name: "forward-symlink", aliases: "",
		files: map[string]string{"elsewhere": "bob\n"},
		setup: func(t *testing.T, root string) {
			mkdir(t, filepath.Join(root, "home/carol"))
			if err := os.Symlink(filepath.Join(root, "elsewhere"), filepath.Join(root, "home/carol/.forward")); err != nil {
				t.Fatal(err)
			}
		},
		addrs: []string{"carol"}, root: true},
	{name: "forward-unsafe-dir", aliases: "",
		files: map[string]string{"home/carol/.forward": "bob\n"},
		setup: func(t *testing.T, root string) { chmod(t, filepath.Join(root, "home"), 0o777) },
		addrs: []string{"carol"}, root: true},
	{name: "forward-too-big", aliases: "",
		files: map[string]string{"home/carol/.forward": "bob\n" + strings.Repeat("# padding\n", 200)},
		opts:  func(o *Options) { o.MaxFileSize = 1000 },
		addrs: []string{"carol"}, root: true},
	{name: "forward-in-list", aliases: "staff: carol, bob\n",
		files: map[string]string{"home/carol/.forward": "dave, nosuch\n"},
		addrs: []string{"staff"}, root: true},
}

func chown(t *testing.T, path string, uid, gid int) {
	t.Helper()
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestExpand runs the expansion cases against golden files in
// testdata/expand/: recipients (mailer triple, controlling user, C line, A
// flag, owner), failures, the -bv -v transcript, the exit status and the
// log lines.
func TestExpand(t *testing.T) {
	for _, tc := range expandCases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && os.Getuid() != 0 {
				t.Skip("needs root to set file owners")
			}
			root := t.TempDir()
			for p, c := range tc.files {
				mustWrite(t, filepath.Join(root, p), c, 0o644)
			}
			mkdir(t, filepath.Join(root, "home/carol"))
			if tc.root {
				// carol owns her home and .forward unless a case says otherwise.
				filepath.Walk(filepath.Join(root, "home/carol"), func(path string, info os.FileInfo, err error) error {
					if err == nil {
						os.Lchown(path, 1002, 1002)
					}
					return nil
				})
			}
			if tc.setup != nil {
				tc.setup(t, root)
			}
			p, err := Parse(strings.NewReader(strings.ReplaceAll(tc.aliases, "$ROOT", root)), refLocal)
			if err != nil || p.Errors() {
				t.Fatalf("aliases: %v %v", err, p.Diags)
			}
			users := UserTable{
				"root":  {Name: "root", UID: 0, GID: 0, Home: "/root", FullName: "root"},
				"alice": {Name: "alice", UID: 1000, GID: 1000, Home: filepath.Join(root, "home/alice"), FullName: "Alice Example"},
				"bob":   {Name: "bob", UID: 1001, GID: 1001, Home: filepath.Join(root, "home/bob"), FullName: "Bob Example"},
				"carol": {Name: "carol", UID: 1002, GID: 1002, Home: filepath.Join(root, "home/carol"), FullName: "Carol Forward"},
				"dave":  {Name: "dave", UID: 1003, GID: 1003, Home: filepath.Join(root, "home/dave")},
			}
			var log bytes.Buffer
			opts := Options{Aliases: p.Map(), Users: users, IsLocal: refLocal, Canon: refCanon,
				DefaultUID: 8, DefaultGID: 8, Logger: maillog.New(&log, "sm-mta")}
			if tc.opts != nil {
				tc.opts(&opts)
			}
			res := New(opts).Expand("QID", tc.addrs...)
			unroot := func(s string) string { return strings.ReplaceAll(s, root, "$ROOT") }
			got := render(res, unroot) + "log:\n" + unroot(logStamp.ReplaceAllString(log.String(), "  "))
			golden(t, "expand/"+tc.name+".golden", got)
		})
	}
}

// TestExpandRealUser checks the default user lookup (os/user) with an
// account created for the test: mailbox recipient with the real uid and
// home, and the user's .forward honoured.
func TestExpandRealUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root for useradd")
	}
	if _, err := lookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	name := fmt.Sprintf("phal%d", os.Getpid()%100000)
	home := filepath.Join(t.TempDir(), name)
	if out, err := runCmd("useradd", "-m", "-d", home, "-c", "Posthorn Test,,,", "-s", "/bin/sh", name); err != nil {
		t.Skipf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() { runCmd("userdel", "-r", name) })
	u, err := SystemUsers{}.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	if u.FullName != "Posthorn Test" || u.Home != home || u.UID == 0 {
		t.Fatalf("lookup: %+v", u)
	}
	x := New(Options{IsLocal: refLocal})
	res := x.Expand("", name)
	if len(res.Recipients) != 1 || res.Recipients[0].Local == nil || res.Recipients[0].Local.UID != u.UID {
		t.Fatalf("mailbox recipient: %+v", res)
	}
	// A .forward owned by the user is honoured, as the user.
	fwd := filepath.Join(home, ".forward")
	mustWrite(t, fwd, "\\"+name+", \"|/bin/cat\"\n", 0o644)
	chown(t, fwd, u.UID, u.GID)
	res = x.Expand("", name)
	var out bytes.Buffer
	for _, r := range res.Recipients {
		fmt.Fprintf(&out, "%s %s %d\n", r.Mailer, r.User, r.Ctl.UID)
	}
	// A list is handed on last element first, as sendmail does.
	want := fmt.Sprintf("prog \"|/bin/cat\" %d\nlocal %s %d\n", u.UID, name, u.UID)
	if out.String() != want {
		t.Errorf("got\n%swant\n%s", out.String(), want)
	}
	if _, err := (SystemUsers{}).Lookup("nosuchuser-posthorn"); err != ErrNoUser {
		t.Errorf("unknown user: %v", err)
	}
}

// BenchmarkExpandList expands a 5,000-member list (local users and remote
// addresses mixed) through an alias: the send-list work per message.
func BenchmarkExpandList(b *testing.B) {
	users := UserTable{}
	var members []string
	for i := range 5000 {
		if i%2 == 0 {
			name := fmt.Sprintf("u%d", i)
			users[name] = &User{Name: name, UID: 2000 + i, GID: 100, Home: "/nonexistent/" + name}
			members = append(members, name)
		} else {
			members = append(members, fmt.Sprintf("r%d@host%d.example", i, i%50))
		}
	}
	x := New(Options{Aliases: StaticMap{"big": strings.Join(members, ", ")}, Users: users, IsLocal: refLocal})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := x.Expand("", "big")
		if len(res.Recipients) != 5000 {
			b.Fatal(len(res.Recipients))
		}
	}
}

// BenchmarkExpandUser is the common case: one local user, no alias, a
// .forward path that does not exist.
func BenchmarkExpandUser(b *testing.B) {
	x := New(Options{Aliases: StaticMap{"postmaster": "root"},
		Users: UserTable{"alice": {Name: "alice", UID: 1000, Home: b.TempDir()}}, IsLocal: refLocal})
	for i := 0; i < b.N; i++ {
		if res := x.Expand("", "alice@localhost"); len(res.Recipients) != 1 {
			b.Fatal(res)
		}
	}
}
