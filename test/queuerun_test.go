package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAlternateQueue is the admin's recipe for a clogged queue: move the
// jobs to another directory and work through it with -oQ.
func TestAlternateQueue(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "postmaster: root\n")
	for i := 0; i < 3; i++ {
		if got := run(t, binary(t), "Subject: clogged\n\nbody\n", "-C", r.cf, "-odq", "root"); got.code != 0 {
			t.Fatalf("submit: %+v", got)
		}
	}
	old := r.path("spool/mqueue.old")
	os.Mkdir(old, 0o700)
	files, _ := filepath.Glob(r.path("spool/mqueue/[qd]f*"))
	for _, f := range files {
		if err := os.Rename(f, filepath.Join(old, filepath.Base(f))); err != nil {
			t.Fatal(err)
		}
	}
	if list := run(t, binary(t), "", "-C", r.cf, "-oQ"+old, "-bp"); !strings.Contains(list.stdout, "(3 requests)") {
		t.Fatalf("-oQ listing:\n%s", list.stdout)
	}
	if got := run(t, binary(t), "", "-C", r.cf, "-oQ"+old, "-q", "-v"); got.code != 0 || strings.Count(got.stdout, "root... Sent") != 3 {
		t.Errorf("-oQ -q -v: exit %d\n%s%s", got.code, got.stdout, got.stderr)
	}
	if list := run(t, binary(t), "", "-C", r.cf, "-O", "QueueDirectory="+old, "-bp"); !strings.Contains(list.stdout, "is empty") {
		t.Errorf("alternate queue not emptied:\n%s", list.stdout)
	}
	box, _ := os.ReadFile(r.path("mail/root"))
	if n := strings.Count(string(box), "Subject: clogged"); n != 3 {
		t.Errorf("%d messages delivered, want 3", n)
	}
}

// TestSendmailWrittenQueue: a job written by sendmail 8.17 is read,
// retried and rewritten by a posthorn queue run (its remote recipient
// stays deferred: posthorn has no relay client yet), and the listing shows
// the new status and attempt.
func TestSendmailWrittenQueue(t *testing.T) {
	r := newRoot(t)
	q := r.path("spool/mqueue")
	// The job's T and K lines are moved to an hour ago, keeping the
	// sendmail bytes otherwise: a fixed date would age past
	// Timeout.queuereturn and be bounced instead of retried.
	copySendmailJob(t, "../testdata/queues/one", q, "6AP4T98X005913", time.Now().Add(-time.Hour))
	got := run(t, binary(t), "", "-C", r.cf, "-q", "-v")
	if got.code != 0 || !strings.Contains(got.stdout, "Running "+q+"/6AP4T98X005913 (sequence 1 of 1)") {
		t.Errorf("-q -v: exit %d\n%s%s", got.code, got.stdout, got.stderr)
	}
	qf, err := os.ReadFile(filepath.Join(q, "qf6AP4T98X005913"))
	if err != nil {
		t.Fatalf("the job is gone: %v", err)
	}
	for _, want := range []string{"V8\n", "N2\n", "RPFD:<someone@remote.example>\n", "H?P?Return-Path: <\x81g>\n",
		"H??Subject: this one will be deferred\n"} {
		if !strings.Contains(string(qf), want) {
			t.Errorf("rewritten qf lacks %q:\n%s", want, qf)
		}
	}
	if list := run(t, binary(t), "", "-C", r.cf, "-bp"); !strings.Contains(list.stdout, "6AP4T98X005913") {
		t.Errorf("listing:\n%s", list.stdout)
	}
}

// TestSubmitBackground: plain `sendmail root` (DeliveryMode background)
// returns at once and the message reaches the mailbox.
func TestSubmitBackground(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "postmaster: root\n")
	if got := run(t, binary(t), "Subject: background\n\nbody\n", "-C", r.cf, "root"); got.code != 0 {
		t.Fatalf("submit: %+v", got)
	}
	waitFor(t, "background delivery", func() bool { return fileContains(r.path("mail/root"), "Subject: background") })
	waitFor(t, "an empty queue", func() bool {
		return strings.Contains(run(t, binary(t), "", "-C", r.cf, "-bp").stdout, "is empty")
	})
	// -odi delivers before sendmail exits.
	if got := run(t, binary(t), "Subject: interactive\n\nbody\n", "-C", r.cf, "-odi", "root"); got.code != 0 {
		t.Fatalf("submit -odi: %+v", got)
	}
	if !fileContains(r.path("mail/root"), "Subject: interactive") {
		t.Error("-odi: not delivered when sendmail returned")
	}
	// -v delivers at once too and prints the transcript.
	v := run(t, binary(t), "Subject: verbose\n\nbody\n", "-C", r.cf, "-v", "root")
	if v.code != 0 || !strings.Contains(v.stdout, "root... Sent\n") || !fileContains(r.path("mail/root"), "Subject: verbose") {
		t.Errorf("-v: exit %d stdout %q", v.code, v.stdout)
	}
}

