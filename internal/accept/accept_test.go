package accept

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
)

var arrival = time.Date(2026, 11, 25, 4, 29, 9, 0, time.UTC)

func gmtDate(t time.Time) string { return t.UTC().Format("Mon, 2 Jan 2006 15:04:05") + " GMT" }

type fakeExpander map[string][]Final

func (f fakeExpander) Expand(rcpt string) ([]Final, error) {
	if r, ok := f[rcpt]; ok {
		return r, nil
	}
	if strings.Contains(rcpt, "nosuch") {
		return nil, status.New(550, "5.1.1", "%s... User unknown", rcpt)
	}
	return []Final{{Addr: rcpt}}, nil
}

func newAcceptor(t *testing.T, exp Expander) (*Acceptor, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := queue.Open(queue.Options{Dirs: []string{dir}, Now: func() time.Time { return arrival }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &Acceptor{Store: s, Hostname: "refhost.example.org", Expander: exp, Date: gmtDate,
		Now: func() time.Time { return arrival }}, dir
}

func accept(t *testing.T, a *Acceptor, env *Envelope, text string, local bool) (*queue.Job, string) {
	t.Helper()
	m, err := a.Begin(local)
	if err != nil {
		t.Fatal(err)
	}
	env.Received = strings.ReplaceAll(env.Received, "ID", m.ID())
	if _, err := m.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	j, err := m.Commit(env)
	if err != nil {
		t.Fatal(err)
	}
	return j, m.ID()
}

// TestReferenceSMTPJob rebuilds the qf of reference
// 03-queue-one-message-files.txt from the same SMTP transaction.
func TestReferenceSMTPJob(t *testing.T) {
	a, dir := newAcceptor(t, nil)
	env := &Envelope{
		Sender:     "<alice@refhost.example.org>",
		Recipients: []Recipient{{Addr: "<someone@remote.example>"}},
		Macros: []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}, {Name: "r", Value: "ESMTP"},
			{Name: "s", Value: "client.example"}, {Name: "{daemon_flags}", Value: ""}},
		Received: "from client.example (localhost [127.0.0.1])\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP id ID\n\tfor <someone@remote.example>; Wed, 25 Nov 2026 04:29:09 GMT",
	}
	text := "From: Alice Example <alice@refhost.example.org>\r\nTo: someone@remote.example\r\nSubject: this one will be deferred\r\n\r\nNobody listens at the MX of remote.example.\r\n"
	_, id := accept(t, a, env, text, false)

	qf, err := os.ReadFile(filepath.Join(dir, "qf"+id))
	if err != nil {
		t.Fatal(err)
	}
	want := "V8\nT1795580949\nK0\nN0\nP30155\nFbs\n$_localhost [127.0.0.1]\n$rESMTP\n$sclient.example\n${daemon_flags}\n" +
		"S<alice@refhost.example.org>\nrRFC822; someone@remote.example\nRPFD:<someone@remote.example>\n" +
		"H?P?Return-Path: <\x81g>\n" +
		"H??Received: from client.example (localhost [127.0.0.1])\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) with ESMTP id " + id + "\n\tfor <someone@remote.example>; Wed, 25 Nov 2026 04:29:09 GMT\n" +
		"H?D?Date: Wed, 25 Nov 2026 04:29:09 GMT\n" +
		"H?x?Full-Name: Alice Example\n" +
		"H?M?Message-Id: <202611250429." + id + "@refhost.example.org>\n" +
		"H??From: Alice Example <alice@refhost.example.org>\nH??To: someone@remote.example\nH??Subject: this one will be deferred\n.\n"
	if string(qf) != want {
		t.Errorf("qf differs from the reference:\n--- got\n%s\n--- want\n%s", qf, want)
	}
	df, _ := os.ReadFile(filepath.Join(dir, "df"+id))
	if string(df) != "Nobody listens at the MX of remote.example.\n" {
		t.Errorf("df = %q", df)
	}
}

