package submit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/accept"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

var now = time.Date(2026, 11, 25, 4, 26, 20, 0, time.UTC)

func gmt(t time.Time) string { return t.UTC().Format("Mon, 2 Jan 2006 15:04:05") + " GMT" }

// users is a fake expander: known local users, nothing else local.
type users map[string]bool

func (u users) Expand(rcpt string) ([]accept.Final, error) {
	a := strings.Trim(rcpt, "<>")
	local, dom, _ := strings.Cut(a, "@")
	if dom == "" || dom == "refhost.example.org" || dom == "localhost" {
		if !u[local] {
			return nil, status.New(550, "5.1.1", "%s... User unknown", rcpt)
		}
		return []accept.Final{{Addr: local}}, nil
	}
	return []accept.Final{{Addr: "<" + a + ">"}}, nil
}

func newSubmitter(t *testing.T) (*Submitter, string) {
	dir := t.TempDir()
	st, err := queue.Open(queue.Options{Dirs: []string{dir}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	exp := users{"alice": true, "bob": true, "root": true}
	acc := &accept.Acceptor{Store: st, Hostname: "refhost.example.org", Expander: exp, Date: gmt, Now: func() time.Time { return now }}
	return &Submitter{Acceptor: acc, Expander: exp, Hostname: "refhost.example.org", Version: "posthorn 0.1.0",
		Trusted: func(u string) bool { return u == "root" }, OldStyleHeaders: true, Date: gmt}, dir
}

var bob = User{Name: "bob", FullName: "Bob Example", UID: 1001}

func submit(t *testing.T, s *Submitter, req *Request, text string) (*Result, string) {
	t.Helper()
	var errw bytes.Buffer
	res, err := s.Submit(req, strings.NewReader(text), &errw)
	if err != nil {
		t.Fatal(err)
	}
	return res, errw.String()
}

func readQF(t *testing.T, dir, id string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "qf"+id))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), id, "ID")
}

// TestPlainSendmail: `sendmail alice` by bob (reference 02-mbox-alice.txt,
// "plain sendmail alice by bob").
func TestPlainSendmail(t *testing.T) {
	s, dir := newSubmitter(t)
	res, errs := submit(t, s, &Request{User: bob, Recipients: []string{"alice"}}, "Subject: plain sendmail alice by bob\n\nhello\n.\nnot part of it\n")
	if res.Exit != 0 || errs != "" || res.ID == "" {
		t.Fatalf("res %+v errs %q", res, errs)
	}
	want := "V8\nT1795580780\nK0\nN0\nP30044\nFs\n$_bob@localhost\n${daemon_flags}c u\nS<bob@refhost.example.org>\nAbob@refhost.example.org\n" +
		"rRFC822; alice@refhost.example.org\nRPFD:alice\n" +
		"H?P?Return-Path: <\x81g>\n" +
		"H??Received: (from bob@localhost)\n\tby refhost.example.org (posthorn 0.1.0) id ID\n\tfor alice; Wed, 25 Nov 2026 04:26:20 GMT\n" +
		"H?D?Date: Wed, 25 Nov 2026 04:26:20 GMT\n" +
		"H?F?From: Bob Example <bob@refhost.example.org>\n" +
		"H?x?Full-Name: Bob Example\n" +
		"H?M?Message-Id: <202611250426.ID@refhost.example.org>\n" +
		"H??Subject: plain sendmail alice by bob\n.\n"
	if got := readQF(t, dir, res.ID); got != want {
		t.Errorf("qf:\n%s\nwant:\n%s", got, want)
	}
	df, _ := os.ReadFile(filepath.Join(dir, "df"+res.ID))
	if string(df) != "hello\n" {
		t.Errorf("a lone dot must end the message without -i: df %q", df)
	}
}

func TestIgnoreDots(t *testing.T) {
	s, dir := newSubmitter(t)
	res, _ := submit(t, s, &Request{User: bob, Recipients: []string{"alice"}, IgnoreDots: true}, "Subject: x\n\na\n.\nb\n")
	df, _ := os.ReadFile(filepath.Join(dir, "df"+res.ID))
	if string(df) != "a\n.\nb\n" {
		t.Errorf("df %q", df)
	}
}

