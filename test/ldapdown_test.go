package test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/ldapmap/slapdtest"
)

// ldapDownLDIF: the alias the test sends to, kept in the directory.
const ldapDownLDIF = `dn: sendmailMTAKey=staff,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: staff
sendmailMTAAliasValue: root
`

// TestLDAPDown is issue 14's "LDAP down" fault on one host: the aliases
// are in LDAP and the directory server is stopped. As in sendmail, a
// recipient that needs the directory is accepted and queued up: over SMTP
// "250 2.1.5 <rcpt>... Recipient ok (will queue)" and the message taken,
// from the command line (as cron sends mail) exit 0 with nothing in
// dead.letter; each job holds the recipient unexpanded (R flag X). Every
// queue run defers it ("Deferred: alias database unavailable"), with no
// DSN and no mail to anyone. Once the directory is back, the next queue
// run expands and delivers each message, once.
func TestLDAPDown(t *testing.T) {
	ldap := slapdtest.Start(t, "", ldapDownLDIF)
	r := newRoot(t, "O DeliveryMode=queueonly", // the queue runs are the test's
		"O LDAPDefaultSpec=-H "+ldap.URI+" -b "+slapdtest.Suffix,
		"O AliasFile=ldap: -k (&(objectClass=sendmailMTAAliasObject)(sendmailMTAKey=%0)) -v sendmailMTAAliasValue")
	ldap.Stop()
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()

	rs := runSession(t, r.addr(), "EHLO client.example", "MAIL FROM:<sender@client.example>", "RCPT TO:<staff@localhost>",
		"DATA", bodyOf("ldap-smtp", 200)+".", "QUIT")
	if rs[2] != "250 2.1.5 <staff@localhost>... Recipient ok (will queue)" || !strings.HasPrefix(rs[4], "250 2.0.0 ") {
		t.Fatalf("SMTP to an LDAP alias with the directory down: %q", rs)
	}

	home := t.TempDir()
	submit := exec.Command(binary(t), "-C", r.cf, "-odq", "-f", "sender@client.example", "staff")
	submit.Env = []string{"HOME=" + home, "PATH=/usr/bin:/bin", "TZ=UTC"}
	submit.Stdin = strings.NewReader("Message-Id: <ldap-local@proof.test>\nSubject: queued while down\n\nEND <ldap-local@proof.test>\n")
	if out, err := submit.CombinedOutput(); err != nil {
		t.Fatalf("local submission with the directory down: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(home, "dead.letter")); err == nil {
		t.Errorf("the submission went to dead.letter")
	}

	qfs := queuedFiles(t, r)
	if len(qfs) != 2 {
		t.Fatalf("%d jobs queued, want the two messages", len(qfs))
	}
	for name, qf := range qfs {
		if !regexp.MustCompile(`(?m)^RP[A-Z]*X[A-Z]*:(staff|<staff@localhost>)$`).MatchString(qf) {
			t.Errorf("%s: the recipient is not queued unexpanded:\n%s", name, qf)
		}
	}
	logf := filepath.Join(t.TempDir(), "mail.log")
	for i := 0; i < 2; i++ {
		if got := run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf); got.code != 0 {
			t.Fatalf("queue run %d: %+v", i, got)
		}
	}
	log, _ := os.ReadFile(logf)
	if strings.Count(string(log), "stat=Deferred: alias database unavailable") != 4 || strings.Contains(string(log), "DSN:") {
		t.Errorf("two queue runs with the directory down:\n%s", log)
	}
	if n := len(queuedFiles(t, r)); n != 2 {
		t.Fatalf("after the runs: %d jobs queued, want both still there", n)
	}
	if b, err := os.ReadFile(r.path("mail/root")); err == nil {
		t.Fatalf("mail (a bounce?) while the directory was down:\n%s", b)
	}

	// The directory back: one queue run delivers both, once each.
	ldap.Start()
	if got := run(t, binary(t), "", "-C", r.cf, "-q", "-X", logf); got.code != 0 {
		t.Fatalf("queue run after the directory came back: %+v", got)
	}
	box, _ := os.ReadFile(r.path("mail/root"))
	for _, id := range []string{"ldap-smtp", "ldap-local"} {
		if n := strings.Count(string(box), "END <"+id+"@proof.test>"); n != 1 {
			log, _ := os.ReadFile(logf)
			t.Errorf("%s after the directory came back: %d copies; mailbox:\n%s\nlog:\n%s", id, n, box, log)
		}
	}
	if n := len(queuedFiles(t, r)); n != 0 {
		t.Errorf("%d jobs still queued after the directory came back", n)
	}
}
