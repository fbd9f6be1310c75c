package mta

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/ldapmap/slapdtest"
	"github.com/posthorn/posthorn/queue/runner"
)

const ldapAliases = `dn: sendmailMTAKey=staff,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: staff
sendmailMTAAliasValue: root
sendmailMTAAliasValue: postmaster

dn: sendmailMTAKey=postmaster,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: postmaster
sendmailMTAAliasValue: root

dn: sendmailMTAKey=team,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: team
sendmailMTAAliasValue: root
`

// Aliases in LDAP (sendmail's AliasFile=ldap: with LDAPDefaultSpec) are
// expanded at acceptance; with the directory stopped, a recipient is
// taken unexpanded and deferred, nothing is bounced; once it is back the
// queue run expands and delivers it.
func TestLDAPAliases(t *testing.T) {
	srv := slapdtest.Start(t, "", ldapAliases)
	w := newWorld(t, "", "O LDAPDefaultSpec=-H "+srv.URI+" -b "+slapdtest.Suffix,
		"O AliasFile=ldap: -k (&(objectClass=sendmailMTAAliasObject)(sendmailMTAKey=%0)) -v sendmailMTAAliasValue")
	msg := "Subject: via ldap\r\n\r\nbody\r\n"
	if err := w.send("sender@client.example", []string{"staff@localhost"}, msg); err != nil {
		t.Fatal(err)
	}
	w.waitFor("the mailbox", func() bool { return strings.Contains(w.mailbox("root"), "Subject: via ldap") })
	if n := strings.Count(w.mailbox("root"), "Subject: via ldap"); n != 1 {
		t.Errorf("%d copies", n)
	}

	srv.Stop()
	// The map's cache still knows staff for a while: send to a name it
	// has not seen. Taken, as sendmail takes it ("will queue"), and kept
	// queued, unexpanded, while the directory is down.
	if err := w.send("sender@client.example", []string{"team@localhost"}, "Subject: while down\r\n\r\nx\r\n"); err != nil {
		t.Fatalf("directory down: %v", err)
	}
	qf := func() string {
		names, _ := filepath.Glob(w.path("mqueue/qf*"))
		if len(names) != 1 {
			return ""
		}
		b, _ := os.ReadFile(names[0])
		return string(b)
	}
	w.waitFor("the delivery attempt", func() bool { return strings.Contains(qf(), "\nMDeferred: alias database unavailable\n") })
	if !strings.Contains(qf(), "X:<team@localhost>\n") || strings.Contains(w.mailbox("root"), "Subject: while down") {
		t.Fatalf("directory down: qf\n%s\nmailbox:\n%s", qf(), w.mailbox("root"))
	}
	srv.Start()
	if _, err := w.run.Runner.Run(context.Background(), runner.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	w.waitFor("the message queued while the directory was down", func() bool { return strings.Contains(w.mailbox("root"), "Subject: while down") })
	if n := strings.Count(w.mailbox("root"), "Subject: while down"); n != 1 || w.queued() != 0 {
		t.Errorf("%d copies, %d queued", n, w.queued())
	}
}
