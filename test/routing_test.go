package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSourceRoutesFromOutsiders: the source-route forms a probe found
// passing the relay check are decided at RCPT from the one routing
// function: a route is dropped, so what counts is the mailbox, local or
// remote. Nothing is queued for the esmtp mailer, and an unknown local
// user is refused at RCPT, not after DATA.
func TestSourceRoutesFromOutsiders(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly", "O RelayHosts=127.0.0.1/32", "O AcceptUnresolvableDomains=True")
	writeAliases(t, r, "postmaster: root\n")
	run(t, binary(t), "", "-C", r.cf, "-bi")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	host, port, _ := strings.Cut(r.addr(), ":")
	script := "> EHLO client.example\n> MAIL FROM:<someone@client.example>\n" +
		"> RCPT TO:<@x@remote.example:someuser>\n" +
		"> RCPT TO:<@remote.example:nosuchuser@localhost>\n" +
		"> RCPT TO:<@[192.0.2.99]:nosuchuser2@localhost>\n" +
		"> RCPT TO:<@localhost:alice@remote.example>\n" +
		"> RCPT TO:<@remote.example:root@localhost>\n" +
		"> RCPT TO:<postmaster@localhost>\n" +
		"> DATA\n>> Subject: routed\n>>\n>> body\n> .\n> QUIT\n"
	got := transcript(t, script, "--src", "127.0.0.66", host, port)
	for _, want := range []string{
		"S: 550 5.1.1 <@x@remote.example:someuser>... User unknown\n",
		"S: 550 5.1.1 <@remote.example:nosuchuser@localhost>... User unknown\n",
		"S: 550 5.1.1 <@[192.0.2.99]:nosuchuser2@localhost>... User unknown\n",
		"S: 550 5.7.1 <@localhost:alice@remote.example>... Relaying denied. IP name lookup failed [127.0.0.66]\n",
		"S: 250 2.1.5 <@remote.example:root@localhost>... Recipient ok\n",
		"S: 250 2.1.5 <postmaster@localhost>... Recipient ok\n",
		"S: 250 2.0.0 QID Message accepted for delivery\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("transcript lacks %q:\n%s", want, got)
		}
	}
	qfs, _ := filepath.Glob(r.path("spool/mqueue/qf*"))
	if len(qfs) != 1 {
		t.Fatalf("%d jobs queued, want 1", len(qfs))
	}
	qf, _ := os.ReadFile(qfs[0])
	var rcpts []string
	for _, l := range strings.Split(string(qf), "\n") {
		if strings.HasPrefix(l, "R") {
			rcpts = append(rcpts, l)
		}
	}
	// Two accepted RCPTs, one mailbox: postmaster is root.
	if len(rcpts) != 1 || !strings.Contains(rcpts[0], "root@localhost") {
		t.Errorf("queued recipients %q, want root's mailbox once", rcpts)
	}
	// The queue run delivers both to root's mailbox (one message: the
	// routed root and postmaster are the same mailbox) and nothing is
	// left waiting for a remote mailer.
	if q := run(t, binary(t), "", "-C", r.cf, "-q", "-v"); q.code != 0 {
		t.Fatalf("-q: %+v", q)
	}
	box, _ := os.ReadFile(r.path("mail/root"))
	if n := strings.Count(string(box), "Subject: routed"); n != 1 {
		t.Errorf("root got %d copies, want 1", n)
	}
	if list := run(t, binary(t), "", "-C", r.cf, "-bp"); !strings.Contains(list.stdout, "is empty") {
		t.Errorf("jobs left:\n%s", list.stdout)
	}
}

// TestRoutedAddressesBv: -bv and delivery agree with the relay check on
// the same forms.
func TestRoutedAddressesBv(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "postmaster: root\n")
	for addr, want := range map[string]string{
		"<@x@remote.example:root>":          "deliverable: mailer local, user root",
		"<@remote.example:root@localhost>":  "deliverable: mailer local, user root",
		"<@localhost:alice@remote.example>": "deliverable: mailer esmtp, host remote.example, user alice@remote.example",
		"alice%remote.example@localhost":    "deliverable: mailer esmtp, host remote.example, user alice@remote.example",
	} {
		got := run(t, binary(t), "", "-C", r.cf, "-bv", addr)
		if !strings.Contains(got.stdout, want) {
			t.Errorf("-bv %s: %q, want %q", addr, got.stdout, want)
		}
	}
}

// TestMailerTableRouting: mailertable entries and the smart host are
// what -bv shows (the queue runner resolves with the same function).
func TestMailerTableRouting(t *testing.T) {
	r := newRoot(t, "DS[smart.example]")
	writeAliases(t, r, "postmaster: root\n")
	os.WriteFile(r.path("etc/mailertable"), []byte("example.com esmtp:[10.1.2.3]:2525\n.example.org relay:gw.example\nshop.example local:root\n"), 0o644)
	for addr, want := range map[string]string{
		"u@example.com":       "mailer esmtp, host [10.1.2.3]:2525, user u@example.com",
		"u@a.example.org":     "mailer relay, host gw.example, user u@a.example.org",
		"buyer@shop.example":  "mailer local, user root",
		"u@elsewhere.example": "mailer relay, host [smart.example], user u@elsewhere.example",
	} {
		got := run(t, binary(t), "", "-C", r.cf, "-bv", addr)
		if !strings.Contains(got.stdout, want) {
			t.Errorf("-bv %s: %q, want %q", addr, got.stdout, want)
		}
	}
}

