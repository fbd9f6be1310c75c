package smtpd

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
)

// starttls handles STARTTLS (RFC 3207).
func (s *session) starttls(arg string) {
	switch {
	case s.cfg.TLS == nil || s.conn == nil:
		s.reply(454, "4.3.3", "TLS not available after start")
		return
	case s.c.TLS:
		s.reply(503, "5.5.0", "TLS already active")
		return
	case arg != "":
		s.reply(501, "5.5.2", "Syntax error (no parameters allowed)")
		return
	case s.br.Buffered() > 0:
		// plaintext sent after STARTTLS would be taken as if it came
		// over TLS (CVE-2011-0411): refuse it.
		s.reply(554, "5.5.0", "SMTP protocol error")
		s.closing = true
		return
	}
	s.reply(220, "2.0.0", "Ready to start TLS")
	if err := s.flush(); err != nil {
		return
	}
	tc := tls.Server(s.conn, s.cfg.TLS)
	s.setReadDeadline(s.cfg.Timeouts.Command)
	if err := tc.HandshakeContext(s.ctx); err != nil {
		s.log().Noticef(s.id, "STARTTLS=server, relay=%s, error: accept failed=%v", s.c.Relay(), err)
		s.closing = true
		return
	}
	st := tc.ConnectionState()
	s.tlsState = &st
	s.conn, s.r, s.w, s.rdl = tc, tc, tc, tc
	s.br.Reset(tc)
	// RFC 3207 4.2: forget everything learnt before TLS.
	s.endTransaction()
	s.c.TLS, s.c.Helo, s.c.ESMTP = true, "", false
	s.c.TLSVersion, s.c.Cipher = tlsVersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	s.log().Infof(s.id, "STARTTLS=server, relay=%s, version=%s, verify=NO, cipher=%s", s.c.Relay(), tlsVersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
}

// authOffered reports whether AUTH is available now: configured, over
// TLS, after EHLO.
func (s *session) authOffered() bool {
	return s.cfg.Auth != nil && s.c.TLS && s.c.ESMTP
}

// auth handles AUTH PLAIN and AUTH LOGIN (RFC 4954).
func (s *session) auth(arg string) {
	switch {
	case !s.authOffered():
		s.reply(503, "5.3.3", "AUTH not available")
		return
	case s.c.AuthUser != "":
		s.reply(503, "5.5.0", "Already Authenticated")
		return
	case s.env != nil:
		s.reply(503, "5.5.0", "AUTH not permitted during a mail transaction")
		return
	case arg == "":
		s.reply(501, "5.5.2", "AUTH mechanism must be specified")
		return
	}
	mech, initial, _ := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	var user, pass string
	var ok bool
	switch mech {
	case "PLAIN":
		resp, good := s.authResponse(initial, "")
		if !good {
			return
		}
		if user, pass, ok = plainCredentials(resp); !ok {
			s.authFailed(mech, "")
			return
		}
	case "LOGIN":
		u, good := s.authResponse(initial, "VXNlcm5hbWU6") // "Username:"
		if !good {
			return
		}
		p, good := s.authResponse("", "UGFzc3dvcmQ6") // "Password:"
		if !good {
			return
		}
		user, pass, ok = string(u), string(p), true
	default:
		s.reply(504, "5.3.3", "AUTH mechanism %.32s not available", mech)
		return
	}
	if !ok || !s.cfg.Auth.Authenticate(user, pass) {
		s.authFailed(mech, user)
		return
	}
	s.c.AuthUser, s.c.AuthMech = user, mech
	s.log().Infof(s.id, "AUTH=server, relay=%s, authid=%s, mech=%s, bits=0", s.c.Relay(), user, mech)
	s.reply(235, "2.0.0", "OK Authenticated")
}

func (s *session) authFailed(mech, user string) {
	s.log().Noticef(s.id, "AUTH failure (%s): authentication failure, user=%s, relay=%s", mech, logSafe(user), s.c.Relay())
	s.reply(535, "5.7.0", "authentication failed")
	s.tooManyBad()
}

// authResponse returns the decoded initial response, or sends the 334
// challenge and reads the client's answer.
func (s *session) authResponse(initial, challenge string) ([]byte, bool) {
	resp := initial
	if resp == "" {
		s.reply(334, "", "%s", challenge)
		if err := s.flush(); err != nil {
			return nil, false
		}
		line, err := s.readLine(s.cfg.Timeouts.Command)
		if err != nil {
			s.closing = true
			return nil, false
		}
		resp = line
	}
	b, err := decodeResponse(resp)
	if err != nil {
		s.replyErr(err)
		return nil, false
	}
	return b, true
}

// decodeResponse decodes one client response of an AUTH exchange (RFC
// 4954 4): "*" cancels, "=" is the empty response, anything else must be
// base64.
func decodeResponse(resp string) ([]byte, error) {
	switch resp {
	case "*":
		return nil, status.New(501, "5.0.0", "AUTH aborted")
	case "=":
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(resp)
	if err != nil {
		return nil, status.New(501, "5.5.4", "cannot decode AUTH parameter %.40s", resp)
	}
	return b, nil
}

// plainCredentials splits an AUTH PLAIN response, "authzid NUL authcid
// NUL password" (RFC 4616). An authorization identity other than the
// user's own is refused: posthorn lets nobody act for another user.
func plainCredentials(resp []byte) (user, pass string, ok bool) {
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 || (len(parts[0]) > 0 && !bytes.Equal(parts[0], parts[1])) {
		return "", "", false
	}
	return string(parts[1]), string(parts[2]), true
}

// logSafe is a client-chosen name as a log line may hold it: at most 64
// bytes (sendmail's MAX_AUTH_LOG_LEN), control characters shown as '?',
// so that a failed AUTH cannot forge log lines.
func logSafe(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c == 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}
