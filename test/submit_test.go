package test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Local submission: root's direct path into the queue and a user's
// hand-off to the MTA (-t, -bs), as issues 8 and 9 found them.

// headerBlock is the header of the first message in an mbox or a qf-less
// text: everything up to the first empty line.
func headerBlock(s string) string {
	if i := strings.Index(s, "\n\n"); i >= 0 {
		return s[:i+1]
	}
	return s
}

// issue8 is the message from issue 8, item 2.
const issue8 = "To: accalice, Bob <accbob@acc.test>\nCc: accdave\nBcc: acccarol\nSubject: x\n\nbody\n"

// TestSubmitBccAndAddresses: `sendmail -t -i` by root queued the Bcc:
// field, which then reached every recipient, and left "To: accalice"
// unqualified. Now the message is queued as sendmail's MSP relays it.
func TestSubmitBccAndAddresses(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=interactive", "O DefaultUser=root:root")
	boxes := map[string]string{"accalice": r.path("mail/alice.mbox"), "accdave": r.path("mail/dave.mbox"), "acccarol": r.path("mail/carol.mbox")}
	writeAliases(t, r, "postmaster: root\nMAILER-DAEMON: postmaster\naccalice: "+boxes["accalice"]+"\naccdave: "+boxes["accdave"]+"\nacccarol: "+boxes["acccarol"]+"\n")
	if got := run(t, binary(t), "", "-C", r.cf, "-bi"); got.code != 0 {
		t.Fatalf("newaliases: %+v", got)
	}
	got := run(t, binary(t), issue8, "-C", r.cf, "-t", "-i")
	if got.code != 0 {
		t.Fatalf("sendmail -t -i: exit %d %q", got.code, got.stderr)
	}
	for who, box := range boxes {
		data, err := os.ReadFile(box)
		if err != nil {
			t.Fatalf("%s got nothing: %v", who, err)
		}
		hdr := headerBlock(string(data))
		for _, want := range []string{"\nTo: accalice@posthorn.test, Bob <accbob@acc.test>\n", "\nCc: accdave@posthorn.test\n", "\nFrom: root <root@posthorn.test>\n"} {
			if !strings.Contains(hdr, want) {
				t.Errorf("%s's copy lacks %q:\n%s", who, want, hdr)
			}
		}
		if strings.Contains(hdr, "Bcc") || strings.Contains(hdr, "acccarol") {
			t.Errorf("%s's copy shows the Bcc:\n%s", who, hdr)
		}
	}
	// accbob@acc.test waits in the queue (no relay client yet): its qf
	// holds the rewritten header and no Bcc: either.
	qfs, _ := filepath.Glob(r.path("spool/mqueue/qf*"))
	if len(qfs) != 1 {
		t.Fatalf("queue: %v", qfs)
	}
	qf, _ := os.ReadFile(qfs[0])
	if !strings.Contains(string(qf), "\nFbs\n") || strings.Contains(string(qf), "Bcc") || !strings.Contains(string(qf), "H??To: accalice@posthorn.test, Bob <accbob@acc.test>\n") {
		t.Errorf("qf:\n%s", qf)
	}
}

