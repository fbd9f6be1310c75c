package tlspolicy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"
)

// pkixChain verifies the peer's chain up to roots (nil: the system's) at
// now, without a name.
func pkixChain(cs tls.ConnectionState, roots *x509.CertPool, now time.Time) (*x509.Certificate, error) {
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("no server certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return leaf, err
}

// nameError is a certificate valid but for other names.
type nameError struct{ want, have []string }

func (e *nameError) Error() string {
	return fmt.Sprintf("certificate is valid for %s, not %s", strings.Join(e.have, ", "), strings.Join(e.want, " or "))
}

func (e *nameError) TLSRPTResult() string { return "certificate-host-mismatch" }

// matchNames checks the leaf's DNS names against match names: "name"
// matches that host (a wildcard certificate name covers one label), and
// ".name" any host below name (Postfix's match= syntax after hostname,
// nexthop and dot-nexthop are resolved).
func matchNames(leaf *x509.Certificate, names []string) error {
	for _, n := range names {
		if sub, ok := strings.CutPrefix(n, "."); ok {
			for _, san := range leaf.DNSNames {
				if strings.HasSuffix(strings.ToLower(san), "."+sub) {
					return nil
				}
			}
			continue
		}
		if leaf.VerifyHostname(n) == nil {
			return nil
		}
	}
	have := leaf.DNSNames
	if len(have) == 0 {
		have = []string{"no DNS name"}
	}
	return &nameError{want: names, have: have}
}
