package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/ldapmap/slapdtest"
)

// The medium site of the README, end to end on 127.0.61.x, every engine
// private to the test:
//
//	test ─SMTP─► out (127.0.61.5:25) ─MX lookup (dnsmasq)─► mx1 (MX 10, .1:25) / mx2 (MX 20, .2:25)
//	                                                            └─mailertable─► home (.3:25)
//	home: aliases in OpenLDAP (slapd), local mailer LMTP ─► Dovecot ─► IMAP / POP3 (Python)
//
// Faults while mail flows: mx1 killed (mail arrives through mx2), slapd
// stopped (home answers 451, mx2 keeps the mail, delivers after),
// Dovecot stopped (home keeps the mail, delivers after). Every message
// the test had acknowledged is in the store exactly once.

const siteLDIF = `dn: sendmailMTAKey=team,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: team
sendmailMTAAliasValue: alice
sendmailMTAAliasValue: bob

dn: sendmailMTAKey=carol,dc=example,dc=test
objectClass: sendmailMTAAliasObject
sendmailMTAKey: carol
sendmailMTAAliasValue: bob
`

type siteHost struct {
	name, ip string
	r        *root
	cmd      *exec.Cmd
}

func needPrograms(t *testing.T, progs ...string) {
	t.Helper()
	for _, p := range progs {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not installed", p)
		}
	}
}

