package test

import (
	"os"
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
// is queued. Once
// the directory is back the client's retry is accepted and delivered,
// once. (Aliases are expanded at acceptance, so a job already queued
// never needs the directory.)
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

	// The directory back: the retry is accepted and delivered once.
	ldap.Start()
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
