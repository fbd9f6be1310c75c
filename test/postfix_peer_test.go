package test

// A private Postfix instance as a next hop or as the comparison in the
// relay benchmark: its own main.cf and master.cf in a temporary directory
// (postfix -c), its queue, data and mailboxes there too, listening on one
// loopback address at port 25. The machine's /etc/postfix is only read
// (postfix-files, for `postfix check`) and its queue and /var/mail are
// never used. master runs in the foreground as a child of the test and
// is stopped at cleanup.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// postfixConfig describes one instance.
type postfixConfig struct {
	ip string // listens on ip:25
	// domain's recipients are delivered by virtual(8) into mbox files
	// <dir>/vmail/<local part>, one per mailboxes entry; others are
	// refused at RCPT (550 5.1.1 User unknown in virtual mailbox table).
	domain    string
	mailboxes []string
	// relayhost takes all other mail, Postfix's own DSNs included
	// ("[127.0.0.1]:2525"); never empty, so nothing is looked up in the DNS.
	relayhost string
	extra     []string // more main.cf lines
}

type postfixPeer struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
}

// postfixBinaries returns the postfix command and the daemon directory
// (master, smtpd, ...), or skips.
func postfixBinaries(t testing.TB) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: Postfix's master runs its daemons as the postfix user")
	}
	bin, err := exec.LookPath("postfix")
	if err != nil {
		if _, err = os.Stat("/usr/sbin/postfix"); err != nil {
			t.Skip("postfix not installed")
		}
		bin = "/usr/sbin/postfix"
	}
	out, err := exec.Command(filepath.Join(filepath.Dir(bin), "postconf"), "-d", "-h", "daemon_directory").Output()
	daemons := strings.TrimSpace(string(out))
	if err != nil || daemons == "" {
		daemons = "/usr/lib/postfix/sbin"
	}
	if _, err := os.Stat(filepath.Join(daemons, "master")); err != nil {
		t.Skipf("postfix's master not found in %s", daemons)
	}
	if _, err := user.Lookup("postfix"); err != nil {
		t.Skip("no postfix user")
	}
	return bin, daemons
}

// postfixServices is master.cf without the smtpd listener: every daemon
// unchrooted (the instance's files are outside any chroot).
const postfixServices = `pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
`

func startPostfix(t testing.TB, c postfixConfig) *postfixPeer {
	t.Helper()
	bin, daemons := postfixBinaries(t)
	pu, _ := user.Lookup("postfix")
	// Not t.TempDir: the daemons run as postfix and must reach the
	// directory, and Postfix's socket paths must stay short.
	dir, err := os.MkdirTemp("", "posthorn-pf-")
	if err != nil {
		t.Fatal(err)
	}
	p := &postfixPeer{dir: dir, done: make(chan struct{})}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	for _, d := range []string{"etc", "queue", "data", "vmail"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"data", "vmail"} {
		os.Chown(filepath.Join(dir, d), atoi(pu.Uid), atoi(pu.Gid))
	}
	var vmailbox strings.Builder
	for _, m := range c.mailboxes {
		fmt.Fprintf(&vmailbox, "%s@%s %s\n", m, c.domain, m)
	}
	p.write(t, "etc/vmailbox", vmailbox.String())
	main := []string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "queue"),
		"data_directory = " + filepath.Join(dir, "data"),
		"mail_owner = postfix",
		"myhostname = mx." + c.domain,
		"mydomain = " + c.domain,
		"myorigin = $mydomain",
		"mydestination =",
		// The listener's address is in master.cf; Postfix wants
		// inet_interfaces to be addresses of an interface, and
		// 127.0.2x.y only routes to lo.
		"inet_interfaces = loopback-only",
		"inet_protocols = ipv4",
		"mynetworks = 127.0.0.0/8",
		// No DNS at all: no client name lookups, the relayhost by address.
		"smtpd_peername_lookup = no",
		"smtp_dns_support_level = disabled",
		"relayhost = " + c.relayhost,
		"virtual_mailbox_domains = " + c.domain,
		"virtual_mailbox_base = " + filepath.Join(dir, "vmail"),
		"virtual_mailbox_maps = texthash:" + filepath.Join(dir, "etc/vmailbox"),
		"virtual_uid_maps = static:" + pu.Uid,
		"virtual_gid_maps = static:" + pu.Gid,
		"alias_maps =",
		"alias_database =",
		"biff = no",
		"maillog_file_prefixes = " + dir,
		"maillog_file = " + filepath.Join(dir, "postfix.log"),
	}
	p.write(t, "etc/main.cf", strings.Join(append(main, c.extra...), "\n")+"\n")
	p.write(t, "etc/master.cf", c.ip+":25 inet n - n - - smtpd\n"+postfixServices)

	// postfix check creates the queue's directories with their owners.
	check := exec.Command(bin, "-c", filepath.Join(dir, "etc"), "check")
	if out, err := check.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "postfix.log"))
		t.Fatalf("postfix check: %v %s\n%s", err, out, log)
	}
	p.cmd = exec.Command(filepath.Join(daemons, "master"), "-c", filepath.Join(dir, "etc"), "-s")
	p.cmd.Stdout, p.cmd.Stderr = os.Stderr, os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("postfix log:\n%s", p.logText())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if conn, err := net.DialTimeout("tcp4", c.ip+":25", time.Second); err == nil {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(line, "220 ") {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("postfix master exited:\n%s", p.logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix does not answer on %s:25:\n%s", c.ip, p.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *postfixPeer) write(t testing.TB, rel, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(p.dir, rel), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (p *postfixPeer) mailbox(local string) string {
	data, _ := os.ReadFile(filepath.Join(p.dir, "vmail", local))
	return string(data)
}

func (p *postfixPeer) logText() string {
	data, _ := os.ReadFile(filepath.Join(p.dir, "postfix.log"))
	return string(data)
}

func atoi(s string) int {
	n := 0
	fmt.Sscan(s, &n)
	return n
}
