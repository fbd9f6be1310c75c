package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

// Reference runs on the reference queue files give the reference DSNs
// byte for byte (apart from the new queue ID and mail.local's
// Content-Length), the reference -v lines and the reference log line:
// the queue-return run of 03-sendmail-q-v-queuereturn.txt
// (Timeout.queuereturn=1s, 03-dsn-queuereturn-timeout.txt) and the first
// warning run of 03-sendmail-q-v-queuewarn-first.txt (Timeout.queuewarn=1s,
// 03-dsn-delay-warning.txt). Debian's MTA has PrivacyOptions=nobodyreturn.
func TestReferenceRuns(t *testing.T) {
	tests := []struct {
		name    string
		queue   string // directory under testdata/queues holding qf/df6AP4T98X005913
		now     int64
		sched   func(c *Config)
		dsnFile string
		newID   string
		vFile   string // reference -v capture, compared up to its first local delivery
		logLine string
	}{
		{"queuereturn", "after-retries", 1795581059, func(c *Config) { c.Schedule.QueueReturn = time.Second },
			"03-dsn-queuereturn-timeout.txt", "6AP4Uxp1008257", "",
			"6AP4T98X005913: 6AP4Uxp1008257: sender notify: Cannot send message for 1 second"},
		{"queuewarn", "one", 1795581009, func(c *Config) { c.Schedule.QueueWarn = time.Second },
			"03-dsn-delay-warning.txt", "6AP4U93k007241", "03-sendmail-q-v-queuewarn-first.txt",
			"6AP4T98X005913: 6AP4U93k007241: sender notify: Warning: could not send message for past 1 second"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { tt.sched(c); c.NoBodyReturn = true })
			e.failures()
			for _, f := range []string{"qf6AP4T98X005913", "df6AP4T98X005913"} {
				data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "queues", tt.queue, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(e.dir, f), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			e.clk.t = time.Unix(tt.now, 0).UTC()
			var v bytes.Buffer
			if st := e.run(RunOptions{Verbose: &v}); st.DSNs != 1 {
				t.Fatalf("stats %+v", st)
			}
			d := e.mail.deliveries()
			last := d[len(d)-1]
			got := last.header + "\n" + last.body
			newID := regexp.MustCompile(`id (\w+);`).FindStringSubmatch(got)[1]
			fix := func(s string) string { return strings.ReplaceAll(s, newID, tt.newID) }
			got = strings.TrimRight(fix(got), "\n") + "\n"
			if want := capture(t, "../../internal/dsn/testdata/"+tt.dsnFile, 2, "Content-Length:"); got != want {
				t.Errorf("DSN differs from the reference:\n--- got\n%s\n--- want\n%s", got, want)
			}
			if last.rcpts[0] != "<alice@refhost.example.org>" || last.sender != "MAILER-DAEMON@refhost.example.org" {
				t.Errorf("envelope %q → %v", last.sender, last.rcpts)
			}
			if logs := fix(e.log.String()); !strings.Contains(logs, ": "+tt.logLine+"\n") {
				t.Errorf("log lacks %q:\n%s", tt.logLine, logs)
			}
			if tt.vFile != "" {
				want := capture(t, "testdata/"+tt.vFile, 1, "")
				want = want[:strings.Index(want, "Connecting to local")]
				want = want[:strings.LastIndex(want, "\n")+1]
				gotV := strings.ReplaceAll(v.String(), e.dir, "/var/spool/mqueue")
				if !strings.HasPrefix(gotV, want) {
					t.Errorf("-v differs:\n--- got\n%s--- want prefix\n%s", gotV, want)
				}
			}
		})
	}
}

// capture reads a reference capture without its first skip lines, lines
// starting with drop, and the "# exit status" trailer.
func capture(t *testing.T, p string, skip int, drop string) string {
	t.Helper()
	ref, err := os.ReadFile(p)
	if err != nil {
		t.Skip("reference capture not available:", err)
	}
	var want []string
	for _, l := range strings.Split(string(ref), "\n")[skip:] {
		if drop != "" && strings.HasPrefix(l, drop) {
			continue
		}
		if strings.HasPrefix(l, "# exit status") {
			break
		}
		want = append(want, l)
	}
	return strings.TrimRight(strings.Join(want, "\n"), "\n") + "\n"
}