// TestSubmitResent: issue 8 item 2: with -t a resent message (one with
// any Resent- field) takes its recipients from Resent-To, Resent-Cc and
// Resent-Bcc only, as sendmail's eatheader does; To: and Cc: are left
// alone (qualified, not recipients). The message gets Resent-Date,
// Resent-From and Resent-Message-Id, and Resent-Bcc: is removed like
// Bcc:, on root's direct path and on a user's hand-off alike.
func TestSubmitResent(t *testing.T) {
	const msg = "From: Orig <orig@remote.example>\nTo: accdave\nCc: accdave2\nSubject: resent\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n" +
		"Message-Id: <orig@remote.example>\nResent-To: accalice\nResent-Bcc: acccarol\n\nbody\n"
	r := newRoot(t, "O DeliveryMode=interactive", "O DefaultUser=root:root")
	boxes := map[string]string{}
	var aliases strings.Builder
	aliases.WriteString("postmaster: root\nMAILER-DAEMON: postmaster\n")
	for _, who := range []string{"accalice", "acccarol", "accdave", "accdave2"} {
		boxes[who] = r.path("mail/" + who + ".mbox")
		aliases.WriteString(who + ": " + boxes[who] + "\n")
	}
	writeAliases(t, r, aliases.String())
	if got := run(t, binary(t), "", "-C", r.cf, "-bi"); got.code != 0 {
		t.Fatalf("newaliases: %+v", got)
	}
	if got := run(t, binary(t), msg, "-C", r.cf, "-t", "-i"); got.code != 0 {
		t.Fatalf("sendmail -t -i: exit %d %q", got.code, got.stderr)
	}
	for _, who := range []string{"accdave", "accdave2"} {
		if _, err := os.Stat(boxes[who]); err == nil {
			t.Errorf("%s (To:/Cc: of a resent message) got a copy", who)
		}
	}
	for _, who := range []string{"accalice", "acccarol"} {
		data, err := os.ReadFile(boxes[who])
		if err != nil {
			t.Fatalf("%s got nothing: %v", who, err)
		}
		hdr := headerBlock(string(data))
		for _, want := range []string{"\nResent-To: accalice@posthorn.test\n", "\nResent-From: root <root@posthorn.test>\n", "\nResent-Date: ",
			"\nResent-Message-Id: <", "\nTo: accdave@posthorn.test\n", "\nCc: accdave2@posthorn.test\n", "\nFrom: Orig <orig@remote.example>\n",
			"\nMessage-Id: <orig@remote.example>\n", "\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"} {
			if !strings.Contains(hdr, want) {
				t.Errorf("%s's copy lacks %q:\n%s", who, want, hdr)
			}
		}
		if strings.Contains(hdr, "Bcc") || strings.Contains(hdr, "acccarol") {
			t.Errorf("%s's copy shows the Resent-Bcc:\n%s", who, hdr)
		}
	}

	// A user's -t goes through the hand-off: the same recipients.
	u := newUserEnv(t, "phres", "Res Example")
	userMsg := strings.NewReplacer("accdave2", "accdave", "accdave", u.name, "accalice", "root", "Resent-Bcc: acccarol\n", "").Replace(msg)
	if got := u.run(t, userMsg, "-t", "-i"); got.code != 0 {
		t.Fatalf("user's -t: exit %d %q", got.code, got.stderr)
	}
	box := u.r.path("mail/root")
	waitFor(t, "the resent message", func() bool { return fileContains(box, "Subject: resent") })
	data, _ := os.ReadFile(box)
	hdr := headerBlock(string(data))
	for _, want := range []string{"\nResent-To: root@posthorn.test\n", "\nResent-From: Res Example <" + u.name + "@posthorn.test>\n", "\nTo: " + u.name + "@posthorn.test\n"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("root's copy lacks %q:\n%s", want, hdr)
		}
	}
	if fileContains(u.r.path("mail/"+u.name), "Subject: resent") {
		t.Errorf("the user (To: of a resent message) got a copy")
	}
}

// TestSubmitLocalhostCanonical: this host's names in header addresses
// become $j, as sendmail's delivery does (02-mbox-alice.txt: "To:
// staff@localhost" arrives as "staff@refhost.example.org"), for mail
// received over SMTP too, where the queued header keeps what the client
// sent; its Bcc: field is queued (the qf b flag) but never delivered.
func TestSubmitLocalhostCanonical(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=background")
	startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	msg := "From: Sender <sender@client.example>\r\nTo: root@localhost, Other <other@[127.0.0.1]> (comment)\r\nCc: group: root@LOCALHOST;\r\n" +
		"Bcc: secret@remote.example\r\nSubject: canonical\r\n\r\nbody\r\n"
	if err := sendMail(r.addr(), "sender@client.example", []string{"root@localhost"}, msg); err != nil {
		t.Fatal(err)
	}
	box := r.path("mail/root")
	waitFor(t, "the message", func() bool { return fileContains(box, "Subject: canonical") })
	data, _ := os.ReadFile(box)
	hdr := headerBlock(string(data))
	for _, want := range []string{"\nTo: root@posthorn.test, Other <other@posthorn.test> (comment)\n", "\nCc: group: root@posthorn.test;\n", "\nFrom: Sender <sender@client.example>\n"} {
		if !strings.Contains(hdr, want) {
			t.Errorf("delivered header lacks %q:\n%s", want, hdr)
		}
	}
	if strings.Contains(hdr, "Bcc") || strings.Contains(hdr, "secret") {
		t.Errorf("the Bcc: field was delivered:\n%s", hdr)
	}
}

