package mta

import (
	"bufio"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/posthorn/posthorn/conf"
)

// lmtpStore is a minimal LMTP server: it takes every recipient but
// "nobody" and records the RCPT commands and messages.
type lmtpStore struct {
	mu    sync.Mutex
	rcpts []string
	data  []string
}

func (s *lmtpStore) serve(t *testing.T, path string) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.session(c)
		}
	}()
}

func (s *lmtpStore) session(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	c.Write([]byte("220 store LMTP\r\n"))
	var ok []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		switch cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0]); cmd {
		case "LHLO":
			c.Write([]byte("250-store\r\n250 ENHANCEDSTATUSCODES\r\n"))
		case "RCPT":
			if strings.Contains(line, "<nobody>") {
				c.Write([]byte("550 5.1.1 <nobody> User doesn't exist\r\n"))
				continue
			}
			s.mu.Lock()
			s.rcpts = append(s.rcpts, line)
			s.mu.Unlock()
			ok = append(ok, line)
			c.Write([]byte("250 2.1.5 OK\r\n"))
		case "DATA":
			c.Write([]byte("354 OK\r\n"))
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil || l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.data = append(s.data, b.String())
			s.mu.Unlock()
			for range ok {
				c.Write([]byte("250 2.0.0 Saved\r\n"))
			}
			ok = nil
		case "QUIT":
			c.Write([]byte("221 bye\r\n"))
			return
		default:
			c.Write([]byte("250 OK\r\n"))
		}
	}
}

func (s *lmtpStore) got() ([]string, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rcpts...), append([]string(nil), s.data...)
}

// With sendmail.cf's Mlocal over LMTP and no F=w, local names need no
// account here: an alias list of the store's users is accepted at RCPT,
// expanded, and delivered over LMTP in one transaction; .forward and
// mbox are not used.
func TestLocalMailerLMTP(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "lmtp")
	store := &lmtpStore{}
	store.serve(t, sock)
	w := newWorld(t, "staff: vuser1, vuser2\n", "Mlocal, P=[IPC], F=lsDFMA5:/|@qSPfhn9z, S=EnvFromL, R=EnvToL/HdrToL,\n\tT=DNS/RFC822/SMTP, A=FILE "+sock)
	msg := "From: <sender@client.example>\r\nSubject: to the store\r\n\r\nbody\r\n"
	if err := w.send("sender@client.example", []string{"staff@localhost", "carol@localhost"}, msg); err != nil {
		t.Fatal(err)
	}
	w.waitFor("an empty queue", func() bool { return w.queued() == 0 })
	rcpts, data := store.got()
	slices.Sort(rcpts)
	if strings.Join(rcpts, "|") != "RCPT To:<carol>|RCPT To:<vuser1>|RCPT To:<vuser2>" || len(data) != 1 {
		t.Errorf("rcpts %q, %d messages", rcpts, len(data))
	}
	if len(data) == 1 && (!strings.Contains(data[0], "Subject: to the store") || !strings.Contains(data[0], "Return-Path: <sender@client.example>")) {
		t.Errorf("message %q", data[0])
	}
	// The runner logs the recipients of one delivery on one to= line.
	if n := strings.Count(w.logged(), "relay="+sock+", dsn=2.0.0, stat=Sent"); n != 2 || !strings.Contains(w.logged(), "vuser1") {
		t.Errorf("%d local deliveries logged:\n%s", n, w.logged())
	}
	if w.mailbox("carol") != "" {
		t.Error("an mbox was written")
	}
}

func TestLocalLMTPDefinitions(t *testing.T) {
	for _, tc := range []struct {
		line, network, addr, err string
	}{
		{"Mlocal, P=[IPC], F=lsDFMAw5:/|@qSPfhn9z, A=TCP 127.0.0.1 24", "tcp", "127.0.0.1:24", ""},
		{"Mlocal, P=[IPC], F=z, A=TCP [::1]", "tcp", "[::1]:25", ""},
		{"Mlocal, P=[IPC], F=lsDFMz, A=FILE /run/dovecot/lmtp", "unix", "/run/dovecot/lmtp", ""},
		{"Mlocal, P=/usr/libexec/sendmail/mail.local, F=lsDFMAw5:/|@qPSXnz9m, A=mail.local -l", "", "", ""},
		{"Mlocal, P=[IPC], F=lsDFM, A=TCP 127.0.0.1 24", "", "", "without F=z"},
		{"Mlocal, P=[IPC], F=z, A=TCP $h 24", "", "", "macros"},
		{"Mlocal, P=[IPC], F=z, A=FILE run/lmtp", "", "", "absolute"},
		{"Mlocal, P=[IPC], F=z, A=IPC x", "", "", "want"},
	} {
		cfg, err := conf.Load(conf.LoadOptions{Path: "x.cf", ReadFile: func(string) ([]byte, error) { return []byte(tc.line + "\n"), nil },
			Identity: &conf.Identity{Hostname: "h", Canonical: "h.test"}})
		if err != nil {
			t.Fatal(err)
		}
		network, addr, ok, err := LocalLMTP(cfg)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.line, err, tc.err)
			}
		case err != nil || network != tc.network || addr != tc.addr || ok != (tc.network != ""):
			t.Errorf("%s: %s %s %v %v", tc.line, network, addr, ok, err)
		}
	}
}
