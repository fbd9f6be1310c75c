package mta

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/posthorn/posthorn/conf"
	"github.com/posthorn/posthorn/internal/relay"
)

// LocalLMTP reads the local mailer's definition (sendmail.cf's Mlocal
// line) and says whether local mail goes to an LMTP server, and where:
//
//	Mlocal, P=[IPC], F=lsDFMAw5:/|@qSPfhn9z, A=TCP 127.0.0.1 24      LMTP over TCP (port 25 if none)
//	Mlocal, P=[IPC], F=lsDFMA5:/|@qSPfhn9z, A=FILE /run/dovecot/lmtp LMTP to a Unix socket
//
// The [IPC] forms need F=z (LMTP). Any other local mailer, such as
// Debian's "P=/usr/libexec/sendmail/mail.local, ..., A=mail.local -l",
// is delivered by posthorn's own mail.local (the mbox agent), the same
// program; a P= that is not a mail.local is noted as not interpreted.
// ok is false for the built-in agent; an error is a definition posthorn
// cannot follow.
func LocalLMTP(cfg *conf.Config) (network, address string, ok bool, err error) {
	m := cfg.Mailers["local"]
	if m == nil {
		return "", "", false, nil
	}
	if m.Path != "[IPC]" {
		if filepath.Base(m.Path) != "mail.local" {
			NoteNotInterpreted(cfg, "mailer local P="+m.Path+" (posthorn's mail.local delivers)")
		}
		return "", "", false, nil
	}
	if !m.HasFlag('z') {
		return "", "", false, fmt.Errorf("mailer local: P=[IPC] without F=z (LMTP) is not supported")
	}
	if len(m.Args) < 2 {
		return "", "", false, fmt.Errorf("mailer local: A=%s: want \"TCP host [port]\" or \"FILE /path\"", strings.Join(m.Args, " "))
	}
	switch strings.ToUpper(m.Args[0]) {
	case "TCP":
		host, port := m.Args[1], "25"
		if len(m.Args) > 2 {
			port = m.Args[2]
		}
		if strings.Contains(host, "$") || strings.Contains(port, "$") {
			return "", "", false, fmt.Errorf("mailer local: A=%s: macros are not supported here", strings.Join(m.Args, " "))
		}
		return "tcp", net.JoinHostPort(strings.Trim(host, "[]"), port), true, nil
	case "FILE":
		if !filepath.IsAbs(m.Args[1]) {
			return "", "", false, fmt.Errorf("mailer local: A=FILE %s: not an absolute path", m.Args[1])
		}
		return "unix", m.Args[1], true, nil
	}
	return "", "", false, fmt.Errorf("mailer local: A=%s: want \"TCP host [port]\" or \"FILE /path\"", strings.Join(m.Args, " "))
}

// anyLocalUser reports whether local names need no account of this host:
// an LMTP local mailer without F=w, whose server knows its own users.
func anyLocalUser(cfg *conf.Config) bool {
	_, _, ok, err := LocalLMTP(cfg)
	return ok && err == nil && !cfg.Mailers["local"].HasFlag('w')
}

// lmtpMailer is the LMTP client for the local mailer, or nil.
func (s *Site) lmtpMailer() (*relay.LMTP, error) {
	network, address, ok, err := LocalLMTP(s.Config)
	if err != nil || !ok {
		return nil, err
	}
	cfg := s.Config
	return relay.NewLMTP(relay.LMTPConfig{
		Network: network, Address: address, Hostname: cfg.Macros["j"],
		Timeouts: relay.TimeoutsFrom(cfg.Timeout), LHLO: cfg.Timeout("lhlo"),
		ConnectionCacheSize: cfg.ConnectionCacheSize, ConnectionCacheTimeout: cfg.ConnectionCacheTimeout,
		Logger: s.Log, Now: s.now,
	}), nil
}
