package accept

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/posthorn/posthorn/queue"
)

// TestFilterChanges: what the mail filters read back before Commit, and
// what they change, is what the queue files hold.
func TestFilterChanges(t *testing.T) {
	a, dir := newAcceptor(t, nil)
	m, err := a.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Write([]byte("Subject: hi\r\nX-Old: 1\r\n\r\nold body\r\nline 2\r\n")); err != nil {
		t.Fatal(err)
	}
	hs := m.FilterHeaders()
	if len(hs) != 2 || hs[0].Value != " hi" {
		t.Fatalf("headers %+v", hs)
	}
	r, err := m.OpenBody()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != "old body\nline 2\n" {
		t.Errorf("body read back %q", b)
	}
	m.SetHeaders([]queue.Header{{HasCond: true, Name: "Subject", Value: " [tag] hi"}, {HasCond: true, Name: "DKIM-Signature", Value: " v=1;\n\tb=x"}})
	if err := m.ReplaceBody([]byte("new\n")); err != nil {
		t.Fatal(err)
	}
	j, err := m.Commit(&Envelope{Sender: "<s@x>", Recipients: []Recipient{{Addr: "<a@x>"}}, Quarantine: "held"})
	if err != nil {
		t.Fatal(err)
	}
	df, err := os.ReadFile(filepath.Join(dir, "df"+j.ID))
	if err != nil {
		t.Fatal(err)
	}
	if string(df) != "new\n" {
		t.Errorf("df %q, want the replaced body", df)
	}
	if j.Quarantine != "held" {
		t.Errorf("quarantine %q", j.Quarantine)
	}
	var got []string
	for _, h := range j.Headers {
		got = append(got, h.Name)
	}
	if last := j.Headers[len(j.Headers)-1]; last.Name != "DKIM-Signature" || j.Headers[len(j.Headers)-2].Value != " [tag] hi" {
		t.Errorf("headers %q", got)
	}
	for _, h := range j.Headers {
		if h.Name == "X-Old" {
			t.Errorf("a removed header is still there: %q", got)
		}
	}
}