// TestSubmitLongLineNotCut: issue 8 item 5: a line longer than the 64 KiB
// read buffer whose last piece was "." ended the message; the rest was
// dropped and sendmail exited 0.
func TestSubmitLongLineNotCut(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=queueonly")
	for _, n := range []int{64 << 10, 128 << 10} {
		body := strings.Repeat("x", n) + ".\nthe rest of the message\n.\n"
		got := run(t, binary(t), "Subject: long line\n\n"+body+"after the end\n", "-C", r.cf, "root")
		if got.code != 0 {
			t.Fatalf("exit %d %q", got.code, got.stderr)
		}
	}
	dfs, _ := filepath.Glob(r.path("spool/mqueue/df*"))
	if len(dfs) != 2 {
		t.Fatalf("queued %v", dfs)
	}
	for _, df := range dfs {
		data, _ := os.ReadFile(df)
		if !strings.HasSuffix(string(data), ".\nthe rest of the message\n") {
			t.Errorf("%s: %d bytes, ends %q", df, len(data), data[max(0, len(data)-40):])
		}
	}
}

// injectF and injectf are issue 9's attacks on -F and -f.
const (
	injectF = "Name\nBcc: victim@localhost\nX-Injected: 1\n\nbody"
	injectf = "evil@x.example\nX-Inj: 1"
)

// checkNoInjection fails when a header block has a field the attack made,
// or a CR.
func checkNoInjection(t *testing.T, hdr string) {
	t.Helper()
	for _, bad := range []string{"\nBcc:", "\nX-Injected:", "\nX-Inj:", "\nX-CR:", "\r", "\x00", "\nbody\n"} {
		if strings.Contains(hdr, bad) {
			t.Errorf("header has %q:\n%s", bad, hdr)
		}
	}
}

// TestSubmitHeaderInjectionRoot: -F and -f with CR, LF and NUL on root's
// path: the values stay on their header line (a bare CR had survived into
// the mbox).
func TestSubmitHeaderInjectionRoot(t *testing.T) {
	r := newRoot(t, "O DeliveryMode=interactive")
	got := run(t, binary(t), "Subject: injection\n\nthe real body\n", "-C", r.cf, "-F", "Name\rX-CR: 1\n"+injectF, "-f", injectf, "root")
	if got.code != 0 {
		t.Fatalf("exit %d %q", got.code, got.stderr)
	}
	data, err := os.ReadFile(r.path("mail/root"))
	if err != nil {
		t.Fatal(err)
	}
	hdr := headerBlock(string(data))
	checkNoInjection(t, hdr)
	if !strings.Contains(hdr, "\nFrom: \"Name X-CR: 1 Name Bcc: victim@localhost X-Injected: 1  body\" <") || !strings.Contains(string(data), "\n\nthe real body\n") {
		t.Errorf("mailbox:\n%s", data)
	}
}

// testUserSetup makes a user who cannot write the queue, a copy of the
// binary the user may run, and a running MTA; it returns a function that
// runs the binary as the user.
type userEnv struct {
	r      *root
	name   string
	home   string
	daemon *exec.Cmd
	cred   *syscall.Credential
	bin    string
}

