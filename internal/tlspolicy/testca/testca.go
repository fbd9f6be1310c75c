// Package testca makes certificate authorities and certificates for the
// tests of outbound TLS (unit, in-process and black-box): a root, an
// optional intermediate, and server certificates with chosen names and
// validity, all ECDSA P-256. Nothing outside tests imports it.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

var serial atomic.Int64

// CA is a certificate authority: a root and, when made with
// Intermediate, the intermediate that signs its certificates.
type CA struct {
	Root      *x509.Certificate
	rootKey   *ecdsa.PrivateKey
	Inter     *x509.Certificate // nil: the root signs
	interKey  *ecdsa.PrivateKey
	now       time.Time
	signer    *x509.Certificate
	signerKey *ecdsa.PrivateKey
}

func key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func create(t testing.TB, tmpl, parent *x509.Certificate, pub, priv any) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// New makes a root CA valid around now (a day either side).
func New(t testing.TB, name string, now time.Time) *CA {
	t.Helper()
	k := key(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	root := create(t, tmpl, tmpl, &k.PublicKey, k)
	return &CA{Root: root, rootKey: k, now: now, signer: root, signerKey: k}
}

// Intermediate makes an intermediate CA under the root sign from now on.
func (ca *CA) Intermediate(t testing.TB, name string) {
	t.Helper()
	k := key(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: ca.now.Add(-24 * time.Hour), NotAfter: ca.now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	ca.Inter, ca.interKey = create(t, tmpl, ca.Root, &k.PublicKey, ca.rootKey), k
	ca.signer, ca.signerKey = ca.Inter, k
}

// Pool is a pool holding the root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// Cert is a server certificate and its chain as the server sends it
// (leaf, then the intermediate when there is one).
type Cert struct {
	TLS   tls.Certificate
	Leaf  *x509.Certificate
	Chain []*x509.Certificate
}

// Server issues a certificate for names (DNS names, or IP addresses)
// valid from notBefore to notAfter.
func (ca *CA) Server(t testing.TB, names []string, notBefore, notAfter time.Time) Cert {
	t.Helper()
	k := key(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if len(names) > 0 {
		tmpl.Subject = pkix.Name{CommonName: names[0]}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	leaf := create(t, tmpl, ca.signer, &k.PublicKey, ca.signerKey)
	c := Cert{Leaf: leaf, Chain: []*x509.Certificate{leaf}}
	c.TLS = tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: k, Leaf: leaf}
	if ca.Inter != nil {
		c.Chain = append(c.Chain, ca.Inter)
		c.TLS.Certificate = append(c.TLS.Certificate, ca.Inter.Raw)
	}
	return c
}

// Valid issues a certificate for names valid around the CA's time.
func (ca *CA) Valid(t testing.TB, names ...string) Cert {
	return ca.Server(t, names, ca.now.Add(-time.Hour), ca.now.Add(time.Hour))
}

// Expired issues a certificate for names that expired an hour before the
// CA's time.
func (ca *CA) Expired(t testing.TB, names ...string) Cert {
	return ca.Server(t, names, ca.now.Add(-3*time.Hour), ca.now.Add(-time.Hour))
}

// WriteRoot writes the root certificate as PEM (a CACertFile).
func (ca *CA) WriteRoot(t testing.TB, path string) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Root.Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// WritePEM writes a certificate's chain and key as PEM files.
func (c Cert) WritePEM(t testing.TB, certPath, keyPath string) {
	t.Helper()
	var certs []byte
	for _, der := range c.TLS.Certificate {
		certs = append(certs, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	kb, err := x509.MarshalECPrivateKey(c.TLS.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, certs, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
