package mta

import (
	"strings"
	"testing"

	"github.com/posthorn/posthorn/internal/ldapmap/slapdtest"
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
`

// Aliases in LDAP (sendmail's AliasFile=ldap: with LDAPDefaultSpec) are
// expanded at acceptance; with the directory stopped, RCPT gets 451 and
// nothing is bounced; once it is back the same recipient is taken.
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
	// The map's cache still knows staff for a while: ask for a name it
	// has not seen.
	err := w.send("sender@client.example", []string{"postmaster2@localhost"}, msg)
	if err == nil || !strings.Contains(err.Error(), "451") || !strings.Contains(err.Error(), "alias database unavailable") {
		t.Errorf("directory down: %v", err)
	}
	srv.Start()
	if err := w.send("sender@client.example", []string{"postmaster@localhost"}, "Subject: after\r\n\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("the second message", func() bool { return strings.Contains(w.mailbox("root"), "Subject: after") })
}

const ldapAccess = `dn: sendmailMTAKey=From:spammer@bad.example,dc=example,dc=test
objectClass: sendmailMTAMapObject
sendmailMTAMapName: access
sendmailMTAKey: From:spammer@bad.example
sendmailMTAMapValue: ERROR:"550 5.7.1 go away"

dn: sendmailMTAKey=To:blocked@localhost,dc=example,dc=test
objectClass: sendmailMTAMapObject
sendmailMTAMapName: access
sendmailMTAKey: To:blocked@localhost
sendmailMTAMapValue: REJECT
`

// FEATURE(access_db, LDAP): the access entries come from the directory,
// with the K line sendmail's m4 writes (its recursive attributes are not
// followed); with the directory stopped a sender it has not answered for
// is deferred with 451, not refused.
func TestLDAPAccess(t *testing.T) {
	srv := slapdtest.Start(t, "", ldapAccess)
	w := newWorld(t, "", "O LDAPDefaultSpec=-H "+srv.URI+" -b "+slapdtest.Suffix,
		"Kaccess ldap -1 -T<TMPF> -v sendmailMTAMapValue,sendmailMTAMapSearch:FILTER:sendmailMTAMapObject,sendmailMTAMapURL:URL:sendmailMTAMapObject -k (&(objectClass=sendmailMTAMapObject)(sendmailMTAMapName=access)(sendmailMTAKey=%0))")
	msg := "Subject: access\r\n\r\nbody\r\n"
	if err := w.send("spammer@bad.example", []string{"root@localhost"}, msg); err == nil || !strings.Contains(err.Error(), "550: go away") {
		t.Errorf("From: entry in LDAP: %v", err)
	}
	if err := w.send("friend@good.example", []string{"blocked@localhost"}, msg); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("To: REJECT in LDAP: %v", err)
	}
	if err := w.send("friend@good.example", []string{"root@localhost"}, msg); err != nil {
		t.Errorf("no entry: %v", err)
	}
	srv.Stop()
	err := w.send("other@unseen.example", []string{"root@localhost"}, msg)
	if err == nil || !strings.Contains(err.Error(), "451: Temporary system failure") {
		t.Errorf("directory down: %v, want 451 Temporary system failure", err)
	}
}

const ldapRoutes = `dn: sendmailMTAKey=info@virt.example,dc=example,dc=test
objectClass: sendmailMTAMapObject
sendmailMTAMapName: virtuser
sendmailMTAKey: info@virt.example
sendmailMTAMapValue: root

dn: cn=bob,dc=example,dc=test
objectClass: inetOrgPerson
objectClass: inetLocalMailRecipient
cn: bob
sn: bob
mailLocalAddress: bob@routed.example
mailRoutingAddress: root@localhost
`

// The virtusertable and FEATURE(ldap_routing) from the directory, with
// the K lines sendmail's m4 writes: a virtual address is delivered to its
// local target, a routed address to its mailRoutingAddress; an address
// of a virtual domain without an entry is refused.
func TestLDAPVirtuserAndRouting(t *testing.T) {
	srv := slapdtest.Start(t, "", ldapRoutes)
	w := newWorld(t, "", "O LDAPDefaultSpec=-H "+srv.URI+" -b "+slapdtest.Suffix,
		"C{VirtHost}virt.example", "C{LDAPRoute}routed.example",
		"Kvirtuser ldap -1 -T<TMPF> -v sendmailMTAMapValue,sendmailMTAMapSearch:FILTER:sendmailMTAMapObject,sendmailMTAMapURL:URL:sendmailMTAMapObject -k (&(objectClass=sendmailMTAMapObject)(sendmailMTAMapName=virtuser)(sendmailMTAKey=%0))",
		"Kldapmh ldap -1 -T<TMPF> -v mailHost -k (&(objectClass=inetLocalMailRecipient)(mailLocalAddress=%0))",
		"Kldapmra ldap -1 -T<TMPF> -v mailRoutingAddress -k (&(objectClass=inetLocalMailRecipient)(mailLocalAddress=%0))")
	if err := w.send("sender@client.example", []string{"info@virt.example"}, "Subject: virtual\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := w.send("sender@client.example", []string{"bob@routed.example"}, "Subject: routed\r\n\r\nbody\r\n"); err != nil {
		t.Fatal(err)
	}
	w.waitFor("both messages", func() bool {
		mb := w.mailbox("root")
		return strings.Contains(mb, "Subject: virtual") && strings.Contains(mb, "Subject: routed")
	})
	if err := w.send("sender@client.example", []string{"nobody@virt.example"}, "Subject: x\r\n\r\nx\r\n"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("virtual address without an entry: %v, want 550", err)
	}
}