func newUserEnv(t *testing.T, prefix, gecos string, extra ...string) *userEnv {
	base := t.TempDir()
	os.Chmod(base, 0o755)
	os.Chmod(filepath.Dir(base), 0o755) // testing's per-test directory is 0700
	name := prefix + strconv.Itoa(os.Getpid()%100000)
	uid, gid, home := testUser(t, base, name, gecos)
	binDir := filepath.Join(base, "bin")
	os.Mkdir(binDir, 0o755)
	data, _ := os.ReadFile(binary(t))
	bin := filepath.Join(binDir, "sendmail")
	os.WriteFile(bin, data, 0o755)
	r := newRoot(t, append([]string{"O DeliveryMode=background"}, extra...)...)
	os.Chmod(r.dir, 0o755)
	os.Chmod(r.path("etc"), 0o755)
	os.Chmod(r.path("mail"), 0o1777)
	daemon := startDaemon(t, r)
	c, _, _ := waitGreeting(t, r.addr())
	c.Close()
	return &userEnv{r: r, name: name, home: home, daemon: daemon, bin: bin,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
}

func (u *userEnv) command(args ...string) *exec.Cmd {
	cmd := exec.Command(u.bin, append([]string{"-C", u.r.cf}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
	cmd.Env = []string{"HOME=" + u.home, "PATH=/usr/bin:/bin", "TZ=UTC"}
	cmd.Dir = u.home
	return cmd
}

func (u *userEnv) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := u.command(args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// TestHandoffHeaderInjection: issue 9: a user's -F and -f were written raw
// into the hand-off, making real Bcc: and X-Injected: fields and pushing
// the rest into the body, and -f split X-Authentication-Warning. -t by a
// user also qualifies and drops Bcc: as the MSP does.
func TestHandoffHeaderInjection(t *testing.T) {
	u := newUserEnv(t, "phinj", "Inj Example")
	got := u.run(t, "Subject: injection\n\nthe real body\n", "-F", "Name\r"+injectF, "-f", injectf, "root")
	if got.code != 0 {
		t.Fatalf("exit %d %q", got.code, got.stderr)
	}
	box := u.r.path("mail/root")
	waitFor(t, "the message", func() bool { return fileContains(box, "Subject: injection") })
	data, _ := os.ReadFile(box)
	hdr := headerBlock(string(data))
	checkNoInjection(t, hdr)
	if !strings.Contains(hdr, "\nX-Authentication-Warning: posthorn.test: "+u.name+" set sender to evil@x.example X-Inj: 1 using -f\n") ||
		!strings.Contains(hdr, "\nFrom: \"Name Name Bcc: victim@localhost X-Injected: 1  body\" <") ||
		!strings.Contains(string(data), "\n\nthe real body\n") {
		t.Errorf("mailbox:\n%s", data)
	}

	got = u.run(t, strings.Replace(issue8, "accalice", "root", 1), "-t", "-i")
	if got.code != 67 { // accdave and acccarol do not exist: the MTA refuses them
		t.Errorf("-t: exit %d %q", got.code, got.stderr)
	}
	waitFor(t, "the -t message", func() bool { return fileContains(box, "Subject: x\n") })
	data, _ = os.ReadFile(box)
	last := string(data)[strings.LastIndex(string(data), "\nFrom "+u.name+"@posthorn.test "):]
	hdr = headerBlock(last)
	if !strings.Contains(hdr, "\nTo: root@posthorn.test, Bob <accbob@acc.test>\n") || !strings.Contains(hdr, "\nCc: accdave@posthorn.test\n") || strings.Contains(hdr, "Bcc") || strings.Contains(hdr, "acccarol") {
		t.Errorf("-t by a user:\n%s", hdr)
	}
}

// bsSession drives "sendmail -bs" one command at a time, as an MUA does.
type bsSession struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	log   []string
	errb  strings.Builder
	lines chan string
}

func startBS(t *testing.T, cmd *exec.Cmd) *bsSession {
	s := &bsSession{t: t, cmd: cmd, lines: make(chan string, 100)}
	s.in, _ = cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = &s.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r := bufio.NewReader(stdout)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				close(s.lines)
				return
			}
			s.lines <- strings.TrimRight(l, "\r\n")
		}
	}()
	return s
}

// reply reads one whole reply and returns its lines.
func (s *bsSession) reply() []string {
	s.t.Helper()
	var got []string
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("-bs closed; so far %q", append(s.log, got...))
			}
			got = append(got, l)
			s.log = append(s.log, "S: "+l)
			if len(l) < 4 || l[3] != '-' {
				return got
			}
		case <-time.After(30 * time.Second):
			s.t.Fatalf("no reply; so far %q", s.log)
		}
	}
}

func (s *bsSession) send(line string, wait bool) []string {
	s.log = append(s.log, "C: "+line)
	io.WriteString(s.in, line+"\r\n")
	if !wait {
		return nil
	}
	return s.reply()
}

