package test

// Black-box tests of local delivery with a real user (created with useradd,
// removed afterwards), real mailboxes read back by Python's mailbox module
// and by mutt. They need root; without it, or without useradd, they skip.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/deliver"
	"github.com/posthorn/posthorn/internal/status"
)

// TestDeliverChildHelper is not a test: the deliver tests start this test
// binary as posthorn's file-delivery child (deliver.ChildFlag) with a real
// user's credentials.
func TestDeliverChildHelper(t *testing.T) {
	i := slices.Index(os.Args, deliver.ChildFlag)
	if i < 0 {
		t.Skip("helper process for the deliver tests")
	}
	os.Exit(deliver.RunChild(os.Args[i+1:], os.Stdin, os.Stdout))
}

// realUser creates a user with its own group and returns it.
func realUser(t *testing.T) *deliver.User {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a user")
	}
	if _, err := exec.LookPath("useradd"); err != nil {
		t.Skip("no useradd")
	}
	name := fmt.Sprintf("phdlv%d", os.Getpid()%100000)
	if out, err := exec.Command("useradd", "-M", "-U", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v %s", err, out)
	}
	t.Cleanup(func() {
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", name).Run()
	})
	u, err := deliver.LookupSystemUser(name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// childCommand copies this test binary where any user may run it and
// returns the command that starts it as the file-delivery child.
func childCommand(t *testing.T) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "posthorn-child-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, "posthorn.test")
	if out, err := exec.Command("cp", self, exe).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Chmod(exe, 0o755)
	return []string{exe, "-test.run=^TestDeliverChildHelper$", "--", deliver.ChildFlag}
}

// openDir makes a temporary directory every user can enter.
func openDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	os.Chmod(filepath.Dir(d), 0o755)
	os.Chmod(d, 0o755)
	return d
}

func message(sender, header, body string) *deliver.Message {
	return &deliver.Message{Sender: sender, Header: []byte(header), Body: strings.NewReader(body), BodySize: int64(len(body))}
}