// TestReferenceLocalJob follows the -odq job of
// 03-queue-several-messages-files.txt: a local submission whose recipients
// were expanded through ~carol/.forward and the to-remote alias.
func TestReferenceLocalJob(t *testing.T) {
	exp := fakeExpander{
		"carol":     {{Addr: "bob", Ctl: "bob:1001:1001:carol"}},
		"to-remote": {{Addr: "someone@remote.example", Ctl: "to-remote:8:0:to-remote", Alias: true}},
	}
	a, dir := newAcceptor(t, exp)
	env := &Envelope{
		Sender:     "root",
		Recipients: []Recipient{{Addr: "carol"}, {Addr: "to-remote"}},
		Macros:     []queue.Macro{{Name: "_", Value: "root@localhost"}, {Name: "{daemon_flags}", Value: "c u"}},
		Auth:       "root@refhost.example.org",
		Received:   "(from root@localhost)\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) id ID;\n\tWed, 25 Nov 2026 04:29:09 GMT",
		FullName:   "root",
		FromAddr:   "root",
		Local:      true,
	}
	_, id := accept(t, a, env, "From root  Wed Nov 25 04:29:09 2026\nSubject: queued with -odq, never attempted\n\nqueue only\n", true)
	qf, _ := os.ReadFile(filepath.Join(dir, "qf"+id))
	want := "V8\nT1795580949\nK0\nN0\nP60055\nFs\n$_root@localhost\n${daemon_flags}c u\nSroot\nAroot@refhost.example.org\n" +
		"Cbob:1001:1001:carol\nrRFC822; carol@refhost.example.org\nRPFD:bob\n" +
		"Cto-remote:8:0:to-remote\nrRFC822; to-remote@refhost.example.org\nRPFDA:someone@remote.example\n" +
		"H?P?Return-Path: <\x81g>\n" +
		"H??Received: (from root@localhost)\n\tby refhost.example.org (8.17.1.9/8.17.1.9/Debian-2+deb12u2) id " + id + ";\n\tWed, 25 Nov 2026 04:29:09 GMT\n" +
		"H?D?Date: Wed, 25 Nov 2026 04:29:09 GMT\n" +
		"H?F?From: root <root>\n" +
		"H?x?Full-Name: root\n" +
		"H?M?Message-Id: <202611250429." + id + "@refhost.example.org>\n" +
		"H??Subject: queued with -odq, never attempted\n.\n"
	if string(qf) != want {
		t.Errorf("qf differs from the reference:\n--- got\n%s\n--- want\n%s", qf, want)
	}
}

func TestDSNParametersAndDuplicates(t *testing.T) {
	exp := fakeExpander{"<staff@localhost>": {{Addr: "alice", Alias: true}, {Addr: "bob", Alias: true}}}
	a, _ := newAcceptor(t, exp)
	env := &Envelope{
		Sender: "<bob@refhost.example.org>", EnvID: "QQ314159", Ret: "HDRS", BodyType: "7BIT",
		Recipients: []Recipient{
			{Addr: "<nobody@nomx.example>", Notify: "NEVER"},
			{Addr: "<someone@remote.example>", Notify: "SUCCESS,FAILURE,DELAY", ORcpt: "rfc822;someone@remote.example"},
			{Addr: "<staff@localhost>"},
			{Addr: "alice"},
			{Addr: "<someone@REMOTE.example>"},
		},
		Flags: "b",
	}
	j, _ := accept(t, a, env, "Subject: x\n\nBody.\n", false)
	var got []string
	for _, r := range j.Recipients {
		got = append(got, r.Flags+":"+r.Addr+" q="+r.ORcpt)
	}
	want := []string{"PN:<nobody@nomx.example> q=", "PNSFD:<someone@remote.example> q=rfc822;someone@remote.example",
		"PFDA:alice q=", "PFDA:bob q="}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("recipients:\n got %q\nwant %q", got, want)
	}
	if j.Flags != "bdns" || j.EnvID != "QQ314159" || j.BodyType != "7BIT" {
		t.Errorf("flags %q envid %q body %q", j.Flags, j.EnvID, j.BodyType)
	}
}