func TestReadHeaders(t *testing.T) {
	s, dir := newSubmitter(t)
	text := "To: alice, Someone <someone@remote.example>\nCc: bob\nBcc: carol@remote.example\nSubject: -t\n\nbody\n"
	res, errs := submit(t, s, &Request{User: User{Name: "root", FullName: "root"}, ReadHeaders: true, Recipients: []string{"bob"}}, text)
	if res.Exit != 0 || errs != "" {
		t.Fatalf("res %+v errs %q", res, errs)
	}
	qf := readQF(t, dir, res.ID)
	for _, want := range []string{"RPFD:alice\n", "RPFD:<someone@remote.example>\n", "RPFD:<carol@remote.example>\n", "Fbs\n",
		"H??To: alice@refhost.example.org, Someone <someone@remote.example>\nH??Cc: bob@refhost.example.org\nH??Subject: -t\n"} {
		if !strings.Contains(qf, want) {
			t.Errorf("qf lacks %q:\n%s", want, qf)
		}
	}
	if strings.Contains(qf, "Bcc") || strings.Contains(qf, "H??carol") {
		t.Errorf("the Bcc: field was queued:\n%s", qf)
	}
	if strings.Contains(qf, "RPFD:bob") {
		t.Errorf("-t must suppress the argument bob:\n%s", qf)
	}
	if strings.Contains(qf, "X-Authentication-Warning") {
		t.Error("no -f, no warning")
	}
}

func TestResentHeaders(t *testing.T) {
	s, dir := newSubmitter(t)
	res, _ := submit(t, s, &Request{User: bob, ReadHeaders: true}, "To: alice\nResent-To: bob\nSubject: r\n\nb\n")
	qf := readQF(t, dir, res.ID)
	if !strings.Contains(qf, "RPFD:bob\n") || strings.Contains(qf, "RPFD:alice") {
		t.Errorf("Resent-To must replace To:\n%s", qf)
	}
}

func TestNoRecipientsInHeader(t *testing.T) {
	s, dir := newSubmitter(t)
	res, errs := submit(t, s, &Request{User: bob, ReadHeaders: true}, "Subject: no recipients\n\nbody\n")
	if res.Exit != 0 || errs != "No recipient addresses found in header\n" || res.ID != "" {
		t.Errorf("res %+v errs %q", res, errs)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "[qdt]f*")); len(files) != 0 {
		t.Errorf("something was queued: %v", files)
	}
}

func TestUntrustedSender(t *testing.T) {
	s, dir := newSubmitter(t)
	res, _ := submit(t, s, &Request{User: bob, Sender: "someone@accept.example", Recipients: []string{"alice"}}, "Subject: -f\n\nb\n")
	qf := readQF(t, dir, res.ID)
	for _, want := range []string{"S<someone@accept.example>\n", "H?F?From: someone@accept.example\n",
		"H??X-Authentication-Warning: refhost.example.org: bob set sender to someone@accept.example using -f\nH??Subject: -f\n"} {
		if !strings.Contains(qf, want) {
			t.Errorf("qf lacks %q:\n%s", want, qf)
		}
	}
	res, _ = submit(t, s, &Request{User: User{Name: "root"}, Sender: "daemon", Recipients: []string{"alice"}}, "Subject: -f\n\nb\n")
	if qf := readQF(t, dir, res.ID); strings.Contains(qf, "X-Authentication-Warning") || !strings.Contains(qf, "S<daemon@refhost.example.org>") {
		t.Errorf("trusted -f:\n%s", qf)
	}
}

func TestBadRecipients(t *testing.T) {
	s, dir := newSubmitter(t)
	res, errs := submit(t, s, &Request{User: bob, Recipients: []string{"nosuchuser"}}, "Subject: unknown\n\nbody\n")
	if res.Exit != 67 || errs != "nosuchuser... User unknown\n" || res.ID != "" || !bytes.Contains(res.Raw, []byte("Subject: unknown")) {
		t.Errorf("res %+v errs %q", res, errs)
	}
	res, errs = submit(t, s, &Request{User: bob, Recipients: []string{"<bad", "alice"}}, "Subject: one bad\n\nbody\n")
	if res.Exit != 67 || errs != "<bad... Unbalanced '<'\n<bad... User unknown\n" || res.ID == "" {
		t.Errorf("res %+v errs %q", res, errs)
	}
	if qf := readQF(t, dir, res.ID); !strings.Contains(qf, "RPFD:alice") {
		t.Errorf("the good recipient must still be queued:\n%s", qf)
	}
}