// pyMessage is what Python's mailbox module makes of one message.
type pyMessage struct {
	From    string `json:"from"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// readWithPython parses an mbox with Python's mailbox.mbox.
func readWithPython(t *testing.T, path string) []pyMessage {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	out, err := exec.Command(py, "-c", `import json, mailbox, sys
msgs = []
for m in mailbox.mbox(sys.argv[1], create=False):
    msgs.append({"from": m.get_from(), "subject": m["Subject"], "body": (m.get_payload(decode=True) or b"").decode("utf-8", "replace")})
print(json.dumps(msgs))`, path).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v %s", err, out)
	}
	var msgs []pyMessage
	if err := json.Unmarshal(out, &msgs); err != nil {
		t.Fatalf("python output: %v %s", err, out)
	}
	return msgs
}

// countWithMutt has mutt copy every message of the mbox to a new mbox (it
// needs a terminal, so it runs under script(1)) and returns how many From_
// lines mutt wrote. It returns -1 when mutt or script is missing.
func countWithMutt(t *testing.T, path string) int {
	t.Helper()
	if _, err := exec.LookPath("mutt"); err != nil {
		return -1
	}
	if _, err := exec.LookPath("script"); err != nil {
		return -1
	}
	home := t.TempDir()
	out := filepath.Join(home, "copy")
	// folder= must exist, or mutt stops at "Create ~/Mail?".
	muttCmd := fmt.Sprintf(`mutt -n -F /dev/null -R -f %s -e 'set folder=%s move=no confirmcreate=no confirmappend=no quit=yes wait_key=no' -e 'push "<tag-pattern>~A<enter><tag-prefix><copy-message>%s<enter><quit>"'`, path, home, out)
	cmd := exec.Command("script", "-qec", muttCmd, "/dev/null")
	cmd.Env = append(os.Environ(), "TERM=vt100", "HOME="+home)
	done := make(chan error, 1)
	go func() { done <- cmd.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("mutt: %v", err)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("mutt did not finish")
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("mutt wrote nothing: %v", err)
	}
	n := 0
	for l := range strings.SplitSeq(string(data), "\n") {
		if strings.HasPrefix(l, "From ") {
			n++
		}
	}
	return n
}

func TestDeliverMailboxRealUser(t *testing.T) {
	u := realUser(t)
	spool := openDir(t)
	a, err := deliver.New(deliver.Options{MailSpoolDirectory: spool, LockTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	box := filepath.Join(spool, u.Name)

	quoting := "From at the start of the first body line.\nFrom after a non-empty line.\n\n>From already quoted.\nFrom:no space\n"
	longLine := strings.Repeat("ü", 5000) + "\n"
	msgs := []*deliver.Message{
		message("sender@client.example", "Return-Path: <sender@client.example>\nSubject: quoting\n", quoting),
		message("", "Return-Path: <>\nSubject: bounce without final newline\n", "last line"),
		message("a@b", "Return-Path: <a@b>\nSubject: long 8-bit line\nContent-Type: text/plain; charset=utf-8\n", longLine),
	}
	for _, m := range msgs {
		if err := a.Mailbox(ctx, u.Name, m); err != nil {
			t.Fatal(err)
		}
	}
	// 40 deliveries at once, through separate agents (no shared in-process
	// queue: the dot-lock and fcntl lock keep them apart).
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ai, _ := deliver.New(deliver.Options{MailSpoolDirectory: spool, LockTimeout: time.Minute})
			body := strings.Repeat(fmt.Sprintf("From concurrent message %d\n", i), 100)
			errs <- ai.Mailbox(ctx, u.Name, message("c@x", fmt.Sprintf("Subject: concurrent %02d\n", i), body))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	var st unix.Stat_t
	if err := unix.Stat(box, &st); err != nil {
		t.Fatal(err)
	}
	if int(st.Uid) != u.UID || int(st.Gid) != u.GID || st.Mode&0o7777 != 0o600 {
		t.Errorf("mailbox %d:%d %o, want %d:%d 600", st.Uid, st.Gid, st.Mode&0o7777, u.UID, u.GID)
	}

	got := readWithPython(t, box)
	if len(got) != 43 {
		t.Fatalf("python reads %d messages, want 43", len(got))
	}
	if !strings.HasPrefix(got[0].From, "sender@client.example ") || got[0].Body != strings.ReplaceAll(strings.ReplaceAll(quoting, "\nFrom ", "\n>From "), "From at", ">From at") {
		t.Errorf("message 1: %+v", got[0])
	}
	if !strings.HasPrefix(got[1].From, "MAILER-DAEMON ") || got[1].Body != "last line\n" {
		t.Errorf("message 2: %+v", got[1])
	}
	if got[2].Body != longLine {
		t.Errorf("message 3: long line damaged (%d bytes)", len(got[2].Body))
	}
	seen := map[string]bool{}
	for _, m := range got[3:] {
		i, _ := strconv.Atoi(strings.TrimPrefix(m.Subject, "concurrent "))
		want := strings.Repeat(fmt.Sprintf(">From concurrent message %d\n", i), 100)
		if seen[m.Subject] || m.Body != want {
			t.Errorf("%s: repeated or damaged", m.Subject)
		}
		seen[m.Subject] = true
	}
	if n := countWithMutt(t, box); n >= 0 && n != 43 {
		t.Errorf("mutt copies %d messages, want 43", n)
	} else if n < 0 {
		t.Log("mutt not installed: mutt check skipped")
	}
}

func TestDeliverRefusesSymlinkedMailbox(t *testing.T) {
	u := realUser(t)
	spool := openDir(t)
	victim := filepath.Join(openDir(t), "victim")
	if err := os.WriteFile(victim, []byte("root:secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(spool, u.Name)); err != nil {
		t.Fatal(err)
	}
	a, _ := deliver.New(deliver.Options{MailSpoolDirectory: spool})
	err := a.Mailbox(context.Background(), u.Name, message("a@x", "Subject: x\n", "owned\n"))
	if st := status.From(err); st == nil || st.Code != 450 || !strings.Contains(st.Text, "symbolic link") {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "root:secret\n" {
		t.Fatalf("victim written: %q", b)
	}
}

// TestDeliverFullDisk fills a tiny tmpfs: the delivery that does not fit
// is deferred and the mailbox keeps exactly the messages before it.
func TestDeliverFullDisk(t *testing.T) {
	u := realUser(t)
	spool := openDir(t)
	if err := unix.Mount("tmpfs", spool, "tmpfs", 0, "size=64k,mode=0755"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(spool, unix.MNT_DETACH) })
	a, _ := deliver.New(deliver.Options{MailSpoolDirectory: spool})
	body := strings.Repeat("x", 10000) + "\n"
	delivered := 0
	var last error
	for i := range 20 {
		last = a.Mailbox(context.Background(), u.Name, message("a@x", fmt.Sprintf("Subject: %d\n", i), body))
		if last != nil {
			break
		}
		delivered++
	}
	st := status.From(last)
	if st == nil || st.Code != 452 || st.Enhanced != "4.3.1" {
		t.Fatalf("after %d deliveries: %v", delivered, last)
	}
	if got := readWithPython(t, filepath.Join(spool, u.Name)); len(got) != delivered || got[delivered-1].Body != body {
		t.Fatalf("python reads %d messages, want %d intact", len(got), delivered)
	}
}

// TestDeliverFileAndProgramAsUser: a ~/.forward's /file is written by the
// user (through the child) and its program runs as the user; an alias's
// program runs as DefaultUser mail.
func TestDeliverFileAndProgramAsUser(t *testing.T) {
	u := realUser(t)
	smrsh := openDir(t)
	if err := os.Symlink("/usr/bin/id", filepath.Join(smrsh, "id")); err != nil {
		t.Fatal(err)
	}
	a, err := deliver.New(deliver.Options{MailSpoolDirectory: openDir(t), Child: childCommand(t), SmrshDirectory: smrsh})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := openDir(t)
	os.Chown(dir, u.UID, u.GID)
	target := filepath.Join(dir, "saved.mbox")
	owner := deliver.Owner{User: u, Restricted: true}
	for i := range 2 {
		if err := a.File(ctx, target, owner, message("a@x", fmt.Sprintf("Subject: file %d\n", i), "From a .forward\n")); err != nil {
			t.Fatal(err)
		}
	}
	var st unix.Stat_t
	unix.Stat(target, &st)
	if int(st.Uid) != u.UID || st.Mode&0o777 != 0o640 {
		t.Errorf("file %d %o, want %d 640", st.Uid, st.Mode&0o777, u.UID)
	}
	if got := readWithPython(t, target); len(got) != 2 || got[1].Body != ">From a .forward\n" {
		t.Errorf("python: %+v", got)
	}

	out := filepath.Join(dir, "id.out")
	os.Chmod(dir, 0o777)
	// Restricted: only programs in the smrsh directory; the redirection is
	// refused, so run id and let the alias program capture its output.
	if err := a.Program(ctx, "/usr/bin/id -un", owner, message("a@x", "Subject: p\n", "b\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Program(ctx, "/bin/sh -c 'id -un'", owner, message("a@x", "Subject: p\n", "b\n")); status.From(err).Code != 554 {
		t.Errorf("smrsh let sh run: %v", err)
	}
	if err := a.Program(ctx, "id -un > "+out, deliver.Owner{User: u}, message("a@x", "Subject: p\n", "b\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != u.Name {
		t.Errorf("program ran as %q, want %s", b, u.Name)
	}
	os.Remove(out)
	if err := a.Program(ctx, "id -un > "+out, deliver.Owner{}, message("a@x", "Subject: p\n", "b\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); strings.TrimSpace(string(b)) != "mail" {
		t.Errorf("alias program ran as %q, want mail", b)
	}
}