// TestChunking: the same text written a byte at a time gives the same job.
func TestChunking(t *testing.T) {
	text := "Received: from a\r\n\tby b; date\r\nSubject: chunks\r\n\r\nline one\r\nbare\rcr\r\n\r\nlast\r"
	var results [][]byte
	for _, step := range []int{len(text), 1, 3} {
		a, dir := newAcceptor(t, nil)
		m, _ := a.Begin(false)
		for i := 0; i < len(text); i += step {
			end := min(i+step, len(text))
			m.Write([]byte(text[i:end]))
		}
		if m.Hops() != 1 {
			t.Errorf("step %d: hops %d", step, m.Hops())
		}
		if _, err := m.Commit(&Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<c@d>"}}}); err != nil {
			t.Fatal(err)
		}
		df, _ := os.ReadFile(filepath.Join(dir, "df"+m.ID()))
		results = append(results, df)
		if m.Headers()[0].Value != " from a\n\tby b; date" {
			t.Errorf("step %d: folded header %q", step, m.Headers()[0].Value)
		}
	}
	if want := "line one\nbare\rcr\n\nlast\r"; string(results[0]) != want {
		t.Errorf("df = %q, want %q", results[0], want)
	}
	for i := 1; i < len(results); i++ {
		if !bytes.Equal(results[i], results[0]) {
			t.Errorf("chunked df %q != %q", results[i], results[0])
		}
	}
}

