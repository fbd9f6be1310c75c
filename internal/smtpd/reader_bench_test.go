package smtpd

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// benchSessionText is what one smtp-source session sends (2 KiB body),
// command lines and DATA.
func benchSessionText() (commands []byte, data []byte) {
	commands = []byte("EHLO client.example\r\nMAIL FROM:<load@client.example>\r\nRCPT TO:<user@localhost>\r\nDATA\r\n")
	var b strings.Builder
	b.WriteString("From: <load@client.example>\r\nTo: <user@localhost>\r\nDate: Fri, 4 Dec 2026 03:54:30 +0000\r\n" +
		"Message-Id: <755e.0012.07e2@client.example>\r\nSubject: bench\r\n\r\n")
	for b.Len() < 2048 {
		b.WriteString("La de da de da 1.\r\n..a dot-stuffed line\r\n")
	}
	b.WriteString(".\r\n")
	return commands, []byte(b.String())
}

// BenchmarkReadCommands: the command lines of a session through the
// session's input buffer and readLine, as the SMTP loop reads them.
func BenchmarkReadCommands(b *testing.B) {
	commands, _ := benchSessionText()
	r := bytes.NewReader(commands)
	s := &session{br: newInbuf(r)}
	b.SetBytes(int64(len(commands)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(commands)
		s.br.Reset(r)
		for range 4 {
			if _, err := s.readLine(time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReadData: the DATA stream of a 2 KiB message through the
// dataReader (line ends checked, dot-stuffing removed, header noted)
// into a copy, as Backend.Enqueue reads it.
func BenchmarkReadData(b *testing.B) {
	_, data := benchSessionText()
	r := bytes.NewReader(data)
	s := &session{br: newInbuf(r), cfg: &Config{MaxHopCount: 25}}
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(data)
		s.br.Reset(r)
		d := &dataReader{s: s, bol: true, inHeader: true, deadline: time.Now().Add(time.Hour)}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{d}, buf); err != nil {
			b.Fatal(err)
		}
		if !d.done {
			b.Fatal("no final dot")
		}
	}
}
