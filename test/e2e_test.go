package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testUser creates a local account with a home directory under dir and
// removes it when the test ends.
func testUser(t *testing.T, dir, name, gecos string) (uid, gid int, home string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create users")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	home = filepath.Join(dir, name)
	if out, err := exec.Command("useradd", "-M", "-U", "-d", home, "-c", gecos, "-s", "/bin/sh", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v %s", name, err, out)
	}
	t.Cleanup(func() {
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", name).Run()
	})
	out, _ := exec.Command("id", "-u", name).Output()
	uid, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	out, _ = exec.Command("id", "-g", name).Output()
	gid, _ = strconv.Atoi(strings.TrimSpace(string(out)))
	os.MkdirAll(home, 0o755)
	os.Chown(home, uid, gid)
	return uid, gid, home
}

// waitFor polls until cond holds or the bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileContains(path, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(data), s)
}

// TestEndToEndLocalDelivery: mail in over SMTP, out to mailboxes, a
// :include: list, a file, a program and a ~/.forward, as real users.
func TestEndToEndLocalDelivery(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	sfx := strconv.Itoa(os.Getpid() % 100000)
	ann, bert := "phann"+sfx, "phbert"+sfx
	annUID, _, _ := testUser(t, base, ann, "Ann Example")
	_, _, bertHome := testUser(t, base, bert, "Bert Example")
	// Bert forwards to Ann: .forward owned by him, not writable by others.
	fwd := filepath.Join(bertHome, ".forward")
	os.WriteFile(fwd, []byte(ann+"\n"), 0o644)
	out, _ := exec.Command("id", "-u", bert).Output()
	bertUID, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	os.Chown(fwd, bertUID, -1)

	r := newRoot(t, "O DeliveryMode=background", "O DefaultUser=root:root")
	os.Chmod(r.dir, 0o755)
	os.Chmod(r.path("mail"), 0o1777)
	fileTarget := r.path("mail/archive.mbox")
	progOut := r.path("mail/prog.out")
	include := r.path("etc/team.list")
	os.WriteFile(include, []byte("# the team\n"+ann+"\n"), 0o644)
	writeAliases(t, r, fmt.Sprintf("postmaster: root\nMAILER-DAEMON: postmaster\nteam: :include:%s\narchive: %s\nrunner: \"|/bin/sh -c 'cat > %s'\"\nbrokenlist: %s, nosuchuser%s\nannounce: %s\nowner-announce: %s\n",
		include, fileTarget, progOut, ann, sfx, ann, bert))
	if got := run(t, binary(t), "", "-C", r.cf, "-bi"); got.code != 0 {
		t.Fatalf("newaliases: %+v", got)
	}
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()

	send := func(from string, to []string, subject string) {
		msg := "Subject: " + subject + "\r\nFrom: " + from + "\r\n\r\nFrom here on, a body line that starts with From.\r\nbody of " + subject + "\r\n"
		if err := sendMail(r.addr(), from, to, msg); err != nil {
			t.Fatalf("send %s: %v", subject, err)
		}
	}
	send("sender@client.example", []string{ann + "@localhost", "team@localhost"}, "direct and list")
	send("sender@client.example", []string{bert + "@posthorn.test"}, "forwarded")
	send("sender@client.example", []string{"archive@localhost"}, "to a file")
	send("sender@client.example", []string{"runner@localhost"}, "to a program")
	send(ann+"@posthorn.test", []string{"brokenlist@localhost"}, "broken list")
	send("sender@client.example", []string{"announce@localhost"}, "owned list")

	box := r.path("mail/" + ann)
	waitFor(t, "the forwarded message", func() bool { return fileContains(box, "Subject: forwarded") })
	waitFor(t, "the DSN for the broken list", func() bool { return fileContains(box, "Subject: Returned mail: see transcript for details") })
	waitFor(t, "the owner list", func() bool { return fileContains(box, "Subject: owned list") })
	if data, _ := os.ReadFile(box); !strings.Contains(string(data), "Return-Path: <"+bert+"@posthorn.test>") {
		t.Errorf("owner- list: the envelope sender is not the owner:\n%s", data)
	}
	waitFor(t, "the file delivery", func() bool { return fileContains(fileTarget, "Subject: to a file") })
	waitFor(t, "the program delivery", func() bool { return fileContains(progOut, "Subject: to a program") })

	msgs := readWithPython(t, box)
	subjects := map[string]int{}
	for _, m := range msgs {
		subjects[m.Subject]++
	}
	// "direct and list" reaches Ann once: the list member is a duplicate.
	for subj, n := range map[string]int{"direct and list": 1, "forwarded": 1, "broken list": 1,
		"Returned mail: see transcript for details": 1, "owned list": 1} {
		if subjects[subj] != n {
			t.Errorf("mailbox has %d × %q, want %d (all: %v)", subjects[subj], subj, n, subjects)
		}
	}
	fi, err := os.Stat(box)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mailbox mode: %v %v", fi.Mode(), err)
	}
	if st, ok := fi.Sys().(interface{ Uid() uint32 }); ok && int(st.Uid()) != annUID {
		t.Errorf("mailbox owner %d, want %d", st.Uid(), annUID)
	}
	data, _ := os.ReadFile(box)
	if !strings.Contains(string(data), "\n>From here on, a body line that starts with From.\n") {
		t.Errorf("From_ quoting missing:\n%s", data)
	}
	dsn := string(data)[strings.LastIndex(string(data), "\nFrom MAILER-DAEMON "):]
	for _, want := range []string{"Content-Type: multipart/report; report-type=delivery-status;", "Final-Recipient: RFC822; brokenlist@localhost",
		"X-Actual-Recipient: rfc822; nosuchuser" + sfx + "@posthorn.test", "Action: failed", "Status: 5.1.1"} {
		if !strings.Contains(dsn, want) {
			t.Errorf("DSN lacks %q:\n%s", want, dsn)
		}
	}
	if list := run(t, binary(t), "", "-C", r.cf, "-bp"); !strings.Contains(list.stdout, "is empty") {
		t.Errorf("queue not empty after local deliveries:\n%s", list.stdout)
	}
}

