package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

// writeTestCert writes a self-signed certificate and key for posthorn.test.
func writeTestCert(t *testing.T, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "posthorn.test"}, DNSNames: []string{"posthorn.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
}

// TestSubmissionPortTLSAuth: a Name=MSA, M=Ea listener offers STARTTLS,
// refuses AUTH before it and MAIL before AUTH, accepts AUTH PLAIN against
// the AuthFile after it, and checks that the sender belongs to the user.
func TestSubmissionPortTLSAuth(t *testing.T) {
	msaPort := freePort(t)
	r := newRoot(t, "O DeliveryMode=queueonly",
		fmt.Sprintf("O DaemonPortOptions=Name=MSA, Family=inet, Addr=127.0.0.1, Port=%d, M=Ea", msaPort),
		"O ServerCertFile=CERT", "O ServerKeyFile=KEY")
	cert, key := r.path("etc/server.crt"), r.path("etc/server.key")
	writeTestCert(t, cert, key)
	cf, _ := os.ReadFile(r.cf)
	os.WriteFile(r.cf, []byte(strings.NewReplacer("=CERT", "="+cert, "=KEY", "="+key).Replace(string(cf))), 0o644)
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	os.WriteFile(r.path("etc/auth"), []byte("alice:"+string(hash)+"\n"), 0o600)
	startDaemon(t, r)
	msa := fmt.Sprintf("127.0.0.1:%d", msaPort)
	c0, _, greeting := waitGreeting(t, msa)
	c0.Close()
	if !strings.HasPrefix(greeting, "220 posthorn.test ESMTP") {
		t.Fatalf("MSA greeting %q", greeting)
	}

	c, err := smtp.Dial(msa)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before TLS")
	}
	if err := c.Mail("alice@posthorn.test", nil); err == nil {
		t.Error("MAIL accepted without AUTH on the submission port")
	}
	c.Close()

	c, err = smtp.DialStartTLS(msa, &tls.Config{InsecureSkipVerify: true, ServerName: "posthorn.test"})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if ok, mechs := c.Extension("AUTH"); !ok || !strings.Contains(mechs, "PLAIN") {
		t.Fatalf("AUTH after TLS: %v %q", ok, mechs)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "wrong")); err == nil {
		t.Error("a wrong password was accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice", "s3cret")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := c.Mail("mallory@elsewhere.example", nil); err == nil {
		t.Error("a sender that does not belong to alice was accepted")
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@posthorn.test", []string{"someone@remote.example"}, strings.NewReader("Subject: submitted\r\n\r\nbody\r\n")); err != nil {
		t.Fatalf("authenticated submission: %v", err)
	}
	list := run(t, binary(t), "", "-C", r.cf, "-bp")
	if !strings.Contains(list.stdout, "<alice@posthorn.test>") || !strings.Contains(list.stdout, "someone@remote.example") {
		t.Errorf("the relayed submission is not queued:\n%s", list.stdout)
	}
}