func (s *bsSession) wait() (int, string) {
	s.in.Close()
	err := s.cmd.Wait()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), s.errb.String()
	}
	return 0, s.errb.String()
}

// TestUserSMTPOnStdin: issue 9: `sendmail -bs` failed for a user (exit
// 78). It now speaks SMTP as sendmail's MSP does (06-sendmail-bs-msp.txt)
// and hands the message to the MTA; a recipient the MTA refuses after the
// 250 is reported on stderr, in the exit code (67) and in a DSN to the
// sender, as the MSP's (03-dsn-msp-generated-full-message.txt).
func TestUserSMTPOnStdin(t *testing.T) {
	u := newUserEnv(t, "phbs", "Bs Example")
	s := startBS(t, u.command("-bs"))
	greeting := s.reply()
	if len(greeting) != 1 || !strings.HasPrefix(greeting[0], "220 posthorn.test ESMTP ") {
		t.Fatalf("greeting %q", greeting)
	}
	ehlo := s.send("EHLO localclient", true)
	want := []string{"250-posthorn.test Hello " + u.name + "@localhost, pleased to meet you", "250-ENHANCEDSTATUSCODES", "250-PIPELINING",
		"250-8BITMIME", "250-SIZE", "250-DSN", "250-DELIVERBY", "250 HELP"}
	if strings.Join(ehlo, "\n") != strings.Join(want, "\n") {
		t.Errorf("EHLO:\n%s\nwant (the MSP's):\n%s", strings.Join(ehlo, "\n"), strings.Join(want, "\n"))
	}
	for _, step := range []struct{ send, want string }{
		{"MAIL FROM:<" + u.name + ">", "250 2.1.0 <" + u.name + ">... Sender ok"},
		{"RCPT TO:<root>", "250 2.1.5 <root>... Recipient ok"},
		{"RCPT TO:<nosuchuser>", "250 2.1.5 <nosuchuser>... Recipient ok"},
		{"DATA", "354 End data with <CR><LF>.<CR><LF>"},
	} {
		if got := s.send(step.send, true); len(got) != 1 || got[0] != step.want {
			t.Fatalf("%s: %q, want %q", step.send, got, step.want)
		}
	}
	s.send("Subject: submitted with sendmail -bs by a user", false)
	s.send("To: root, nosuchuser", false)
	s.send("", false)
	s.send("Body via -bs.", false)
	accepted := s.send(".", true)
	if len(accepted) != 1 || !regexp.MustCompile(`^250 2\.0\.0 \w+ Message accepted for delivery$`).MatchString(accepted[0]) {
		t.Fatalf("end of data: %q", accepted)
	}
	if got := s.send("QUIT", true); got[0] != "221 2.0.0 posthorn.test closing connection" {
		t.Errorf("QUIT: %q", got)
	}
	code, stderr := s.wait()
	if code != 67 || !strings.Contains(stderr, "User unknown") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}

	box := u.r.path("mail/root")
	waitFor(t, "the message", func() bool { return fileContains(box, "Subject: submitted with sendmail -bs by a user") })
	data, _ := os.ReadFile(box)
	hdr := headerBlock(string(data))
	for _, w := range []string{"\nReceived: from localclient (" + u.name + "@localhost)\n\tby posthorn.test (posthorn ", "/Submit) with ESMTP id ",
		"\nFrom: Bs Example <" + u.name + "@posthorn.test>\n", "\nX-Authentication-Warning: posthorn.test: " + u.name + " owned process doing -bs\n",
		"\nTo: root@posthorn.test, nosuchuser@posthorn.test\n"} {
		if !strings.Contains(hdr, w) {
			t.Errorf("delivered header lacks %q:\n%s", w, hdr)
		}
	}
	ubox := u.r.path("mail/" + u.name)
	waitFor(t, "the DSN", func() bool { return fileContains(ubox, "Subject: Returned mail: see transcript for details") })
	dsn, _ := os.ReadFile(ubox)
	for _, w := range []string{"\n<nosuchuser>\n", "User unknown", "Final-Recipient: RFC822; nosuchuser@posthorn.test", "Action: failed", "Subject: submitted with sendmail -bs by a user"} {
		if !strings.Contains(string(dsn), w) {
			t.Errorf("DSN lacks %q:\n%s", w, dsn)
		}
	}

	// Scripted input, all at once: answered as the MSP answers it
	// (06-sendmail-bs-pipelined-input-msp.txt), nothing is sent.
	script, err := os.ReadFile("../testdata/reference/sendmail/scripts/bs-session.txt")
	if err != nil {
		t.Skip("reference scripts not beside the repository")
	}
	got := u.run(t, strings.ReplaceAll(string(script), "\n", "\r\n"), "-bs")
	ref, _ := os.ReadFile("../testdata/reference/sendmail/06-sendmail-bs-pipelined-input-msp.txt")
	wantLines := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(ref), "\r\n", "\n")), "\n")
	wantLines = wantLines[2 : len(wantLines)-1] // the command, the greeting; the exit status
	gotLines := strings.Split(strings.TrimSpace(strings.ReplaceAll(got.stdout, "\r\n", "\n")), "\n")
	if len(gotLines) < 1 || !strings.HasPrefix(gotLines[0], "220 posthorn.test ESMTP") || got.code != 0 ||
		strings.Join(gotLines[1:], "\n") != strings.ReplaceAll(strings.Join(wantLines, "\n"), "refhost.example.org", "posthorn.test") {
		t.Errorf("pipelined -bs: exit %d\n%s\nwant\n%s", got.code, got.stdout, strings.Join(wantLines, "\n"))
	}

	// With the MTA down the message is refused for now (451), so that the
	// MUA keeps it.
	u.daemon.Process.Signal(syscall.SIGTERM)
	u.daemon.Wait()
	s = startBS(t, u.command("-bs"))
	s.reply()
	s.send("HELO localclient", true)
	s.send("MAIL FROM:<"+u.name+">", true)
	s.send("RCPT TO:<root>", true)
	s.send("DATA", true)
	s.send("Subject: MTA down", false)
	s.send("", false)
	if got := s.send(".", true); !strings.HasPrefix(got[0], "451 4.4.1 ") {
		t.Errorf("MTA down: %q", got)
	}
	s.send("QUIT", true)
	s.wait()
}