// TestVerbAndETRN: VERB returns the delivery transcript as 050 lines;
// ETRN starts a queue run.
func TestVerbAndETRN(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=background")
	writeAliases(t, r, "postmaster: root\n")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	host, port, _ := strings.Cut(r.addr(), ":")
	got := transcript(t, "> EHLO client.example\n> VERB\n> MAIL FROM:<sender@client.example>\n> RCPT TO:<root@localhost>\n> DATA\n>> Subject: verb\n>>\n>> body\n> .\n> QUIT\n", host, port)
	for _, want := range []string{"S: 250 2.0.0 Verbose mode\n", "S: 050 <root@localhost>... Sent\n", "S: 250 2.0.0 QID Message accepted for delivery\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("VERB transcript lacks %q:\n%s", want, got)
		}
	}
	// A job for remote.example queued behind the daemon's back is tried
	// when a client says ETRN remote.example (it stays deferred: there is
	// no relay client yet, but the attempt shows in the qf).
	if sub := run(t, binary(t), "Subject: etrn\n\nbody\n", "-C", r.cf, "-odq", "someone@remote.example"); sub.code != 0 {
		t.Fatalf("submit: %+v", sub)
	}
	etrn := transcript(t, "> EHLO client.example\n> ETRN remote.example\n> QUIT\n", host, port)
	if !strings.Contains(etrn, "S: 250 2.0.0 Queuing for node remote.example started\n") {
		t.Errorf("ETRN:\n%s", etrn)
	}
	waitFor(t, "the ETRN run", func() bool {
		qfs, _ := filepath.Glob(r.path("spool/mqueue/qf*"))
		return len(qfs) == 1 && fileContains(qfs[0], "\nN1\n")
	})
}

// TestReportExpansion: a DSN to an alias (postmaster) is expanded like any
// recipient and reaches root's mailbox.
func TestReportExpansion(t *testing.T) {
	r := newRoot(t)
	writeAliases(t, r, "postmaster: root\nbroken: root, nosuchuser-"+strconv.Itoa(os.Getpid())+"\n")
	run(t, binary(t), "", "-C", r.cf, "-bi")
	if got := run(t, binary(t), "Subject: to a broken alias\n\nbody\n", "-C", r.cf, "-f", "postmaster", "-odi", "broken"); got.code != 0 {
		t.Fatalf("submit: %+v", got)
	}
	waitFor(t, "the DSN in root's mailbox", func() bool {
		return fileContains(r.path("mail/root"), "Subject: Returned mail: see transcript for details")
	})
	if !strings.Contains(run(t, binary(t), "", "-C", r.cf, "-bp").stdout, "is empty") {
		t.Error("jobs left in the queue")
	}
}

// TestLogClassAndSortOrder: a submission's from= line carries the
// Precedence: class; a QueueSortOrder posthorn does not implement is
// named in the daemon's start-up log, not silently taken as honoured.
func TestLogClassAndSortOrder(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly", "O QueueSortOrder=modification")
	logf := filepath.Join(t.TempDir(), "mail.log")
	if got := run(t, binary(t), "Precedence: junk\nSubject: class\n\nbody\n", "-C", r.cf, "-X", logf, "root"); got.code != 0 {
		t.Fatalf("submit: %+v", got)
	}
	cmd := exec.Command(binary(t), "-C", r.cf, "-bD", "-X", logf)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	data, _ := os.ReadFile(logf)
	for _, want := range []string{", class=-100, nrcpts=1,", "not interpreted: option QueueSortOrder=modification (priority used)"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("log lacks %q:\n%s", want, data)
		}
	}
}