// TestUnprivilegedSubmission: a user who cannot write the queue submits
// through the local MTA (sendmail's MSP path); with the MTA down, sendmail
// exits 75 and keeps the message in ~/dead.letter.
func TestUnprivilegedSubmission(t *testing.T) {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755) // testing's per-test directory is 0700
	name := "phsub" + strconv.Itoa(os.Getpid()%100000)
	uid, gid, home := testUser(t, base, name, "Sub Example")
	// A copy of the binary that the user may run.
	binDir := filepath.Join(base, "bin")
	os.Mkdir(binDir, 0o755)
	data, _ := os.ReadFile(binary(t))
	bin := filepath.Join(binDir, "sendmail")
	os.WriteFile(bin, data, 0o755)

	r := newRoot(t, "O DeliveryMode=background")
	os.Chmod(r.dir, 0o755)
	os.Chmod(r.path("etc"), 0o755)
	daemon := startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()

	asUser := func(stdin string, args ...string) result {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		cmd.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "TZ=UTC"}
		cmd.Dir = home
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{out.String(), errb.String(), code}
	}
	got := asUser("Subject: from a user\nBcc: hidden@remote.example\n\nhello\n", "-C", r.cf, "root")
	if got.code != 0 {
		t.Fatalf("user submission: exit %d %q", got.code, got.stderr)
	}
	_, syslogd := os.Stat("/dev/log") // without syslog, log lines go to stderr
	if syslogd != nil && (!strings.Contains(got.stderr, ": to=root, ctladdr="+name+" (") ||
		!strings.Contains(got.stderr, ", mailer=relay, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, stat=Sent (")) {
		t.Errorf("hand-off log line is not sendmail's:\n%s", got.stderr)
	}
	box := r.path("mail/root")
	waitFor(t, "the user's message", func() bool { return fileContains(box, "Subject: from a user") })
	mbox, _ := os.ReadFile(box)
	for _, want := range []string{"Received: (from " + name + "@localhost)", "From: Sub Example <" + name + "@posthorn.test>",
		"Return-Path: <" + name + "@posthorn.test>"} {
		if !strings.Contains(string(mbox), want) {
			t.Errorf("mailbox lacks %q:\n%s", want, mbox)
		}
	}
	if strings.Contains(string(mbox), "hidden@remote.example") {
		t.Errorf("Bcc: leaked:\n%s", mbox)
	}
	bad := asUser("Subject: x\n\nbody\n", "-C", r.cf, "nosuchuser")
	if bad.code != 67 || !strings.Contains(bad.stderr, "nosuchuser@posthorn.test>... User unknown") {
		t.Errorf("unknown recipient: exit %d %q", bad.code, bad.stderr)
	}

	daemon.Process.Signal(syscall.SIGTERM)
	daemon.Wait()
	down := asUser("Subject: MTA down\n\nkeep me\n", "-C", r.cf, "root")
	if down.code != 75 {
		t.Errorf("MTA down: exit %d %q", down.code, down.stderr)
	}
	if !fileContains(filepath.Join(home, "dead.letter"), "Subject: MTA down") {
		t.Error("the message was not kept in ~/dead.letter")
	}
}