// The return receipt of 03-smtp-submit-notify-success.txt: the first
// delivery right after acceptance (DeliverLocked) of a NOTIFY=SUCCESS
// recipient gives 03-dsn-return-receipt-notify-success.txt byte for byte
// (new queue ID and Content-Length aside), including Received-From-MTA.
func TestReferenceReturnReceipt(t *testing.T) {
	e := newEnv(t, nil)
	e.clk.t = time.Unix(1795581263, 0).UTC()
	j := &queue.Job{Created: e.clk.Now(), Priority: 30284, Flags: "bdn", EnvID: "RCPT-RECEIPT-1",
		Macros: []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}, {Name: "r", Value: "ESMTP"},
			{Name: "s", Value: "client.example"}, {Name: "{daemon_flags}"}},
		Sender: "<alice@refhost.example.org>",
		Recipients: []queue.Recipient{{Flags: "PNS", Addr: "<bob@localhost>",
			ORcpt: "rfc822;bob@localhost", FinalRcpt: "RFC822; bob@localhost"}},
		Headers: []queue.Header{
			{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
			{HasCond: true, Name: "Received", Value: " from client.example (localhost [127.0.0.1])\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP id 6AP4YNDf014577\n\tfor <bob@localhost>; Wed, 25 Nov 2026 04:34:23 GMT"},
			{HasCond: true, Cond: "D", Name: "Date", Value: " Wed, 25 Nov 2026 04:34:23 GMT"},
			{HasCond: true, Cond: "M", Name: "Message-Id", Value: " <202611250434.6AP4YNDf014577@refhost.example.org>"},
			{HasCond: true, Name: "From", Value: " Alice Example <alice@refhost.example.org>"},
			{HasCond: true, Name: "To", Value: " bob@refhost.example.org"},
			{HasCond: true, Name: "Subject", Value: " please confirm delivery"},
		}}
	txn, err := e.store.Begin()
	if err != nil {
		t.Fatal(err)
	}
	txn.Write([]byte("NOTIFY=SUCCESS test.\n"))
	l, err := txn.CommitLocked(j)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.r.DeliverLocked(context.Background(), l, nil); st.Sent != 2 || st.DSNs != 1 {
		t.Fatalf("stats %+v", st)
	}
	d := e.mail.deliveries()
	last := d[len(d)-1]
	got := last.header + "\n" + last.body
	newID := regexp.MustCompile(`id (\w+);`).FindStringSubmatch(got)[1]
	got = strings.TrimRight(strings.ReplaceAll(got, newID, "6AP4YNDf014578"), "\n") + "\n"
	if want := capture(t, "../../internal/dsn/testdata/03-dsn-return-receipt-notify-success.txt", 2, "Content-Length:"); got != want {
		t.Errorf("receipt differs from the reference:\n--- got\n%s\n--- want\n%s", got, want)
	}
	want := j.ID + ": " + newID + ": DSN: Return receipt\n"
	if !strings.Contains(e.log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, e.log)
	}
}

