package accept

import (
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/queue"
)

// BenchmarkAccept: one 2 KiB message as the SMTP server hands it over
// (LF line ends, Received first), from Begin to a committed job, which
// is then removed so that the queue's spare files are reused as in the
// daemon. The queue does not sync: this is the CPU of acceptance.
func BenchmarkAccept(b *testing.B) {
	s, err := queue.Open(queue.Options{Dirs: []string{b.TempDir()}, Sync: queue.SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	a := &Acceptor{Store: s, Hostname: "posthorn.test", Expander: fakeExpander{}, Date: gmtDate, Now: time.Now}
	var text strings.Builder
	text.WriteString("From: <load@client.example>\nTo: <user@localhost>\nDate: Fri, 4 Dec 2026 03:54:30 +0000\n" +
		"Message-Id: <755e.0012.07e2@client.example>\nSubject: bench\n\n")
	for text.Len() < 2048 {
		text.WriteString("La de da de da 1.\n")
	}
	msg := []byte(text.String())
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := a.Begin(false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Write(msg); err != nil {
			b.Fatal(err)
		}
		env := &Envelope{Sender: "<load@client.example>", FromAddr: "load@client.example",
			Received:   "Received: from client.example (localhost [127.0.0.1])\n\tby posthorn.test with ESMTP id " + m.ID() + "\n\tfor <user@localhost>; Fri, 4 Dec 2026 03:54:31 GMT",
			Recipients: []Recipient{{Addr: "<user@localhost>"}},
			Macros:     []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}, {Name: "r", Value: "ESMTP"}}}
		l, err := m.CommitLocked(env)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Remove(); err != nil {
			b.Fatal(err)
		}
	}
}
