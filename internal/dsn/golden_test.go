package dsn

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// The golden files are the reference captures of sendmail 8.17 DSNs as they
// landed in mailboxes (testdata/03-dsn-*.txt, copied unchanged from
// shared/reference/sendmail). Delivery added a few lines that are not the
// DSN generator's: the From_ line, Return-Path (and, for the MSP's DSN, the
// MTA's Received header), and Debian mail.local's Content-Length header. The test adds those the same way and then compares
// every byte; nothing is normalised.

const (
	host    = "refhost.example.org"
	version = "8.17.1.9/8.17.1.9/Debian-2+deb12u2"
)

func at(hms string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", "2026-11-25 "+hms)
	if err != nil {
		panic(err)
	}
	return t
}

// golden is one capture and the inputs read off it.
type golden struct {
	file   string
	prefix string // what delivery put before the DSN's own header
	report Report
}

func goldens() []golden {
	const mdPath = "Return-Path: <MAILER-DAEMON@refhost.example.org>\n"
	alice := "<alice@refhost.example.org>"
	remote := func(a, mx string) Recipient {
		return Recipient{Address: "<" + a + ">", FinalRecipient: "RFC822; " + a, User: a, Action: Failed, Status: "4.4.7", RemoteMTA: mx}
	}
	return []golden{
		{
			file:   "03-dsn-delay-warning.txt",
			prefix: mdPath,
			report: Report{
				Kind: Delay, QueueID: "6AP4U93k007241", Now: at("04:30:09"),
				Sender: alice, Arrival: at("04:29:09"), ReceivedFrom: "localhost [127.0.0.1]",
				WarnAfter: time.Second, ReturnAfter: 5 * 24 * time.Hour,
				Recipients: []Recipient{{Address: "<someone@remote.example>", FinalRecipient: "RFC822; someone@remote.example",
					User: "someone@remote.example", Action: Delayed, Status: "4.4.1", RemoteMTA: "mx.remote.example."}},
				Transcript: append([]string{"<someone@remote.example>... Deferred: Connection refused by mx.remote.example."},
					WarningLines(time.Second, 5*24*time.Hour)...),
			},
		},
		{
			file:   "03-dsn-permanent-failure-5xx-and-host-unknown.txt",
			prefix: mdPath,
			report: Report{
				Kind: Failure, QueueID: "6AP4Tvgx007069", Now: at("04:29:57"),
				Sender: alice, Arrival: at("04:29:57"), ReceivedFrom: "localhost [127.0.0.1]", ReceivedFromMTA: "localhost",
				Recipients: []Recipient{
					{Address: "<user@bounce.example>", FinalRecipient: "RFC822; user@bounce.example", User: "user@bounce.example",
						Action: Failed, Status: "5.1.1", RemoteMTA: "mx.bounce.example.",
						Diagnostic: "550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink"},
					{Address: "<user@nxdomain.invalid>", FinalRecipient: "RFC822; user@nxdomain.invalid", User: "user@nxdomain.invalid",
						Action: Failed, Status: "5.1.2", RemoteMTA: "nxdomain.invalid", Diagnostic: "550 Host unknown"},
				},
				Transcript: []string{
					"... while talking to mx.bounce.example.:",
					">>> DATA",
					"<<< 550 5.1.1 <user@bounce.example>: Recipient address rejected: User unknown in sink",
					"550 5.1.1 <user@bounce.example>... User unknown",
					"550 5.1.2 <user@nxdomain.invalid>... Host unknown (Name server: nxdomain.invalid: host not found)",
				},
			},
		},
		{
			file:   "03-dsn-postmaster-notify-double-bounce.txt",
			prefix: mdPath,
			report: Report{
				Kind: Failure, QueueID: "6AP4QKB1001471", Now: at("04:26:20"), OriginalID: "6AP4QKB3001468",
				Sender: "<>", Arrival: at("04:26:20"), ReceivedFrom: "localhost [127.0.0.1]", ReceivedFromMTA: "localhost",
				Recipients: []Recipient{{Address: "<fake@example.net>", FinalRecipient: "RFC822; fake@example.net", User: "fake@example.net",
					Action: Failed, Status: "5.1.2", RemoteMTA: "example.net", Diagnostic: "550 Host unknown"}},
				Transcript: []string{"550 5.1.2 <fake@example.net>... Host unknown (Name server: example.net: host not found)"},
			},
		},
		{
			file:   "03-dsn-queuereturn-timeout-sender-root.txt",
			prefix: mdPath,
			report: Report{
				Kind: Failure, QueueID: "6AP4Uxow008257", Now: at("04:30:59"),
				Sender: "root", Arrival: at("04:29:35"), ReceivedFrom: "root@localhost",
				Recipients: []Recipient{{Address: "someone@remote.example", ExpandedFrom: "to-remote",
					FinalRecipient: "RFC822; to-remote@refhost.example.org", User: "someone@remote.example",
					Action: Failed, Status: "4.4.7", RemoteMTA: "mx.remote.example."}},
				Transcript: append([]string{"someone@remote.example... Deferred: Connection refused by mx.remote.example."},
					TimeoutLines(time.Second)...),
			},
		},
		{
			file:   "03-dsn-queuereturn-timeout-two-recipients.txt",
			prefix: mdPath,
			report: Report{
				Kind: Failure, QueueID: "6AP4Uxp0008257", Now: at("04:30:59"),
				Sender: alice, Arrival: at("04:29:33"), ReceivedFrom: "localhost [127.0.0.1]",
				Recipients: []Recipient{remote("someone@remote.example", "mx.remote.example."), remote("other@multi.example", "mx2.multi.example.")},
				Transcript: append([]string{
					"<someone@remote.example>... Deferred: Connection refused by mx.remote.example.",
					"<other@multi.example>... Deferred: Connection refused by mx2.multi.example.",
				}, TimeoutLines(time.Second)...),
			},
		},
		{
			file:   "03-dsn-queuereturn-timeout.txt",
			prefix: mdPath,
			report: Report{
				Kind: Failure, QueueID: "6AP4Uxp1008257", Now: at("04:30:59"),
				Sender: alice, Arrival: at("04:29:09"), ReceivedFrom: "localhost [127.0.0.1]",
				Recipients: []Recipient{remote("someone@remote.example", "mx.remote.example.")},
				Transcript: append([]string{"<someone@remote.example>... Deferred: Connection refused by mx.remote.example."},
					TimeoutLines(time.Second)...),
			},
		},
		{
			file:   "03-dsn-return-receipt-notify-success.txt",
			prefix: mdPath,
			report: Report{
				Kind: Receipt, QueueID: "6AP4YNDf014578", Now: at("04:34:23"),
				Sender: alice, Arrival: at("04:34:23"), ReceivedFrom: "localhost [127.0.0.1]", ReceivedFromMTA: "localhost",
				EnvID: "RCPT-RECEIPT-1",
				Recipients: []Recipient{{Address: "<bob@localhost>", Notify: NotifySuccess, ORCPT: "rfc822;bob@localhost",
					FinalRecipient: "RFC822; bob@localhost", User: "bob", Action: Delivered, Status: "2.1.5", Diagnostic: "250 2.1.5 Ok"}},
				Transcript: []string{"<bob@localhost>... Successfully delivered"},
			},
		},
		{
			// Made by the MSP (sendmail -bs as root, $Z "Submit"), relayed to the
			// MTA over SMTP: the relay qualified the From and To header
			// addresses with $j, which is why From and Sender are given
			// qualified here; the MTA added Return-Path and its Received.
			file: "03-dsn-msp-generated-full-message.txt",
			prefix: "Return-Path: <>\n" +
				"Received: from refhost.example.org (localhost [127.0.0.1])\n" +
				"\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP id 6AP4R9gc002368\n" +
				"\tfor <root@refhost.example.org>; Wed, 25 Nov 2026 04:27:09 GMT\n",
			report: Report{
				Kind: Failure, QueueID: "6AP4R9jg002366", Now: at("04:27:09"), Version: "8.17.1.9/8.17.1.9/Submit",
				From:   "Mail Delivery Subsystem <MAILER-DAEMON@refhost.example.org>",
				Sender: "<root@refhost.example.org>", Arrival: at("04:27:09"), ReceivedFrom: "root@localhost",
				Return: Full,
				Recipients: []Recipient{{Address: "<nosuchuser>", ExpandedFrom: "<nosuchuser>",
					FinalRecipient: "RFC822; nosuchuser@refhost.example.org", User: "nosuchuser@refhost.example.org",
					Action: Failed, Status: "5.1.1", RemoteMTA: "[127.0.0.1]",
					Diagnostic: "550 5.1.1 <nosuchuser@refhost.example.org>... User unknown"}},
				Transcript: []string{
					"... while talking to [127.0.0.1]:",
					">>> DATA",
					"<<< 550 5.1.1 <nosuchuser@refhost.example.org>... User unknown",
					"550 5.1.1 <nosuchuser>... User unknown",
				},
			},
		},
	}
}