func TestMediumSite(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: port 25 on several loopback addresses, Dovecot")
	}
	needPrograms(t, "/usr/sbin/dnsmasq", "/usr/sbin/dovecot", "/usr/lib/dovecot/lmtp", "/usr/lib/dovecot/imap", "/usr/lib/dovecot/pop3", "/usr/bin/python3")
	if slapdtest.Binary() == "" {
		t.Skip("slapd not installed")
	}
	for _, ip := range []string{"127.0.61.1", "127.0.61.2", "127.0.61.3", "127.0.61.5"} {
		ln, err := net.Listen("tcp", ip+":25")
		if err != nil {
			t.Skipf("port 25 on %s: %v", ip, err)
		}
		ln.Close()
	}
	// Dovecot delivers as the mail user: the store must be reachable by
	// it, which t.TempDir's 0700 parents are not.
	base, err := os.MkdirTemp("", "posthorn-site-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	t.Cleanup(func() { os.RemoveAll(base) })

	ldap := slapdtest.Start(t, "", siteLDIF)
	dns := startDnsmasq(t, base)
	dove := startDovecot(t, base)

	common := []string{"O DeliveryMode=background", "O ResolverServers=" + dns, "O Timeout.iconnect=5s", "O Timeout.connect=5s",
		"O HostStatusDirectory=", "O ConnectionCacheSize=-1"}
	host := func(name, ip string, extra ...string) *siteHost {
		r := newRoot(t, append(append([]string{
			fmt.Sprintf("O DaemonPortOptions=Name=MTA, Family=inet, Addr=%s, Port=25", ip),
			"Dj" + name, "Cw" + name,
		}, common...), extra...)...)
		writeAliases(t, r, "postmaster: root\n")
		h := &siteHost{name: name, ip: ip, r: r}
		h.start(t)
		return h
	}
	mxLines := []string{"CRsite.test"}
	mx1 := host("mx1.site.test", "127.0.61.1", mxLines...)
	mx2 := host("mx2.site.test", "127.0.61.2", mxLines...)
	for _, h := range []*siteHost{mx1, mx2} {
		os.WriteFile(h.r.path("etc/mailertable"), []byte("site.test esmtp:[127.0.61.3]\n"), 0o644)
	}
	home := host("home.site.test", "127.0.61.3", "Cwsite.test",
		"O LDAPDefaultSpec=-H "+ldap.URI+" -b "+slapdtest.Suffix,
		"O AliasFile=ldap: -k (&(objectClass=sendmailMTAAliasObject)(sendmailMTAKey=%0)) -v sendmailMTAAliasValue",
		"Mlocal, P=[IPC], F=lsDFMA5:/|@qSPfhn9z, S=EnvFromL, R=EnvToL/HdrToL, T=DNS/RFC822/SMTP, A=FILE "+dove.lmtp)
	out := host("out.site.test", "127.0.61.5")
	// mx1 and mx2 must be up before out tries them.
	for _, h := range []*siteHost{mx1, mx2, home, out} {
		c, _, _ := waitGreeting(t, h.ip+":25")
		c.Close()
	}

	acked := map[string][]string{} // subject -> mailboxes it must reach
	send := func(subject string, to ...string) {
		t.Helper()
		msg := fmt.Sprintf("From: <sender@client.example>\r\nTo: %s\r\nSubject: %s\r\nMessage-Id: <%s@client.example>\r\n\r\nbody of %s\r\n",
			strings.Join(to, ", "), subject, subject, subject)
		var rcpts []string
		for _, r := range to {
			rcpts = append(rcpts, r+"@site.test")
		}
		if err := sendMail(out.ip+":25", "sender@client.example", rcpts, msg); err != nil {
			t.Fatalf("%s: %v", subject, err)
		}
		// One copy per mailbox, however many of the recipients lead there.
		boxes := map[string]bool{}
		for _, r := range to {
			switch r {
			case "team":
				boxes["alice"], boxes["bob"] = true, true
			case "carol":
				boxes["bob"] = true
			default:
				boxes[r] = true
			}
		}
		for b := range boxes {
			acked[subject] = append(acked[subject], b)
		}
	}
	waitStore := func(what string) {
		t.Helper()
		deadline := time.Now().Add(90 * time.Second)
		for {
			if missing := missingFromStore(t, dove, acked, false); missing == "" {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: not in the store: %s\nhome queue:\n%s", what, missing, run(t, binary(t), "", "-C", home.r.cf, "-bp").stdout)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	for i := 0; i < 5; i++ {
		send(fmt.Sprintf("normal-%d", i), "alice", "team")
	}
	waitStore("normal flow")

	// MX 10 dies: the mail goes to MX 20.
	mx1.kill(t)
	for i := 0; i < 5; i++ {
		send(fmt.Sprintf("mx1-down-%d", i), "bob")
	}
	waitStore("mx1 down")
	if n := queueCount(mx1.r); n != 0 {
		t.Errorf("mx1 holds %d jobs", n)
	}

	// The directory stops: home cannot expand carol and answers 451;
	// mx2 keeps the messages until it is back.
	ldap.Stop()
	for i := 0; i < 3; i++ {
		send(fmt.Sprintf("ldap-down-%d", i), "carol")
	}
	siteWait(t, "mx2 to hold the mail for carol", func() bool { return queueCount(mx2.r) >= 3 })
	if q := run(t, binary(t), "", "-C", mx2.r.cf, "-bp").stdout; !strings.Contains(q, "451 4.3.0") {
		t.Errorf("mx2's queue does not show home's 451:\n%s", q)
	}
	if missing := missingFromStore(t, dove, acked, false); !strings.Contains(missing, "ldap-down-0") {
		t.Fatalf("delivered while the directory was down (missing: %q)", missing)
	}
	ldap.Start()
	waitStore("after the directory came back")

	// The store stops: home keeps the mail until it is back.
	dove.stop(t)
	for i := 0; i < 3; i++ {
		send(fmt.Sprintf("store-down-%d", i), "alice")
	}
	siteWait(t, "home to hold the mail for the store", func() bool { return queueCount(home.r) >= 3 })
	dove.start(t)
	waitStore("after the store came back")
	siteWait(t, "empty queues", func() bool {
		return queueCount(mx2.r)+queueCount(home.r)+queueCount(out.r) == 0
	})
	if dup := missingFromStore(t, dove, acked, true); dup != "" {
		t.Errorf("not exactly once: %s", dup)
	}
}

func (h *siteHost) start(t *testing.T) {
	h.cmd = startDaemon(t, h.r, "-q2s")
}

func (h *siteHost) kill(t *testing.T) {
	h.cmd.Process.Signal(syscall.SIGKILL)
	h.cmd.Wait()
}

func queueCount(r *root) int {
	qfs, _ := filepath.Glob(r.path("spool/mqueue/qf*"))
	return len(qfs)
}

func siteWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startDnsmasq serves the site's records on a free port and returns its
// address: MX 10 mx1, MX 20 mx2 for site.test.
func startDnsmasq(t *testing.T, base string) string {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command("/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address=127.0.0.1", fmt.Sprintf("--port=%d", port), "--pid-file="+filepath.Join(base, "dnsmasq.pid"),
		"--user=root", "--log-facility=-",
		"--mx-host=site.test,mx1.site.test,10", "--mx-host=site.test,mx2.site.test,20",
		"--host-record=mx1.site.test,127.0.61.1", "--host-record=mx2.site.test,127.0.61.2",
		"--host-record=home.site.test,127.0.61.3", "--host-record=out.site.test,127.0.61.5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() })
	time.Sleep(300 * time.Millisecond)
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// dovecot is a private Dovecot: its own configuration, base directory,
// users (passwd-file: alice, bob) and maildirs, LMTP on a Unix socket,
// IMAP and POP3 on 127.0.61.3.
type dovecot struct {
	dir, conf, lmtp string
	imap, pop3      int
	cmd             *exec.Cmd
}

func startDovecot(t *testing.T, base string) *dovecot {
	t.Helper()
	d := &dovecot{dir: filepath.Join(base, "dovecot"), imap: freePort(t), pop3: freePort(t)}
	for _, sub := range []string{"run", "state", "mail"} {
		os.MkdirAll(filepath.Join(d.dir, sub), 0o755)
	}
	os.Chown(filepath.Join(d.dir, "mail"), 8, 8)
	d.lmtp = filepath.Join(d.dir, "run", "lmtp-store")
	d.conf = filepath.Join(d.dir, "dovecot.conf")
	users := "alice:{PLAIN}alicepw::::::\nbob:{PLAIN}bobpw::::::\n"
	os.WriteFile(filepath.Join(d.dir, "users"), []byte(users), 0o644)
	conf := fmt.Sprintf(`protocols = imap pop3 lmtp
listen = 127.0.61.3
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:%[1]s/mail/%%u
mail_fsync = always
passdb {
  driver = passwd-file
  args = %[1]s/users
}
userdb {
  driver = static
  args = uid=8 gid=8 home=%[1]s/mail/%%u
}
service imap-login {
  inet_listener imap {
    port = %[2]d
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = %[3]d
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  unix_listener %[4]s {
    mode = 0666
  }
}
service auth {
  unix_listener auth-userdb {
    mode = 0666
  }
}
`, d.dir, d.imap, d.pop3, d.lmtp)
	os.WriteFile(d.conf, []byte(conf), 0o644)
	d.start(t)
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *dovecot) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command("/usr/sbin/dovecot", "-F", "-c", d.conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.cmd = cmd
	siteWait(t, "Dovecot's LMTP socket", func() bool {
		c, err := net.Dial("unix", d.lmtp)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func (d *dovecot) stop(t *testing.T) {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()
	d.cmd = nil
	os.Remove(d.lmtp)
}

// missingFromStore reads every mailbox over IMAP (alice) and POP3 (bob)
// with Python's imaplib and poplib, and says which acknowledged subjects
// are missing ("" when none); exact also reports any subject found more
// often than it was sent to that mailbox.
func missingFromStore(t *testing.T, d *dovecot, acked map[string][]string, exact bool) string {
	t.Helper()
	script := fmt.Sprintf(`
import imaplib, poplib, email, sys
def imap(user, pw):
    m = imaplib.IMAP4("127.0.61.3", %d)
    m.login(user, pw)
    m.select("INBOX", readonly=True)
    _, data = m.search(None, "ALL")
    out = []
    for n in data[0].split():
        _, msg = m.fetch(n, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out.append(email.message_from_bytes(msg[0][1])["Subject"])
    m.logout()
    return out
def pop(user, pw):
    p = poplib.POP3("127.0.61.3", %d)
    p.user(user); p.pass_(pw)
    out = []
    for i in range(1, len(p.list()[1]) + 1):
        lines = p.top(i, 0)[1]
        out.append(email.message_from_bytes(b"\r\n".join(lines))["Subject"])
    p.quit()
    return out
for s in imap("alice", "alicepw"): print("alice", s)
for s in pop("bob", "bobpw"): print("bob", s)
`, d.imap, d.pop3)
	outb, err := exec.Command("python3", "-c", script).CombinedOutput()
	if err != nil {
		return "store not readable: " + err.Error() + ": " + string(outb)
	}
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(outb)), "\n") {
		if l != "" {
			got[l]++
		}
	}
	want := map[string]int{}
	for subj, boxes := range acked {
		for _, b := range boxes {
			want[b+" "+subj]++
		}
	}
	var bad []string
	for k, n := range want {
		if got[k] < n || exact && got[k] != n {
			bad = append(bad, fmt.Sprintf("%s (%d of %d)", k, got[k], n))
		}
	}
	for k, n := range got {
		if exact && want[k] == 0 {
			bad = append(bad, fmt.Sprintf("%s (%d, never sent)", k, n))
		}
	}
	return strings.Join(bad, ", ")
}