// TestExpansionFailureIsOneRecipients: two accepted recipients, one of
// whose .forward :include:s a file others may write naming a program. The
// end of DATA is 250 (the good recipient is not refused with it), its text
// says nothing of the include file, the program never runs, and the
// failure goes back to the sender in a DSN.
func TestExpansionFailureIsOneRecipients(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	sfx := strconv.Itoa(os.Getpid() % 100000)
	good, bad := "phgood"+sfx, "phbad"+sfx
	testUser(t, base, good, "Good User")
	_, _, badHome := testUser(t, base, bad, "Bad Forward")
	badUID, _ := strconv.Atoi(strings.TrimSpace(string(must(exec.Command("id", "-u", bad).Output()))))
	pwned := filepath.Join(base, "pwned")
	unsafe := filepath.Join(base, "unsafe.list")
	os.WriteFile(unsafe, []byte("\"|/usr/bin/touch "+pwned+"\"\n"), 0o666)
	os.Chmod(unsafe, 0o666)
	fwd := filepath.Join(badHome, ".forward")
	os.WriteFile(fwd, []byte(":include:"+unsafe+"\n"), 0o644)
	os.Chown(fwd, badUID, -1)

	r := newRoot(t, "O DeliveryMode=background", "O DefaultUser=root:root")
	os.Chmod(r.dir, 0o755)
	os.Chmod(r.path("mail"), 0o1777)
	writeAliases(t, r, "postmaster: root\nMAILER-DAEMON: postmaster\n")
	run(t, binary(t), "", "-C", r.cf, "-bi")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	host, port, _ := strings.Cut(r.addr(), ":")
	got := transcript(t, "> EHLO client.example\n> MAIL FROM:<"+good+"@localhost>\n> RCPT TO:<"+good+"@localhost>\n> RCPT TO:<"+bad+"@localhost>\n"+
		"> DATA\n>> Subject: two recipients\n>>\n>> body\n> .\n> QUIT\n", host, port)
	if !strings.Contains(got, "S: 250 2.0.0 QID Message accepted for delivery\n") {
		t.Errorf("end of DATA:\n%s", got)
	}
	if strings.Contains(got, "unsafe") || strings.Contains(got, "include") {
		t.Errorf("a reply quotes the .forward's include:\n%s", got)
	}
	box := r.path("mail/" + good)
	waitFor(t, "the good recipient's copy", func() bool { return fileContains(box, "Subject: two recipients") })
	waitFor(t, "the DSN for the bad one", func() bool { return fileContains(box, "Subject: Returned mail: see transcript for details") })
	if _, err := os.Stat(pwned); err == nil {
		t.Error("the program from the unsafe include ran")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestVirtUserTable: a virtual domain (class VirtHost) routed through the
// virtusertable, as -bv shows it and the SMTP server accepts it.
func TestVirtUserTable(t *testing.T) {
	r := newRoot(t, "C{VirtHost}virtual.example", "O DeliveryMode=queueonly", "O RelayHosts=127.0.0.1/32", "O AcceptUnresolvableDomains=True")
	writeAliases(t, r, "postmaster: root\n")
	os.WriteFile(r.path("etc/virtusertable"), []byte("info@virtual.example root\nsales@virtual.example buyer@remote.example\nspam@virtual.example error:5.7.1:550 go away\n"), 0o644)
	for addr, want := range map[string]string{
		"info@virtual.example":  "deliverable: mailer local, user root",
		"sales@virtual.example": "deliverable: mailer esmtp, host remote.example, user buyer@remote.example",
		"spam@virtual.example":  "go away",
		"other@virtual.example": "User unknown",
	} {
		got := run(t, binary(t), "", "-C", r.cf, "-bv", addr)
		if !strings.Contains(got.stdout, want) {
			t.Errorf("-bv %s: %q, want %q", addr, got.stdout, want)
		}
	}
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	host, port, _ := strings.Cut(r.addr(), ":")
	got := transcript(t, "> EHLO client.example\n> MAIL FROM:<someone@client.example>\n> RCPT TO:<info@virtual.example>\n> RCPT TO:<sales@virtual.example>\n> RCPT TO:<other@virtual.example>\n> RCPT TO:<spam@virtual.example>\n> QUIT\n", "--src", "127.0.0.66", host, port)
	for _, want := range []string{
		"S: 250 2.1.5 <info@virtual.example>... Recipient ok\n",
		"S: 250 2.1.5 <sales@virtual.example>... Recipient ok\n", // virtual: ours to forward, not relaying
		"S: 550 5.1.1 <other@virtual.example>... User unknown\n",
		"S: 550 5.7.1 <spam@virtual.example>... go away\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("transcript lacks %q:\n%s", want, got)
		}
	}
}
