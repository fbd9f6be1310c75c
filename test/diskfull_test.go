package test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Issue 14, faults: the queue's file system and the mail spool fill up.
// Each gets a small tmpfs of its own, mounted by the test over the
// private root's directory (root and mount rights needed; otherwise the
// test skips).

// mountTmpfs mounts a tmpfs of size over dir until the test ends.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
}

// fillUp writes a ballast file in dir until the file system is full, and
// returns its path.
func fillUp(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "ballast")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := bytes.Repeat([]byte("b"), 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !strings.Contains(err.Error(), "no space left") {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return p
		}
	}
}

func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// bodyOf is a message with a Message-Id to find it by and n bytes of body.
func bodyOf(id string, n int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Message-Id: <%s@proof.test>\r\nSubject: %s\r\n\r\n", id, id)
	for b.Len() < n {
		b.WriteString("a line of a message that fills the disk ..................................\r\n")
	}
	fmt.Fprintf(&b, "END <%s@proof.test>\r\n", id)
	return b.String()
}

// TestQueueDiskFull: with the queue on a 2 MiB file system, a message
// that does not fit is refused at the end of DATA with a temporary error
// and leaves nothing behind; once the disk is full MAIL is refused as
// sendmail refuses it; a local submission exits 75 (EX_TEMPFAIL) with a
// message; the daemon accepts again when space returns, and every message
// it acknowledged is delivered.
func TestQueueDiskFull(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly", "O MinFreeBlocks=16")
	q := r.path("spool/mqueue")
	mountTmpfs(t, q, "2m")
	os.Chmod(q, 0o700)
	logf := filepath.Join(t.TempDir(), "mail.log")
	startDaemon(t, r, "-X", logf)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()

	var acked []string
	send := func(id string, size int) string {
		t.Helper()
		s, _ := dialSMTP(t, r.addr())
		s.do("EHLO client.example")
		if got := s.do("MAIL FROM:<sender@client.example>"); !strings.HasPrefix(got, "250 ") {
			s.do("QUIT")
			return got
		}
		s.do("RCPT TO:<root@localhost>")
		if got := s.do("DATA"); !strings.HasPrefix(got, "354 ") {
			t.Fatalf("DATA: %q", got)
		}
		got := s.do(bodyOf(id, size) + ".\r\n")
		if strings.HasPrefix(got, "250 ") {
			acked = append(acked, id)
		}
		if q := s.do("QUIT"); !strings.HasPrefix(q, "221 ") {
			t.Errorf("%s: QUIT after %q: %q", id, got, q)
		}
		return got
	}
	for i := 0; i < 3; i++ {
		if got := send(fmt.Sprintf("small-%d", i), 20000); !strings.HasPrefix(got, "250 2.0.0 ") {
			t.Fatalf("small message %d: %q", i, got)
		}
	}
	jobs := len(queuedFiles(t, r))

	// More than the disk has: refused at the end of DATA, temporarily.
	free := freeBytes(t, q)
	if got := send("too-big", int(free)+512<<10); got != "452 4.3.1 Insufficient system storage" {
		t.Errorf("a message larger than the free space: %q", got)
	}
	if n := len(queuedFiles(t, r)); n != jobs {
		t.Errorf("%d jobs queued after the refusal, want %d", n, jobs)
	}
	if dfs := countFiles(t, q, "df"); dfs != jobs {
		t.Errorf("%d df files for %d jobs: the refused message's df was left", dfs, jobs)
	}
	if free2 := freeBytes(t, q); free2 < free-64<<10 {
		t.Errorf("the refused message still holds space: %d bytes free, %d before", free2, free)
	}

	// The disk full: MAIL is refused, as sendmail refuses it below
	// MinFreeBlocks, and so is a local submission.
	ballast := fillUp(t, q)
	if got := send("when-full", 1000); got != "452 4.4.5 Insufficient disk space; try again later" {
		t.Errorf("MAIL with the disk full: %q", got)
	}
	sub := run(t, binary(t), "Subject: local when full\n\nbody\n", "-C", r.cf, "-odq", "root")
	if sub.code != 75 || !strings.Contains(sub.stdout+sub.stderr, "Insufficient disk space") {
		t.Errorf("local submission with the disk full: exit %d %q %q", sub.code, sub.stdout, sub.stderr)
	}
	os.Remove(ballast)
	if got := send("after-full", 20000); !strings.HasPrefix(got, "250 2.0.0 ") {
		t.Errorf("after space returned: %q", got)
	}
	if !fileContains(logf, "low on space (SMTP-DAEMON needs 0 bytes + 16 blocks in ") {
		data, _ := os.ReadFile(logf)
		t.Errorf("no low-on-space log line:\n%s", data)
	}
	if tfs, _ := filepath.Glob(filepath.Join(q, "tf*")); len(tfs) > 0 {
		t.Errorf("tf files left: %v", tfs)
	}

	if got := run(t, binary(t), "", "-C", r.cf, "-q"); got.code != 0 {
		t.Fatalf("queue run: %+v", got)
	}
	copies := map[string]int{}
	for _, c := range readMbox(t, r.path("mail/root")) {
		copies[strings.TrimSuffix(strings.TrimPrefix(c.msgid, "<"), "@proof.test>")]++
		if !c.whole && c.msgid != "(none)" {
			t.Errorf("%s cut short in the mailbox", c.msgid)
		}
	}
	for _, id := range acked {
		if copies[id] != 1 {
			t.Errorf("acknowledged %s delivered %d times", id, copies[id])
		}
	}
	if copies["too-big"]+copies["when-full"] != 0 {
		t.Errorf("a refused message was delivered: %v", copies)
	}
	t.Logf("%d messages acknowledged around a full queue file system, all delivered once", len(acked))
}

