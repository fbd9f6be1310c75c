package conf

import (
	"fmt"
	"strings"
)

// TLSOptions are the outbound TLS options (package tlspolicy reads them).
type TLSOptions struct {
	// PolicyMap is TLSPolicyMap: the per-destination TLS policy, in
	// Postfix's smtp_tls_policy_maps syntax.
	PolicyMap string
	// DefaultLevel is TLSDefaultLevel: none, may, encrypt, dane,
	// dane-only, verify or secure.
	DefaultLevel string
	// DANE is sendmail's DANE option: use DNSSEC-validated TLSA records.
	DANE bool
	// MTASTS is MTASTS: apply the domains' MTA-STS policies;
	// MTASTSCacheDirectory is where they are kept (relative: below the
	// queue directory).
	MTASTS               bool
	MTASTSCacheDirectory string
	// Reports is TLSReports: send RFC 8460 reports; ReportDirectory keeps
	// the sessions' results (relative: below the queue directory);
	// ReportSender is the reports' From and envelope sender (macros
	// expanded when used).
	Reports         bool
	ReportDirectory string
	ReportSender    string
	// CACertFile and CACertPath (sendmail's names) add trust anchors to
	// the system's for the verify, secure and MTA-STS checks.
	CACertFile, CACertPath string
	// TrustAD is ResolverOptions=+TRUSTAD: the DNS servers validate
	// DNSSEC, their AD bit is trusted (for DANE).
	TrustAD bool
}

// tlsLevels are the names TLSDefaultLevel takes.
var tlsLevels = []string{"none", "may", "encrypt", "dane", "dane-only", "verify", "secure"}

func setTLSDefaultLevel(c *Config, v string) error {
	v = strings.ToLower(strings.TrimSpace(v))
	for _, l := range tlsLevels {
		if v == l {
			c.TLS.DefaultLevel = v
			return nil
		}
	}
	return fmt.Errorf("unknown TLS security level %q (none, may, encrypt, dane, dane-only, verify, secure)", v)
}

// setResolverOptions reads sendmail's ResolverOptions (option I): resolver
// flags such as "+AAONLY -DNSRCH", of which posthorn acts on +TRUSTAD and
// -TRUSTAD (glibc's RES_TRUSTAD, sendmail 8.17's name); the others are
// noted as not interpreted.
func setResolverOptions(c *Config, v string) error {
	c.TLS.TrustAD = false
	for _, f := range strings.Fields(v) {
		name := strings.TrimLeft(f, "+-")
		switch {
		case strings.EqualFold(name, "TRUSTAD"):
			c.TLS.TrustAD = !strings.HasPrefix(f, "-")
		default:
			c.noteNotInterpreted("option ResolverOptions " + f)
		}
	}
	return nil
}
