package smtpd_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/policy"
	"github.com/posthorn/posthorn/internal/smtpd"
	"golang.org/x/crypto/bcrypt"
)

// testCert makes a self-signed certificate for refhost.example.org.
func testCert(t testing.TB) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "refhost.example.org"},
		DNSNames:     []string{"refhost.example.org"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestLoadTLS(t *testing.T) {
	cert := testCert(t)
	dir := t.TempDir()
	key, _ := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600)
	c, err := smtpd.LoadTLS(certFile, keyFile)
	if err != nil || len(c.Certificates) != 1 || !c.SessionTicketsDisabled {
		t.Fatalf("%v %+v", err, c)
	}
	if _, err := smtpd.LoadTLS(keyFile, certFile); err == nil {
		t.Error("swapped files accepted")
	}
}

func authFile(t testing.TB) *policy.AuthFile {
	h, _ := bcrypt.GenerateFromPassword([]byte("secret"), bcrypt.MinCost)
	a, err := policy.ParseAuthFile(strings.NewReader("alice:"+string(h)+"\n"), "auth")
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// loginAuth is AUTH LOGIN for net/smtp.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }
func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	switch {
	case !more:
		return nil, nil
	case string(challenge) == "Username:":
		return []byte(a.user), nil
	case string(challenge) == "Password:":
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected challenge " + string(challenge))
}

func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestSTARTTLSAndAuthMSA(t *testing.T) {
	cert := testCert(t)
	h := start(t, func(c *smtpd.Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		c.Auth = authFile(t)
		c.RequireAuth = true
		c.DaemonName = "MSA"
	})
	for _, mech := range []string{"PLAIN", "LOGIN"} {
		t.Run(mech, func(t *testing.T) {
			conn := dialFrom(t, "", h.addr)
			c, err := smtp.NewClient(conn, "refhost.example.org")
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if err := c.Hello("client.example"); err != nil {
				t.Fatal(err)
			}
			if ok, _ := c.Extension("AUTH"); ok {
				t.Error("AUTH offered before TLS")
			}
			if ok, _ := c.Extension("STARTTLS"); !ok {
				t.Fatal("STARTTLS not offered")
			}
			if err := c.Mail("alice@refhost.example.org"); code(err) != 530 {
				t.Errorf("MAIL before AUTH: %v", err)
			}
			if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
				t.Fatal(err)
			}
			if ok, params := c.Extension("AUTH"); !ok || params != "LOGIN PLAIN" {
				t.Errorf("AUTH after TLS: %v %q", ok, params)
			}
			var good, bad smtp.Auth = smtp.PlainAuth("", "alice", "secret", "refhost.example.org"), smtp.PlainAuth("", "alice", "wrong", "refhost.example.org")
			if mech == "LOGIN" {
				good, bad = loginAuth{"alice", "secret"}, loginAuth{"alice", "wrong"}
			}
			// net/smtp gives up the connection after a failed AUTH
			if err := badAuth(t, h.addr, bad); code(err) != 535 {
				t.Errorf("bad password: %v", err)
			}
			if err := c.Auth(good); err != nil {
				t.Fatalf("good password: %v", err)
			}
			if err := c.Mail("bob@refhost.example.org"); code(err) != 553 {
				t.Errorf("MAIL as someone else: %v", err)
			}
			if err := c.Mail("alice@refhost.example.org"); err != nil {
				t.Fatal(err)
			}
			if err := c.Rcpt("user@remote.example"); err != nil {
				t.Fatal(err)
			}
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			_, _ = w.Write([]byte("Subject: tls\r\n\r\nbody\r\n"))
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			_ = c.Quit()
		})
	}
	msgs := h.be.Stored()
	if len(msgs) != 2 {
		t.Fatalf("stored %d", len(msgs))
	}
	data := msgs[0].Env.Received
	for _, want := range []string{"\t(authenticated bits=0)\n\tby refhost.example.org (posthorn 0.1) with ESMTPSA id ", "\n\t(version=TLSv1.3 cipher=TLS_"} {
		if !strings.Contains(data, want) {
			t.Errorf("Received lacks %q:\n%s", want, data)
		}
	}
}

func badAuth(t *testing.T, addr string, a smtp.Auth) error {
	c, err := smtp.NewClient(dialFrom(t, "", addr), "refhost.example.org")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{InsecureSkipVerify: true}); err != nil {
		t.Fatal(err)
	}
	return c.Auth(a)
}

func TestAuthRefusals(t *testing.T) {
	cert := testCert(t)
	h := start(t, func(c *smtpd.Config) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		c.Auth = authFile(t)
	})
	got := h.run(t, "", "> EHLO c\n> AUTH PLAIN AGFsaWNlAHNlY3JldA==\n> STARTTLS now\n> QUIT\n")
	for _, w := range []string{"250-STARTTLS", "503 5.3.3 AUTH not available", "501 5.5.2 Syntax error (no parameters allowed)"} {
		if !contains(got, w) {
			t.Errorf("no %q in %q", w, got)
		}
	}
	// plaintext pipelined after STARTTLS must not survive into the TLS session
	got = h.run(t, "", "> EHLO c\nRAW b'STARTTLS\\r\\nMAIL FROM:<a@b>\\r\\n'\nWAIT\n")
	if !contains(got, "554 5.5.0 SMTP protocol error") {
		t.Errorf("STARTTLS injection: %q", got)
	}
}