// TestQueueDiskNearlyFull: without MinFreeBlocks, messages around the
// size of what is left (so that the df, the tf or the sync is the write
// that fails) are each either acknowledged and later delivered once, or
// refused with 452 4.3.1 and gone without a trace.
func TestQueueDiskNearlyFull(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly", "O MinFreeBlocks=0")
	q := r.path("spool/mqueue")
	mountTmpfs(t, q, "2m")
	os.Chmod(q, 0o700)
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	ballast := fillUp(t, q)
	acked, refused := map[string]bool{}, map[string]bool{}
	queued := 0 // acknowledged since the last queue run
	for room := int64(4 << 10); room <= 64<<10; room += 12 << 10 {
		for _, delta := range []int64{-16 << 10, -10 << 10, -7 << 10, -5 << 10, -3 << 10, 0} {
			// exactly room bytes free (the messages accepted so far hold some)
			if err := os.Truncate(ballast, max(mustSize(t, ballast)-(room-freeBytes(t, q)), 0)); err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("room-%d-%d", room, delta)
			rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>",
				"DATA", bodyOf(id, int(max(room+delta, 100)))+".", "QUIT")
			switch {
			case strings.HasPrefix(rs[4], "250 2.0.0 "):
				acked[id] = true
				queued++
			case rs[4] == "452 4.3.1 Insufficient system storage":
				refused[id] = true
			default:
				t.Errorf("%s: %q", id, rs[4])
			}
			if tfs := countFiles(t, q, "tf"); tfs != 0 {
				t.Errorf("%s: %d tf files left", id, tfs)
			}
			if qfs, dfs := countFiles(t, q, "qf"), countFiles(t, q, "df"); qfs != queued || dfs != queued {
				t.Errorf("%s: %d qf and %d df files for %d acknowledged messages", id, qfs, dfs, queued)
			}
		}
		// make room for the next round's messages: deliver what is queued
		os.Truncate(ballast, 0)
		if got := run(t, binary(t), "", "-C", r.cf, "-q"); got.code != 0 {
			t.Fatalf("queue run: %+v", got)
		}
		queued = 0
		fillUp(t, q)
	}
	// A local submission that does not fit: EX_TEMPFAIL, with the reason.
	if err := os.Truncate(ballast, max(mustSize(t, ballast)-(32<<10-freeBytes(t, q)), 0)); err != nil {
		t.Fatal(err)
	}
	sub := run(t, binary(t), strings.ReplaceAll(bodyOf("local-too-big", 100<<10), "\r\n", "\n"), "-C", r.cf, "-odq", "root")
	if sub.code != 75 || !strings.Contains(sub.stderr, "452 4.3.1 Insufficient system storage") {
		t.Errorf("local submission larger than the free space: exit %d %q %q", sub.code, sub.stdout, sub.stderr)
	}
	if n := countFiles(t, q, "qf") + countFiles(t, q, "df") + countFiles(t, q, "tf"); n != 0 {
		t.Errorf("%d queue files left by the refused submission", n)
	}
	os.Remove(ballast)
	if got := run(t, binary(t), "", "-C", r.cf, "-q"); got.code != 0 {
		t.Fatalf("queue run: %+v", got)
	}
	copies := map[string]int{}
	for _, c := range readMbox(t, r.path("mail/root")) {
		copies[strings.TrimSuffix(strings.TrimPrefix(c.msgid, "<"), "@proof.test>")]++
		if !c.whole {
			t.Errorf("%s cut short in the mailbox", c.msgid)
		}
	}
	if copies["local-too-big"] != 0 {
		t.Errorf("the refused local submission was delivered")
	}
	for id := range acked {
		if copies[id] != 1 {
			t.Errorf("acknowledged %s delivered %d times", id, copies[id])
		}
	}
	for id := range refused {
		if copies[id] != 0 {
			t.Errorf("refused %s delivered", id)
		}
	}
	if len(refused) == 0 || len(acked) == 0 {
		t.Errorf("%d acknowledged, %d refused: the sizes did not straddle the free space", len(acked), len(refused))
	}
	t.Logf("near a full queue: %d messages acknowledged (all delivered once), %d refused with 452 4.3.1 (none left behind)", len(acked), len(refused))
}

