package test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/milter/miltertest"
	"github.com/posthorn/posthorn/queue"
)

// queuedJobs waits for n jobs in the root's queue and returns them with
// their message text (qf headers, a blank line, the df).
func queuedJobs(t *testing.T, r *root, n int) ([]*queue.Job, []string) {
	t.Helper()
	dir := r.path("spool/mqueue")
	deadline := time.Now().Add(20 * time.Second)
	for {
		qfs, _ := filepath.Glob(filepath.Join(dir, "qf*"))
		if len(qfs) >= n || time.Now().After(deadline) {
			var jobs []*queue.Job
			var texts []string
			for _, qf := range qfs {
				id := strings.TrimPrefix(filepath.Base(qf), "qf")
				data, err := os.ReadFile(qf)
				if err != nil {
					t.Fatal(err)
				}
				j, err := queue.Parse(id, data)
				if err != nil {
					t.Fatal(err)
				}
				df, err := os.ReadFile(filepath.Join(dir, "df"+id))
				if err != nil {
					t.Fatal(err)
				}
				var b strings.Builder
				for _, h := range j.Headers {
					if h.Name == "Return-Path" {
						continue
					}
					b.WriteString(h.Name + ":" + h.Value + "\n")
				}
				b.WriteString("\n")
				b.Write(df)
				jobs = append(jobs, j)
				texts = append(texts, b.String())
			}
			if len(qfs) < n {
				t.Fatalf("%d jobs queued, want %d", len(qfs), n)
			}
			return jobs, texts
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func milterRoot(t *testing.T, xlines ...string) *root {
	var names []string
	extra := []string{"O DeliveryMode=queueonly", "O Milter.LogLevel=12"}
	for _, x := range xlines {
		name, _, _ := strings.Cut(x, ",")
		names = append(names, name)
		extra = append(extra, "X"+x)
	}
	extra = append(extra, "O InputMailFilters="+strings.Join(names, ","))
	r := newRoot(t, extra...)
	if err := os.WriteFile(r.path("etc/aliases"), []byte("bob: root\ncarol: "+r.path("mail/carol.file")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := run(t, binary(t), "", "-C", r.cf, "-bi"); res.code != 0 {
		t.Fatalf("newaliases: %+v", res)
	}
	return r
}

const milterMsg = "From: Alice <alice@example.org>\r\nTo: bob@localhost\r\nSubject: signed\r\nDate: Fri, 04 Dec 2026 01:00:00 +0000\r\nMessage-Id: <m1@example.org>\r\n\r\nHello,\r\nthis is signed.\r\n"

// TestMilterFakeActions: posthorn applies a filter's end-of-message
// changes before the queue files are written, refuses what it rejects,
// and holds what it quarantines.
func TestMilterFakeActions(t *testing.T) {
	f, err := miltertest.Start(miltertest.Script{EOM: []miltertest.Packet{
		miltertest.AddHeader("X-Filtered", "by fake"),
		miltertest.ChangeHeader(1, "Subject", "[ok] signed"),
		miltertest.AddRcpt("<carol@localhost>"),
		miltertest.ReplaceBody("replaced\r\n"),
		miltertest.Quarantine("held for review"),
		miltertest.Continue(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := milterRoot(t, "fake, S="+f.Socket()+", F=T")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	if err := sendMail(r.addr(), "alice@example.org", []string{"bob@localhost"}, milterMsg); err != nil {
		t.Fatal(err)
	}
	jobs, texts := queuedJobs(t, r, 1)
	j, text := jobs[0], texts[0]
	if !strings.Contains(text, "X-Filtered: by fake\n") || !strings.Contains(text, "Subject: [ok] signed\n") || !strings.HasSuffix(text, "\nreplaced\n") {
		t.Errorf("queued message:\n%s", text)
	}
	if j.Quarantine != "held for review" {
		t.Errorf("quarantine %q", j.Quarantine)
	}
	var rcpts []string
	for _, rc := range j.Recipients {
		rcpts = append(rcpts, rc.Addr)
	}
	if len(rcpts) != 2 {
		t.Errorf("recipients %q, want bob and the added carol", rcpts)
	}
	var sent strings.Builder
	for _, conn := range f.Packets() {
		sent.WriteString(miltertest.Transcript(conn))
	}
	for _, want := range []string{`D Cj\0posthorn.test\0_\0localhost [127.0.0.1]\0{daemon_name}\0MTA\0{if_name}\0localhost\0{if_addr}\0127.0.0.1\0`,
		`D Mi\0` + j.ID + `\0`, `{mail_addr}\0alice@example.org\0`, `D R{rcpt_mailer}\0local\0`, `M <alice@example.org>\0BODY=8BITMIME\0`,
		`L Received\0from `, `E `} {
		if !strings.Contains(sent.String(), want) {
			t.Errorf("the filter did not get %s; it got:\n%s", want, sent.String())
		}
	}
	mq := run(t, binary(t), "", "-C", r.cf, "-bp")
	if !strings.Contains(mq.stdout, "QUARANTINE: held for review") {
		t.Errorf("mailq:\n%s", mq.stdout)
	}

	// a reject at end of message: nothing more is queued
	f.SetScript(miltertest.Script{EOM: []miltertest.Packet{miltertest.ReplyCode("554 5.7.1 not today")}})
	err = sendMail(r.addr(), "alice@example.org", []string{"bob@localhost"}, milterMsg)
	if err == nil || !strings.Contains(err.Error(), "not today") {
		t.Errorf("reject at eom: %v", err)
	}
	// a filter that is down with F=T: 451 at connect time
	f.Close()
	err = sendMail(r.addr(), "alice@example.org", []string{"bob@localhost"}, milterMsg)
	if err == nil || !strings.Contains(err.Error(), "451") {
		t.Errorf("filter down with F=T: %v, want 451", err)
	}
	if qfs, _ := filepath.Glob(r.path("spool/mqueue/qf*")); len(qfs) != 1 {
		t.Errorf("%d jobs queued, want only the first", len(qfs))
	}

	// a queue run leaves the quarantined job; -qQ delivers it
	if res := run(t, binary(t), "", "-C", r.cf, "-q"); res.code != 0 {
		t.Fatalf("-q: %+v", res)
	}
	if _, err := os.Stat(r.path("spool/mqueue/qf" + j.ID)); err != nil {
		t.Errorf("-q touched the quarantined job: %v", err)
	}
	if res := run(t, binary(t), "", "-C", r.cf, "-qQ"); res.code != 0 {
		t.Fatalf("-qQ: %+v", res)
	}
	if b, err := os.ReadFile(r.path("mail/root")); err != nil || !strings.Contains(string(b), "\nreplaced\n") {
		t.Errorf("root's mailbox after -qQ: %v\n%s", err, b)
	}
	// (the file recipient is deferred: the unprivileged delivery child
	// cannot run the test binary from its private directory)
	if data, err := os.ReadFile(r.path("spool/mqueue/qf" + j.ID)); err == nil {
		left, _ := queue.Parse(j.ID, data)
		if len(left.Recipients) != 1 || left.Quarantine != "held for review" {
			t.Errorf("after -qQ the job holds %+v", left.Recipients)
		}
	}
}

// safeTempDir makes a private directory in a path OpenDKIM accepts: it
// refuses files below a directory others can write to, such as /tmp.
func safeTempDir(t *testing.T) string {
	t.Helper()
	for _, base := range []func() (string, error){os.UserHomeDir, os.Getwd} {
		b, err := base()
		if err != nil {
			continue
		}
		d, err := os.MkdirTemp(b, ".posthorn-opendkim-")
		if err != nil {
			continue
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		return d
	}
	t.Skip("no directory OpenDKIM would accept")
	return ""
}

// startOpenDKIM runs opendkim in the foreground with conf and waits for
// its socket.
func startOpenDKIM(t *testing.T, dir, name, conf string, port int) {
	t.Helper()
	path := filepath.Join(dir, name+".conf")
	conf += fmt.Sprintf("Socket inet:%d@127.0.0.1\nSyslog no\nPidFile %s\n", port, filepath.Join(dir, name+".pid"))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("opendkim", "-f", "-x", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("opendkim %s does not listen: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMilterOpenDKIM: real OpenDKIM signs mail passing through posthorn
// with a key from opendkim-genkey; a second OpenDKIM in verify mode
// (public key from a file, no DNS) passes it, and fails it once the body
// is altered.
func TestMilterOpenDKIM(t *testing.T) {
	if _, err := exec.LookPath("opendkim"); err != nil {
		t.Skip("opendkim is not installed (apt-get install opendkim opendkim-tools)")
	}
	if _, err := exec.LookPath("opendkim-genkey"); err != nil {
		t.Skip("opendkim-genkey is not installed (opendkim-tools)")
	}
	dir := safeTempDir(t)
	if out, err := exec.Command("opendkim-genkey", "-D", dir, "-d", "example.org", "-s", "test").CombinedOutput(); err != nil {
		t.Fatalf("opendkim-genkey: %v\n%s", err, out)
	}
	txt, err := os.ReadFile(filepath.Join(dir, "test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// the zone file's TXT strings, joined: the record DNS would serve
	var record strings.Builder
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(string(txt), -1) {
		record.WriteString(m[1])
	}
	keys := filepath.Join(dir, "keys")
	if err := os.WriteFile(keys, []byte("test._domainkey.example.org "+record.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	signPort, verifyPort := freePort(t), freePort(t)
	startOpenDKIM(t, dir, "sign", fmt.Sprintf("Mode s\nDomain example.org\nSelector test\nKeyFile %s\nCanonicalization relaxed/simple\n", filepath.Join(dir, "test.private")), signPort)
	startOpenDKIM(t, dir, "verify", fmt.Sprintf("Mode v\nTestPublicKeys %s\nAuthservID verifier.test\n", keys), verifyPort)

	signer := milterRoot(t, fmt.Sprintf("opendkim, S=inet:%d@127.0.0.1, F=T, T=C:10s;S:10s;R:10s;E:1m", signPort))
	startDaemon(t, signer)
	c, _, _ := waitGreeting(t, signer.addr())
	c.Close()
	if err := sendMail(signer.addr(), "alice@example.org", []string{"bob@localhost"}, milterMsg); err != nil {
		t.Fatal(err)
	}
	_, texts := queuedJobs(t, signer, 1)
	signed := texts[0]
	if !strings.Contains(signed, "DKIM-Signature:") || !strings.Contains(signed, "d=example.org") || !strings.Contains(signed, "s=test") {
		t.Fatalf("no DKIM signature in the queued message:\n%s", signed)
	}

	verifier := milterRoot(t, fmt.Sprintf("verify, S=inet:%d@127.0.0.1, F=T", verifyPort))
	startDaemon(t, verifier)
	c, _, _ = waitGreeting(t, verifier.addr())
	c.Close()
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	if err := sendMail(verifier.addr(), "alice@example.org", []string{"bob@localhost"}, crlf(signed)); err != nil {
		t.Fatal(err)
	}
	altered := strings.Replace(signed, "this is signed.", "this is NOT what was signed.", 1)
	if err := sendMail(verifier.addr(), "alice@example.org", []string{"bob@localhost"}, crlf(altered)); err != nil {
		t.Fatal(err)
	}
	_, checked := queuedJobs(t, verifier, 2)
	var pass, fail int
	for _, m := range checked {
		ar := regexp.MustCompile(`(?m)^Authentication-Results: verifier.test;[^\n]*(\n\t[^\n]*)*`).FindString(m)
		switch {
		case strings.Contains(ar, "dkim=pass"):
			pass++
		case strings.Contains(ar, "dkim=fail"):
			fail++
		default:
			t.Errorf("no DKIM verdict in:\n%s", m)
		}
	}
	if pass != 1 || fail != 1 {
		t.Errorf("verdicts: %d pass, %d fail; want 1 and 1", pass, fail)
	}
}

// BenchmarkMilterAcceptance: smtp-source (20 sessions, 2 KiB, one
// connection per message) into the queue with 0, 1 and 2 filters that
// each add a header at end of message. Each SMTP session opens one
// connection per filter.
func BenchmarkMilterAcceptance(b *testing.B) {
	for _, n := range []int{0, 1, 2} {
		b.Run(fmt.Sprintf("filters=%d", n), func(b *testing.B) {
			var extra []string
			var names []string
			var fakes []*miltertest.Server
			for i := 0; i < n; i++ {
				f, err := miltertest.Start(miltertest.Script{EOM: []miltertest.Packet{miltertest.AddHeader("X-Bench", "1"), miltertest.Continue()}})
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				fakes = append(fakes, f)
				name := fmt.Sprintf("f%d", i)
				names = append(names, name)
				extra = append(extra, "X"+name+", S="+f.Socket()+", F=T")
			}
			if n > 0 {
				extra = append(extra, "O InputMailFilters="+strings.Join(names, ","))
			}
			r := newRoot(b, append(extra, "O DeliveryMode=queueonly", "O LogLevel=0")...)
			msgs := max(b.N, 1000)
			el := smtpSource(b, r, msgs)
			b.ReportMetric(float64(msgs)/el.Seconds(), "msgs/s")
			b.ReportMetric(0, "ns/op")
			for _, f := range fakes {
				b.ReportMetric(float64(f.Conns())/float64(msgs), "filterconns/msg")
			}
		})
	}
}

// TestMilterBs: sendmail -bs goes through the same filters (family
// unknown at connect), and a filter can refuse one recipient there.
func TestMilterBs(t *testing.T) {
	f, err := miltertest.Start(miltertest.Script{Reply: map[byte]miltertest.Packet{miltertest.CmdRcpt: miltertest.ReplyCode("550 5.7.1 not this one")}})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := milterRoot(t, "fake, S="+f.Socket())
	out := run(t, binary(t), "MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@localhost>\r\nQUIT\r\n", "-C", r.cf, "-bs")
	if !strings.Contains(out.stdout, "550 5.7.1 not this one") {
		t.Errorf("-bs transcript:\n%s", out.stdout)
	}
	// root's command-line submission queues without the filters, as
	// sendmail's: the filter sees no second connection
	if res := run(t, binary(t), "Subject: cmdline\n\nbody\n", "-C", r.cf, "-odq", "bob@localhost"); res.code != 0 {
		t.Fatalf("command-line submission: %+v", res)
	}
	queuedJobs(t, r, 1)
	f.Close()
	if n := len(f.Packets()); n != 1 {
		t.Errorf("the filter had %d connections, want only the -bs session's", n)
	}
	var connect string
	for _, p := range f.Packets()[0] {
		if p.Cmd == miltertest.CmdConnect {
			connect = miltertest.Transcript([]miltertest.Packet{p})
		}
	}
	if connect != "C localhost\\0U\n" {
		t.Errorf("connect packet %q, want localhost with family unknown", connect)
	}
}

// startDaemonProc starts a helper program for the test and stops it
// (SIGTERM) when the test ends, then waits for its port.
func startDaemonProc(t *testing.T, port int, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	// A private HOME: spamd makes ~/.spamassassin, which must not be the
	// machine's /root.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	deadline := time.Now().Add(90 * time.Second) // spamd compiles its rules first
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %d: %v", name, port, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestMilterSpamAssassin: real spamass-milter in front of a private spamd
// (local tests only): a normal message is queued with SpamAssassin's
// headers, GTUBE is refused at end of message.
func TestMilterSpamAssassin(t *testing.T) {
	for _, p := range []string{"spamd", "spamass-milter"} {
		if _, err := exec.LookPath(p); err != nil {
			t.Skipf("%s is not installed (apt-get install spamd spamass-milter)", p)
		}
	}
	dir := t.TempDir()
	spamdPort, milterPort := freePort(t), freePort(t)
	// As nobody: spamd running as root keeps per-user state (Bayes) in
	// root's real home, the machine's /root, whatever HOME says.
	startDaemonProc(t, spamdPort, "spamd", fmt.Sprintf("--listen=127.0.0.1:%d", spamdPort), "--allowed-ips=127.0.0.1",
		"--local", "--nouser-config", "--username=nobody", "--helper-home-dir="+dir, "--max-children=1", "--pidfile="+filepath.Join(dir, "spamd.pid"), "--syslog=stderr")
	startDaemonProc(t, milterPort, "spamass-milter", "-p", fmt.Sprintf("inet:%d@127.0.0.1", milterPort), "-r", "15",
		"--", "-d", "127.0.0.1", "-p", strconv.Itoa(spamdPort))

	r := milterRoot(t, fmt.Sprintf("spamassassin, S=inet:%d@127.0.0.1, F=T, T=C:10s;S:1m;R:1m;E:2m", milterPort))
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	if err := sendMail(r.addr(), "alice@example.org", []string{"bob@localhost"}, milterMsg); err != nil {
		t.Fatal(err)
	}
	gtube := strings.Replace(milterMsg, "this is signed.", "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X", 1)
	err := sendMail(r.addr(), "alice@example.org", []string{"bob@localhost"}, gtube)
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("GTUBE: %v, want a 550 from spamass-milter", err)
	}
	_, texts := queuedJobs(t, r, 1)
	if len(texts) != 1 || !strings.Contains(texts[0], "X-Spam-Status: No") {
		t.Errorf("queued:\n%s", strings.Join(texts, "\n----\n"))
	}
}

// TestMilterDownFlags: a filter that is down, through the daemon, per
// F=: F=4 greets with 421 and closes, F=R refuses every command with
// 550 5.7.1, F=T defers them with 451 4.3.2; nothing is queued.
func TestMilterDownFlags(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	for _, tc := range []struct{ flag, greeting, mail string }{
		{"4", "421 4.7.0 posthorn.test closing connection", ""},
		{"R", "554 ", "550 5.7.1 Command rejected"},
		{"T", "220 ", "451 4.3.2 Please try again later"},
	} {
		t.Run("F="+tc.flag, func(t *testing.T) {
			r := milterRoot(t, fmt.Sprintf("down, S=inet:%d@127.0.0.1, F=%s, T=C:2s", port, tc.flag))
			startDaemon(t, r)
			c, br, greeting := waitGreeting(t, r.addr())
			defer c.Close()
			if !strings.HasPrefix(greeting, tc.greeting) {
				t.Fatalf("greeting %q, want %q", greeting, tc.greeting)
			}
			fmt.Fprintf(c, "HELO client.example\r\n")
			helo, _ := br.ReadString('\n')
			if tc.mail == "" {
				if helo != "" {
					t.Errorf("after the 421 the server said %q", helo)
				}
				return
			}
			fmt.Fprintf(c, "MAIL FROM:<a@example.org>\r\n")
			if mail, _ := br.ReadString('\n'); !strings.HasPrefix(mail, tc.mail) {
				t.Errorf("HELO answered %q, MAIL %q, want %q", helo, mail, tc.mail)
			}
		})
	}
}
