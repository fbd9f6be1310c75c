package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/ldapmap/slapdtest"
)

// ldapDownLDIF: the alias the test sends to, kept in the directory.
const ldapDownLDIF = `dn: sendmailMTAKey=staff,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: staff
sendmailMTAAliasValue: root
`

// TestLDAPDown is issue 14's "LDAP down" fault on one host: the aliases
// are in LDAP and the directory server is stopped. A recipient that needs
// the directory is refused for now with 451 4.3.0 (never a 5xx, never a
// bounce): the client keeps the message, and nothing of the transaction
// is queued. A local submission to it is queued with the recipient
// unexpanded (exit 0, as sendmail queues it up), deferred by each queue
// run without a DSN. Once the directory is back the queue run expands
// and delivers it, and the SMTP client's retry is accepted; each message
// arrives once.
func TestLDAPDown(t *testing.T) {
	ldap := slapdtest.Start(t, "", ldapDownLDIF)
	r := newRoot(t, "O DeliveryMode=background",
		"O LDAPDefaultSpec=-H "+ldap.URI+" -b "+slapdtest.Suffix,
		"O AliasFile=ldap: -k (&(objectClass=sendmailMTAAliasObject)(sendmailMTAKey=%0)) -v sendmailMTAAliasValue")
	ldap.Stop()
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()

	session := func(id string) []string {
		return runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<staff@localhost>",
			"DATA", bodyOf(id, 200)+".", "QUIT")
	}
	rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<staff@localhost>", "QUIT")
	if rs[2] != "451 4.3.0 <staff@localhost>... Deferred: alias database unavailable" {
		t.Errorf("RCPT to an LDAP alias with the directory down: %q", rs[2])
	}
	if n := len(queuedFiles(t, r)); n != 0 {
		t.Errorf("%d jobs queued while the directory was down", n)
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(r.path("mail/root")); err == nil {
		b, _ := os.ReadFile(r.path("mail/root"))
		t.Fatalf("mail (a bounce?) while the directory was down:\n%s", b)
	}

	// A local submission to the alias (as cron sends one): queued with the
	// recipient unexpanded, exit 0, nothing in dead.letter, as sendmail
	// queues such a recipient up; each queue run defers it, no DSN.
	home := t.TempDir()
	submit := exec.Command(binary(t), "-C", r.cf, "-odq", "-f", "sender@client.example", "staff")
	submit.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "TZ=UTC"}
	submit.Stdin = strings.NewReader("Message-Id: <ldap-queued@proof.test>\nSubject: queued while down\n\nbody of the queued one\nEND <ldap-queued@proof.test>\n")
	if out, err := submit.CombinedOutput(); err != nil {
		t.Fatalf("local submission with the directory down: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "dead.letter")); err == nil {
		t.Errorf("the submission went to dead.letter")
	}
	qfs := queuedFiles(t, r)
	if len(qfs) != 1 {
		t.Fatalf("%d jobs queued by the submission, want 1", len(qfs))
	}
	for _, qf := range qfs {
		if !regexp.MustCompile(`(?m)^RP[A-Z]*X[A-Z]*:staff$`).MatchString(qf) {
			t.Errorf("the recipient is not queued unexpanded:\n%s", qf)
		}
	}
	logf := filepath.Join(t.TempDir(), "mail.log")
	for i := 0; i < 2; i++ {
		if got := run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf); got.code != 0 {
			t.Fatalf("queue run %d: %+v", i, got)
		}
	}
	log, _ := os.ReadFile(logf)
	if !strings.Contains(string(log), "to=staff,") || !strings.Contains(string(log), "stat=Deferred: alias database unavailable") || strings.Contains(string(log), "DSN:") {
		t.Errorf("queue runs with the directory down:\n%s", log)
	}
	if n := len(queuedFiles(t, r)); n != 1 {
		t.Fatalf("after the runs: %d jobs queued, want the message still there", n)
	}
	if _, err := os.Stat(r.path("mail/root")); err == nil {
		b, _ := os.ReadFile(r.path("mail/root"))
		t.Fatalf("mail (a bounce?) while the directory was down:\n%s", b)
	}

	// The directory back: the queued message is delivered by the next
	// run, once; the SMTP client's retry is accepted and delivered once.
	ldap.Start()
	if got := run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf); got.code != 0 {
		t.Fatalf("queue run after the directory came back: %+v", got)
	}
	box, _ := os.ReadFile(r.path("mail/root"))
	if n := strings.Count(string(box), "Message-Id: <ldap-queued@proof.test>"); n != 1 || !strings.Contains(string(box), "body of the queued one\n") {
		log, _ := os.ReadFile(logf)
		t.Errorf("the queued message after the directory came back: %d copies; mailbox:\n%s\nlog:\n%s", n, box, log)
	}
	if n := len(queuedFiles(t, r)); n != 0 {
		t.Errorf("%d jobs still queued after the directory came back", n)
	}
	rs = session("ldap-back")
	if !strings.HasPrefix(rs[2], "250 ") || !strings.HasPrefix(rs[4], "250 ") {
		t.Fatalf("after the directory came back: %q", rs)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		box, _ := os.ReadFile(r.path("mail/root"))
		if strings.Contains(string(box), "END <ldap-back@proof.test>") {
			if n := strings.Count(string(box), "Message-Id: <ldap-back@proof.test>"); n != 1 {
				t.Errorf("mailbox:\n%s", box)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered after the directory came back; mailbox:\n%s", box)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
