package tlspolicy

import "fmt"

// Level is a TLS security level, as Postfix names them
// (smtp_tls_security_level, the policy map's first word).
type Level int

// The levels, weakest first.
const (
	None     Level = iota // no STARTTLS
	May                   // opportunistic: STARTTLS when offered, any certificate, plain text after a failed handshake
	Encrypt               // STARTTLS required, any certificate
	DANE                  // DANE when the host has DNSSEC-validated TLSA records, else may
	DANEOnly              // DANE required: no validated TLSA records, no delivery
	Verify                // STARTTLS with a certificate valid (system roots or CACertFile) for the match names (default: the MX host name)
	Secure                // as verify, the match names defaulting to the next-hop domain and its subdomains
)

var levelNames = []string{"none", "may", "encrypt", "dane", "dane-only", "verify", "secure"}

func (l Level) String() string {
	if l >= 0 && int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// ParseLevel reads a level name.
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if s == n {
			return Level(i), nil
		}
	}
	switch s {
	case "fingerprint":
		return 0, fmt.Errorf("TLS security level %q is not supported", s)
	}
	return 0, fmt.Errorf("unknown TLS security level %q", s)
}