func TestBodyWithoutBlankLine(t *testing.T) {
	a, dir := newAcceptor(t, nil)
	m, _ := a.Begin(false)
	m.Write([]byte("Subject: s\nthis is no header\nmore\n"))
	m.Commit(&Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<c@d>"}}})
	df, _ := os.ReadFile(filepath.Join(dir, "df"+m.ID()))
	if string(df) != "this is no header\nmore\n" || len(m.Headers()) != 1 {
		t.Errorf("df %q headers %v", df, m.Headers())
	}
}

func TestRefusalLeavesNothing(t *testing.T) {
	a, dir := newAcceptor(t, fakeExpander{})
	m, _ := a.Begin(false)
	m.Write([]byte("Subject: s\n\nbody\n"))
	_, err := m.Commit(&Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<nosuch@localhost>"}}})
	var se *status.Error
	if !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("err = %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !e.IsDir() {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

// TestHeaderTooLarge: MaxHeadersLength holds whether the header arrives
// in pieces or whole with its end and the body in one write; a header of
// exactly the bound passes.
func TestHeaderTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		ok     bool
	}{
		{"unfinished", []string{"Subject: " + strings.Repeat("x", 200)}, false},
		{"whole in one write", []string{"Subject: " + strings.Repeat("x", 200) + "\n\nbody\n"}, false},
		{"in pieces", []string{"Subject: x\n", "X-A: " + strings.Repeat("a", 60) + "\n", "X-B: " + strings.Repeat("b", 60) + "\n\nbody\n"}, false},
		{"at the bound", []string{"Subject: " + strings.Repeat("x", 90) + "\n\n" + strings.Repeat("body\n", 100)}, true},
	} {
		a, _ := newAcceptor(t, nil)
		a.MaxHeaderBytes = 100
		m, _ := a.Begin(false)
		var err error
		for _, w := range tc.writes {
			if _, err = m.Write([]byte(w)); err != nil {
				break
			}
		}
		var se *status.Error
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.ok && (!errors.As(err, &se) || se.Code != 552 || se.Enhanced != "5.6.0" || se.Text != "Headers too large (100 max)"):
			t.Errorf("%s: err = %v", tc.name, err)
		}
		m.Abort()
	}
}

func FuzzWrite(f *testing.F) {
	f.Add([]byte("From x\nSubject: a\r\n\tb\r\n\r\nbody\r\n"), 3)
	f.Add([]byte("no header at all"), 1)
	f.Fuzz(func(t *testing.T, data []byte, step int) {
		if step <= 0 || step > 64 {
			step = 7
		}
		dir := t.TempDir()
		s, err := queue.Open(queue.Options{Dirs: []string{dir}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		a := &Acceptor{Store: s, Hostname: "h", Date: gmtDate, Now: time.Now}
		m, _ := a.Begin(true)
		for i := 0; i < len(data); i += step {
			m.Write(data[i:min(i+step, len(data))])
		}
		j, err := m.Commit(&Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<c@d>"}}})
		if err != nil {
			return
		}
		qf, err := os.ReadFile(filepath.Join(dir, "qf"+j.ID))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := queue.Parse(j.ID, qf); err != nil {
			t.Fatalf("accepted message gives an unreadable qf: %v\n%q", err, qf)
		}
	})
}

// TestOwnerListClone: recipients governed by an owner- alias go into a
// clone job whose envelope sender is the list owner (sendmail's "clone:
// owner=root"), with the same headers and its own copy of the body.
func TestOwnerListClone(t *testing.T) {
	exp := fakeExpander{"<staff@localhost>": {{Addr: "alice", Alias: true, Owner: "root"}, {Addr: "bob", Alias: true, Owner: "root"}}}
	a, dir := newAcceptor(t, exp)
	m, _ := a.Begin(false)
	m.Write([]byte("Subject: list\n\nlist body\n"))
	j, err := m.Commit(&Envelope{Sender: "<sender@client.example>", Recipients: []Recipient{{Addr: "<carol@remote.example>"}, {Addr: "<staff@localhost>"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Recipients) != 1 || j.Recipients[0].Addr != "<carol@remote.example>" || j.Sender != "<sender@client.example>" {
		t.Errorf("primary job: sender %s rcpts %+v", j.Sender, j.Recipients)
	}
	clones := m.Clones()
	if len(clones) != 1 || clones[0].ID == j.ID || clones[0].Dir != dir {
		t.Fatalf("clones %+v", clones)
	}
	qf, err := os.ReadFile(filepath.Join(dir, "qf"+clones[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"S<root@refhost.example.org>\n", "RPFDA:alice\n", "RPFDA:bob\n", "H?M?Message-Id: <202611250429." + j.ID + "@refhost.example.org>\n"} {
		if !strings.Contains(string(qf), want) {
			t.Errorf("clone qf lacks %q:\n%s", want, qf)
		}
	}
	df, _ := os.ReadFile(filepath.Join(dir, "df"+clones[0].ID))
	if string(df) != "list body\n" {
		t.Errorf("clone df %q", df)
	}
	// A message whose every recipient is owned keeps its ID for the list.
	m2, _ := a.Begin(false)
	m2.Write([]byte("Subject: only list\n\nb\n"))
	j2, err := m2.Commit(&Envelope{Sender: "<sender@client.example>", Recipients: []Recipient{{Addr: "<staff@localhost>"}}})
	if err != nil || j2.Sender != "<root@refhost.example.org>" || len(m2.Clones()) != 0 {
		t.Errorf("owned-only message: %+v clones %v err %v", j2, m2.Clones(), err)
	}
}

// BenchmarkWriteBody: a 64 KiB LF body (as smtpd hands it over) in 32 KiB
// writes, into a queue without syncs.
func BenchmarkWriteBody(b *testing.B) {
	dir := b.TempDir()
	s, err := queue.Open(queue.Options{Dirs: []string{dir}, Sync: queue.SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	a := &Acceptor{Store: s, Hostname: "h", Date: gmtDate, Now: time.Now}
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 1024)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		m, _ := a.Begin(false)
		m.Write([]byte("Subject: s\n\n"))
		for off := 0; off < len(body); off += 32 << 10 {
			m.Write(body[off:min(off+32<<10, len(body))])
		}
		m.Abort()
	}
}