// readCapture returns a capture's mailbox text (the command line and the
// exit status lines of the capture tool removed) and the original message's
// header and body as the DSN's last part carries them: these are inputs
// (the queued message), not generated text.
func readCapture(t *testing.T, file string) (mbox string, header, body []byte) {
	t.Helper()
	b, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	_, s, _ = strings.Cut(s, "\n")
	s = strings.TrimSuffix(s, "\n# exit status: 0\n")
	_, part, ok := strings.Cut(s, "Content-Type: text/rfc822-headers\n\n")
	full := false
	if !ok {
		_, part, _ = strings.Cut(s, "Content-Type: message/rfc822\n\n")
		full = true
	}
	part = part[:strings.LastIndex(part, "\n--")+1]
	if !full {
		return s, []byte(strings.TrimSuffix(part, "\n")), nil
	}
	h, bd, _ := strings.Cut(part, "\n\n")
	return s, []byte(h + "\n"), []byte(strings.TrimSuffix(bd, "\n"))
}

// deliver renders m as Debian's mail.local stored it. The captures are
// sed line ranges that stop before the blank line mail.local adds after
// each message, so that line is not added here; the Content-Length header
// checks the body's length independently.
func deliver(prefix string, m *Message, now time.Time) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From MAILER-DAEMON %s\n", now.Format("Mon Jan _2 15:04:05 2006"))
	b.WriteString(prefix)
	b.Write(m.Header)
	fmt.Fprintf(&b, "Content-Length: %d\n\n", len(m.Body))
	b.Write(m.Body)
	return b.String()
}

func TestGolden(t *testing.T) {
	for _, g := range goldens() {
		t.Run(g.file, func(t *testing.T) {
			want, header, body := readCapture(t, g.file)
			r := g.report
			r.Hostname = host
			if r.Version == "" {
				r.Version = version
			}
			r.Header, r.Body = header, body
			m, err := Build(&r)
			if err != nil {
				t.Fatal(err)
			}
			got := deliver(g.prefix, m, r.Now)
			if got != want {
				t.Errorf("mismatch\n%s", diff(want, got))
			}
		})
	}
}

// diff shows the first differing line.
func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\nwant %q\n got %q", i+1, wl, gl)
		}
	}
	return fmt.Sprintf("same lines; lengths want %d got %d, tails %q %q", len(want), len(got), want[len(want)-8:], got[len(got)-8:])
}
