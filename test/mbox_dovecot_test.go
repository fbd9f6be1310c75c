package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// TestMboxReadByDovecotDuringDeliveries: the mbox path stays first-class.
// Dovecot serves posthorn's spool (mbox, INBOX = <spool>/<user>, its
// default locking: fcntl to read, dot-lock + fcntl to write) over IMAP and
// reads it again and again while 20 SMTP clients deliver to the same
// mailbox at once. At the end every message is in the mailbox exactly
// once and intact, Python's mailbox module and Dovecot agree, and
// Dovecot never logged a corrupted or changed-under-it mbox.
func TestMboxReadByDovecotDuringDeliveries(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: a test user and Dovecot")
	}
	needPrograms(t, "/usr/sbin/dovecot", "/usr/lib/dovecot/imap", "/usr/bin/python3")
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755) // Dovecot's own processes must reach their files
	user := "phmbox" + strconv.Itoa(os.Getpid()%100000)
	uid, gid, _ := testUser(t, base, user, "Mbox Reader")

	r := newRoot(t, "O DeliveryMode=background", "O AcceptUnresolvableDomains=True")
	os.Chmod(r.dir, 0o755)
	os.Chmod(r.path("mail"), 0o1777) // as /var/mail: users' dot-locks go beside their box
	writeAliases(t, r, "postmaster: root\n")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	box := r.path("mail/" + user)

	// Dovecot on the same spool.
	dir := filepath.Join(base, "dovecot")
	for _, sub := range []string{"run", "state", "home"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	os.Chown(filepath.Join(dir, "home"), uid, gid)
	imapPort := freePort(t)
	os.WriteFile(filepath.Join(dir, "users"), []byte(user+":{PLAIN}pw::::::\n"), 0o644)
	conf := fmt.Sprintf(`protocols = imap
listen = 127.0.0.1
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
first_valid_gid = 1
mail_location = mbox:%[1]s/home/mail:INBOX=%[2]s/%%u
mbox_read_locks = fcntl
mbox_write_locks = dotlock fcntl
passdb {
  driver = passwd-file
  args = %[1]s/users
}
userdb {
  driver = static
  args = uid=%[3]d gid=%[4]d home=%[1]s/home
}
service imap-login {
  inet_listener imap {
    port = %[5]d
  }
  inet_listener imaps {
    port = 0
  }
}
`, dir, r.path("mail"), uid, gid, imapPort)
	confPath := filepath.Join(dir, "dovecot.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	dc := exec.Command("/usr/sbin/dovecot", "-F", "-c", confPath)
	dc.Stdout, dc.Stderr = os.Stderr, os.Stderr
	if err := dc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dc.Process.Signal(syscall.SIGTERM); dc.Wait() })
	waitFor(t, "Dovecot's IMAP port", func() bool {
		c, err := netDial(fmt.Sprintf("127.0.0.1:%d", imapPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	// A reader that opens the box and fetches every header, over and
	// over, until told to stop; it prints how many it saw each time.
	reader := exec.Command("python3", "-c", fmt.Sprintf(`
import imaplib, sys, time, os
deadline = time.time() + 120
rounds = 0
while time.time() < deadline and not os.path.exists(%q):
    m = imaplib.IMAP4("127.0.0.1", %d)
    m.login(%q, "pw")
    m.select("INBOX", readonly=True)
    for _ in range(20):
        m.noop()
        _, data = m.search(None, "ALL")
        if data[0]:
            m.fetch(b",".join(data[0].split()), "(BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)])")
        rounds += 1
    m.logout()
    open(%q, "w").write(str(rounds))
print(rounds)
`, filepath.Join(base, "stop"), imapPort, user, filepath.Join(base, "rounds")))
	var readerOut strings.Builder
	reader.Stdout, reader.Stderr = &readerOut, &readerOut
	if err := reader.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reader's first round", func() bool { _, err := os.Stat(filepath.Join(base, "rounds")); return err == nil })

	const clients, each = 20, 10
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				subj := fmt.Sprintf("mbox-%02d-%02d", c, i)
				msg := "Subject: " + subj + "\r\nMessage-ID: <" + subj + "@test>\r\n\r\nFrom the start of a body line.\r\n" + strings.Repeat("line of the body\r\n", 50) + "end of " + subj + "\r\n"
				if err := sendMail(r.addr(), "sender@client.example", []string{user + "@localhost"}, msg); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("send: %v", err)
	}
	waitFor(t, "every delivery", func() bool {
		data, _ := os.ReadFile(box)
		return strings.Count(string(data), "\nSubject: mbox-") == clients*each
	})
	os.WriteFile(filepath.Join(base, "stop"), nil, 0o644)
	if err := reader.Wait(); err != nil {
		t.Fatalf("the IMAP reader failed: %v\n%s", err, readerOut.String())
	}
	rounds, _ := strconv.Atoi(strings.TrimSpace(readerOut.String()))
	t.Logf("Dovecot read the mailbox %d times during the deliveries", rounds)

	// Python's mailbox module and Dovecot see the same messages, each
	// once and whole.
	check := exec.Command("python3", "-c", fmt.Sprintf(`
import mailbox, imaplib, email
seen = {}
for m in mailbox.mbox(%q):
    s = m["Subject"]
    body = m.get_payload()
    assert body.rstrip("\n").endswith("end of " + s), s
    seen[s] = seen.get(s, 0) + 1
m = imaplib.IMAP4("127.0.0.1", %d)
m.login(%q, "pw")
m.select("INBOX", readonly=True)
_, data = m.search(None, "ALL")
imap = {}
for n in data[0].split():
    _, r = m.fetch(n, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    s = email.message_from_bytes(r[0][1])["Subject"]
    imap[s] = imap.get(s, 0) + 1
print(len(seen), sum(seen.values()), len(imap), sum(imap.values()))
`, box, imapPort, user))
	out, err := check.CombinedOutput()
	if err != nil {
		logText, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		t.Fatalf("checking the mailbox: %v\n%s\ndovecot.log:\n%s", err, out, logText)
	}
	want := fmt.Sprintf("%d %d %d %d", clients*each, clients*each, clients*each, clients*each)
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("distinct/total messages (mbox, IMAP) = %s, want %s", got, want)
	}
	logText, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
	for _, bad := range []string{"orrupt", "was modified while we were reading", "Unexpectedly lost From-line"} {
		if strings.Contains(string(logText), bad) {
			t.Errorf("Dovecot logged %q:\n%s", bad, logText)
		}
	}
}