func countFiles(t *testing.T, dir, prefix string) int {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	return len(m)
}

// TestMailSpoolFull: the mail spool (its own 1 MiB file system) cannot
// take a message: the delivery is deferred (4.3.1, the job stays queued
// with its recipient), the mailbox keeps exactly its old content, and the
// next run after space returns delivers it once.
func TestMailSpoolFull(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly")
	spool := r.path("mail")
	mountTmpfs(t, spool, "1m")
	os.Chmod(spool, 0o1777)
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	if rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>",
		"DATA", bodyOf("first", 2000)+".", "QUIT"); !strings.HasPrefix(rs[4], "250 ") {
		t.Fatalf("first message: %q", rs[4])
	}
	if got := run(t, binary(t), "", "-C", r.cf, "-q"); got.code != 0 {
		t.Fatalf("queue run: %+v", got)
	}
	box := r.path("mail/root")
	old, err := os.ReadFile(box)
	if err != nil {
		t.Fatal(err)
	}
	ballast := fillUp(t, spool)
	// Leave room for part of the message, so that the append starts.
	if err := os.Truncate(ballast, mustSize(t, ballast)-64<<10); err != nil {
		t.Fatal(err)
	}
	if rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<root@localhost>",
		"DATA", bodyOf("second", 300<<10)+".", "QUIT"); !strings.HasPrefix(rs[4], "250 ") {
		t.Fatalf("second message: %q", rs[4])
	}
	got := run(t, binary(t), "", "-C", r.cf, "-q", "-v")
	if !strings.Contains(got.stdout, "No space left on device") {
		t.Errorf("the run does not say why:\n%s%s", got.stdout, got.stderr)
	}
	now, _ := os.ReadFile(box)
	if !bytes.Equal(now, old) {
		t.Errorf("the mailbox changed: %d bytes, was %d", len(now), len(old))
	}
	qfs := queuedFiles(t, r)
	if len(qfs) != 1 {
		t.Fatalf("%d jobs queued after the failed delivery, want 1", len(qfs))
	}
	for _, qf := range qfs {
		if !strings.Contains(qf, "\nR") || !strings.Contains(qf, "root@localhost") {
			t.Errorf("the deferred job lost its recipient:\n%s", qf)
		}
		if !strings.Contains(qf, "No space left on device") {
			t.Errorf("the qf does not record why:\n%s", qf)
		}
	}
	if bounces := strings.Count(string(now), "MAILER-DAEMON"); bounces != 0 {
		t.Errorf("a bounce was delivered")
	}

	os.Remove(ballast)
	if got := run(t, binary(t), "", "-C", r.cf, "-q"); got.code != 0 {
		t.Fatalf("queue run after space returned: %+v", got)
	}
	copies := map[string]int{}
	for _, c := range readMbox(t, box) {
		copies[c.msgid]++
		if !c.whole {
			t.Errorf("%s cut short", c.msgid)
		}
	}
	if copies["<first@proof.test>"] != 1 || copies["<second@proof.test>"] != 1 || len(copies) != 2 {
		t.Errorf("mailbox after space returned: %v", copies)
	}
	if n := len(queuedFiles(t, r)); n != 0 {
		t.Errorf("%d jobs still queued", n)
	}
}

func mustSize(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
