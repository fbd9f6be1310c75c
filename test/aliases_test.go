package test

import (
	"os"
	"strings"
	"testing"
)

// The black-box tests here use root (uid 0 exists everywhere) as the local
// user, so they need no useradd; tests with real users are in
// deliver_test.go.

func writeAliases(t *testing.T, r *root, text string) {
	t.Helper()
	if err := os.WriteFile(r.path("etc/aliases"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNewaliasesAndVerify(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "# test aliases\npostmaster: root\nMAILER-DAEMON: postmaster\nstaff: root,\n\tpostmaster\nlist: :include:"+r.path("etc/list")+"\nbitbucket: /dev/null\nbad: error:5.1.1:550 no such list\n")
	os.WriteFile(r.path("etc/list"), []byte("# members\nroot\n"), 0o644)

	got := run(t, linkAs(t, "newaliases"), "", "-C", r.cf)
	want := r.path("etc/aliases") + ": 6 aliases, longest "
	if got.code != 0 || !strings.HasPrefix(got.stdout, want) || !strings.HasSuffix(got.stdout, " bytes total\n") {
		t.Fatalf("newaliases: exit %d %q %q", got.code, got.stdout, got.stderr)
	}
	if _, err := os.Stat(r.path("etc/aliases.db")); err != nil {
		t.Fatalf("no aliases.db: %v", err)
	}
	if bi := run(t, binary(t), "", "-C", r.cf, "-bi"); bi.code != 0 || bi.stdout != got.stdout {
		t.Errorf("-bi differs from newaliases: %q", bi.stdout)
	}

	for _, tc := range []struct {
		args []string
		out  string
		code int
	}{
		{[]string{"root"}, "root... deliverable: mailer local, user root\n", 0},
		{[]string{"staff"}, "root... deliverable: mailer local, user root\n", 0},
		{[]string{"list"}, "root... deliverable: mailer local, user root\n", 0},
		{[]string{"bitbucket"}, "/dev/null... deliverable: mailer *file*, user /dev/null\n", 0},
		{[]string{"nosuchuser"}, "nosuchuser... User unknown\n", 67},
		{[]string{"someone@remote.example"}, "someone@remote.example... deliverable: mailer esmtp, host remote.example, user someone@remote.example\n", 0},
	} {
		got := run(t, binary(t), "", append([]string{"-C", r.cf, "-bv"}, tc.args...)...)
		if got.stdout != tc.out || got.code != tc.code {
			t.Errorf("-bv %v: %q exit %d, want %q exit %d (stderr %q)", tc.args, got.stdout, got.code, tc.out, tc.code, got.stderr)
		}
	}
	// -n: no aliasing, so an alias name is no user (a real user still is).
	if got := run(t, binary(t), "", "-C", r.cf, "-n", "-bv", "staff"); got.code != 67 || got.stdout != "staff... User unknown\n" {
		t.Errorf("-n -bv staff: %q exit %d", got.stdout, got.code)
	}
	if got := run(t, binary(t), "", "-C", r.cf, "-n", "-bv", "root"); got.code != 0 {
		t.Errorf("-n -bv root: %q exit %d", got.stdout, got.code)
	}
	verbose := run(t, binary(t), "", "-C", r.cf, "-bv", "-v", "staff")
	if !strings.Contains(verbose.stdout, "staff... aliased to root,\tpostmaster\n") {
		t.Errorf("-bv -v: %q", verbose.stdout)
	}
}

func TestNewaliasesErrors(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "postmaster: root\nno colon here\ndup: root\ndup: postmaster\n")
	got := run(t, binary(t), "", "-C", r.cf, "-bi")
	if got.code != 70 || !strings.Contains(got.stdout+got.stderr, "line 2") {
		t.Errorf("bad aliases: exit %d\nstdout %q\nstderr %q", got.code, got.stdout, got.stderr)
	}
}

// TestSubmitQueueOnly: `sendmail -odq` queues the message durably; mailq
// shows it with its recipients after alias expansion.
func TestSubmitQueueOnly(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "postmaster: root\nMAILER-DAEMON: postmaster\nstaff: root, someone@remote.example\n")
	run(t, binary(t), "", "-C", r.cf, "-bi")
	got := run(t, binary(t), "Subject: queued\n\nbody\n", "-C", r.cf, "-odq", "staff")
	if got.code != 0 {
		t.Fatalf("submit: exit %d %q", got.code, got.stderr)
	}
	list := run(t, linkAs(t, "mailq"), "", "-C", r.cf)
	for _, want := range []string{"(1 request)", " <root@posthorn.test>\n", "\t\t\t\t\t root\n", "\t\t\t\t\t someone@remote.example\n", "Total requests: 1"} {
		if !strings.Contains(list.stdout, want) {
			t.Errorf("mailq lacks %q:\n%s", want, list.stdout)
		}
	}
	bad := run(t, binary(t), "Subject: x\n\nbody\n", "-C", r.cf, "-odq", "nosuchuser")
	if bad.code != 67 || !strings.HasPrefix(bad.stderr, "nosuchuser... User unknown\n") {
		t.Errorf("unknown user: exit %d %q", bad.code, bad.stderr)
	}
	none := run(t, binary(t), "Subject: no recipients\n\nbody\n", "-C", r.cf, "-odq", "-t")
	if none.code != 0 || none.stderr != "No recipient addresses found in header\n" {
		t.Errorf("-t without recipients: exit %d %q", none.code, none.stderr)
	}
}

// TestMailLocalBinary: the binary called mail.local appends to the
// configured spool.
func TestMailLocalBinary(t *testing.T) {
	r := newRoot(t)
	got := run(t, linkAs(t, "mail.local"), "Subject: via mail.local\n\nFrom the body\nlast line without newline", "-C", r.cf, "-f", "sender@example.org", "root")
	if got.code != 0 {
		t.Fatalf("mail.local: exit %d %q", got.code, got.stderr)
	}
	box, err := os.ReadFile(r.path("mail/root"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(box)
	if !strings.HasPrefix(s, "From sender@example.org ") || !strings.Contains(s, "\n>From the body\n") ||
		!strings.HasSuffix(s, "last line without newline\n\n") {
		t.Errorf("mailbox:\n%s", s)
	}
	if u := run(t, linkAs(t, "mail.local"), "x\n", "-C", r.cf, "nosuchuser"); u.code != 67 {
		t.Errorf("unknown user: exit %d %q", u.code, u.stderr)
	}
}