// The double bounce of 05-syslog-mail-log-full.txt: a bounce from <>
// (6AP4QKB3001468, received from the MSP) fails with "Host unknown"; the
// first attempt makes the postmaster notification of
// 03-dsn-postmaster-notify-double-bounce.txt, expanded (postmaster → root)
// by ExpandReport, with the reference log lines.
func TestReferencePostmasterNotify(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.NoBodyReturn = true
		c.ExpandReport = func(ctx context.Context, addr string) ([]queue.Recipient, error) {
			if addr == "postmaster" {
				return []queue.Recipient{{Flags: "P", Addr: "root"}}, nil
			}
			return nil, nil
		}
		c.Mailers["esmtp"] = MailerFunc(func(ctx context.Context, d *Delivery) []Result {
			return []Result{{Err: status.New(550, "5.1.2", "Host unknown (Name server: example.net: host not found)"),
				Relay: "example.net", RemoteMTA: "example.net", Diagnostic: "550 Host unknown"}}
		})
	})
	e.clk.t = time.Unix(1795580780, 0).UTC()
	j := &queue.Job{Created: e.clk.Now(), Priority: 30121, Flags: "b",
		Macros: []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}, {Name: "r", Value: "ESMTP"},
			{Name: "s", Value: "refhost.example.org"}, {Name: "{daemon_flags}"}},
		Sender:     "<>",
		Recipients: []queue.Recipient{{Flags: "PFD", Addr: "<fake@example.net>", FinalRcpt: "RFC822; fake@example.net"}},
		Headers: []queue.Header{
			{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
			{HasCond: true, Name: "Received", Value: " from refhost.example.org (localhost [127.0.0.1])\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP id 6AP4QKB3001468\n\tfor <fake@example.net>; Wed, 25 Nov 2026 04:26:20 GMT"},
			{HasCond: true, Name: "Received", Value: " from localhost (localhost)\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Submit) id 6AP4QKNj001467;\n\tWed, 25 Nov 2026 04:26:20 GMT"},
			{HasCond: true, Name: "Date", Value: " Wed, 25 Nov 2026 04:26:20 GMT"},
			{HasCond: true, Name: "From", Value: " Mail Delivery Subsystem <MAILER-DAEMON@refhost.example.org>"},
			{HasCond: true, Name: "Message-Id", Value: " <202611250426.6AP4QKNj001467@refhost.example.org>"},
			{HasCond: true, Name: "To", Value: " fake@example.net"},
			{HasCond: true, Name: "MIME-Version", Value: " 1.0"},
			{HasCond: true, Name: "Content-Type", Value: " multipart/report; report-type=delivery-status;\n\tboundary=\"6AP4QKNj001467.1795580780/refhost.example.org\""},
			{HasCond: true, Name: "Subject", Value: " Returned mail: see transcript for details"},
			{HasCond: true, Name: "Auto-Submitted", Value: " auto-generated (failure)"},
		}}
	txn, err := e.store.Begin()
	if err != nil {
		t.Fatal(err)
	}
	txn.Write([]byte("This is a MIME-encapsulated message\n"))
	l, err := txn.CommitLocked(j)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.r.DeliverLocked(context.Background(), l, nil); st.Bounced != 1 || st.Sent != 1 || st.DSNs != 1 {
		t.Fatalf("stats %+v", st)
	}
	d := e.mail.deliveries()
	last := d[len(d)-1]
	if last.mailer != "local" || last.rcpts[0] != "root" {
		t.Fatalf("notification went to %s %v", last.mailer, last.rcpts)
	}
	got := last.header + "\n" + last.body
	newID := regexp.MustCompile(`id (\w+);`).FindStringSubmatch(got)[1]
	fix := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, newID, "6AP4QKB1001471"), j.ID, "6AP4QKB3001468")
	}
	got = strings.TrimRight(fix(got), "\n") + "\n"
	if want := capture(t, "../../internal/dsn/testdata/03-dsn-postmaster-notify-double-bounce.txt", 2, "Content-Length:"); got != want {
		t.Errorf("notification differs from the reference:\n--- got\n%s\n--- want\n%s", got, want)
	}
	logs := fix(e.log.String())
	for _, want := range []string{
		"6AP4QKB3001468: 6AP4QKB1001471: postmaster notify: Host unknown (Name server: example.net: host not found)\n",
		"6AP4QKB1001471: to=root, delay=00:00:00, xdelay=00:00:00, mailer=local, pri=30000, relay=local, dsn=2.1.5, stat=Sent\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// The bounce of 05-syslog-examples.txt (6AP4Tvgx007066): one recipient
// rejected by its MX, one in a domain that does not exist; the first
// attempt gives 03-dsn-permanent-failure-5xx-and-host-unknown.txt byte for
// byte, with the mailer's own transcript lines, and the reference log
// lines (without ctladdr=, which needs the sender's uid).
func TestReferencePermanentFailure(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.NoBodyReturn = true
		c.Mailers["esmtp"] = MailerFunc(func(ctx context.Context, d *Delivery) []Result {
			if d.Host == "bounce.example" {
				reply := "550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink"
				fmt.Fprintf(d.Transcript, "... while talking to mx.bounce.example.:\n>>> DATA\n<<< %s\n", reply)
				return []Result{{Err: status.New(550, "5.1.1", "User unknown"), Relay: "mx.bounce.example. [127.0.0.11]",
					RemoteMTA: "mx.bounce.example.", Reply: reply}}
			}
			return []Result{{Err: status.New(550, "5.1.2", "Host unknown (Name server: nxdomain.invalid: host not found)"),
				Relay: "nxdomain.invalid", RemoteMTA: "nxdomain.invalid", Diagnostic: "550 Host unknown"}}
		})
	})
	e.clk.t = time.Unix(1795580997, 0).UTC()
	j := &queue.Job{Created: e.clk.Now(), Priority: 60263, Flags: "b",
		Macros: []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}, {Name: "r", Value: "ESMTP"},
			{Name: "s", Value: "client.example"}, {Name: "{daemon_flags}"}},
		Sender: "<alice@refhost.example.org>",
		Recipients: []queue.Recipient{
			{Flags: "PFD", Addr: "<user@bounce.example>", FinalRcpt: "RFC822; user@bounce.example"},
			{Flags: "PFD", Addr: "<user@nxdomain.invalid>", FinalRcpt: "RFC822; user@nxdomain.invalid"}},
		Headers: []queue.Header{
			{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
			{HasCond: true, Name: "Received", Value: " from client.example (localhost [127.0.0.1])\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP id 6AP4Tvgx007066;\n\tWed, 25 Nov 2026 04:29:57 GMT"},
			{HasCond: true, Cond: "D", Name: "Date", Value: " Wed, 25 Nov 2026 04:29:57 GMT"},
			{HasCond: true, Name: "From", Value: " Alice Example <alice@refhost.example.org>"},
			{HasCond: true, Name: "To", Value: " user@bounce.example, user@nxdomain.invalid"},
			{HasCond: true, Name: "Subject", Value: " this one will bounce"},
			{HasCond: true, Name: "Message-ID", Value: " <bounce-test-1@refhost.example.org>"},
		}}
	txn, err := e.store.Begin()
	if err != nil {
		t.Fatal(err)
	}
	txn.Write([]byte("This message cannot be delivered.\n"))
	l, err := txn.CommitLocked(j)
	if err != nil {
		t.Fatal(err)
	}
	if st := e.r.DeliverLocked(context.Background(), l, nil); st.Bounced != 2 || st.DSNs != 1 {
		t.Fatalf("stats %+v", st)
	}
	d := e.mail.deliveries()
	last := d[len(d)-1]
	got := last.header + "\n" + last.body
	newID := regexp.MustCompile(`id (\w+);`).FindStringSubmatch(got)[1]
	fix := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, newID, "6AP4Tvgx007069"), j.ID, "6AP4Tvgx007066")
	}
	got = strings.TrimRight(fix(got), "\n") + "\n"
	if want := capture(t, "../../internal/dsn/testdata/03-dsn-permanent-failure-5xx-and-host-unknown.txt", 2, "Content-Length:"); got != want {
		t.Errorf("DSN differs from the reference:\n--- got\n%s\n--- want\n%s", got, want)
	}
	logs := fix(e.log.String())
	for _, want := range []string{
		"6AP4Tvgx007066: to=<user@bounce.example>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=60263, relay=mx.bounce.example. [127.0.0.11], dsn=5.1.1, reply=550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink, stat=User unknown\n",
		"6AP4Tvgx007066: to=<user@nxdomain.invalid>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=60263, relay=nxdomain.invalid, dsn=5.1.2, stat=Host unknown (Name server: nxdomain.invalid: host not found)\n",
		"6AP4Tvgx007066: 6AP4Tvgx007069: DSN: Host unknown (Name server: nxdomain.invalid: host not found)\n",
		"6AP4Tvgx007069: to=<alice@refhost.example.org>, delay=00:00:00, xdelay=00:00:00, mailer=local, pri=30000, relay=local, dsn=2.1.5, stat=Sent\n",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}