// TestRootSMTPOnStdinFrom: root's `sendmail -bs` (the MTA's -bs, as
// `sendmail -Am -bs`) gives a message without From: the invoking user's
// full name from the password file, as sendmail does (02-mbox-alice.txt:
// "From: root <root>"); another sender gets no name.
func TestRootSMTPOnStdinFrom(t *testing.T) {
	pw, err := user.Lookup("root")
	if err != nil {
		t.Skip(err)
	}
	name := strings.TrimSpace(strings.Split(pw.Name, ",")[0])
	if name == "" || strings.Contains(name, "&") {
		t.Skipf("root's GECOS %q", pw.Name)
	}
	r := newRoot(t, "O DeliveryMode=queueonly")
	cases := []struct{ from, want string }{
		{"root", "\nH?F?From: " + name + " <root>\n"},
		{"someone@remote.example", "\nH?F?From: someone@remote.example\n"},
	}
	for _, tc := range cases {
		s := startBS(t, exec.Command(binary(t), "-C", r.cf, "-bs"))
		s.reply()
		s.send("EHLO localclient", true)
		s.send("MAIL FROM:<"+tc.from+">", true)
		s.send("RCPT TO:<root>", true)
		s.send("DATA", true)
		s.send("Subject: from "+tc.from, false)
		s.send("", false)
		if got := s.send(".", true); !strings.HasSuffix(got[0], "Message accepted for delivery") {
			t.Fatalf("%s: %q", tc.from, got)
		}
		s.send("QUIT", true)
		s.wait()
	}
	found := 0
	for _, qf := range queuedFiles(t, r) {
		for _, tc := range cases {
			if strings.Contains(qf, "Subject: from "+tc.from+"\n") {
				found++
				if !strings.Contains(qf, tc.want) {
					t.Errorf("MAIL FROM:<%s>: qf lacks %q:\n%s", tc.from, tc.want, qf)
				}
			}
		}
	}
	if found != 2 {
		t.Errorf("%d of 2 messages queued", found)
	}
}
