// Package dane authenticates an SMTP server's certificate chain with TLSA
// records, as RFC 7672 (SMTP security via opportunistic DANE TLS)
// restricts RFC 6698 and RFC 7671 for mail. It is pure: the records come
// from the caller's DNSSEC-validated lookup, the chain from the TLS
// handshake, the time from the caller.
//
// # Records
//
// A TLSA record is "usage selector matching-type data" (RFC 6698 §2.1).
// Usable for SMTP (RFC 7672 §3.1) are:
//
//	usage     2 DANE-TA  a trust anchor in the chain the server presents
//	          3 DANE-EE  the server's own certificate or key
//	selector  0 the whole certificate (DER)
//	          1 its SubjectPublicKeyInfo (DER)
//	matching  0 the selected data itself
//	          1 its SHA-256 digest (32 octets)
//	          2 its SHA-512 digest (64 octets)
//
// PKIX-TA(0) and PKIX-EE(1) are unusable (RFC 7672 §3.1.3), as are other
// selectors and matching types and digests of the wrong length. A
// destination whose TLSA records are all unusable still gets mandatory
// TLS, without authentication (RFC 7672 §2.2); that decision is the
// caller's (Usable tells it).
//
// # Matching (Verify)
//
//   - DANE-EE(3): the leaf certificate (or its key) matches. Nothing else
//     is checked: not the names, not the validity dates, not the issuer
//     (RFC 7672 §3.1.1: the record binds the key to the host).
//   - DANE-TA(2): a certificate above the leaf in the presented chain (or
//     its key) matches; the chain from the leaf up to it must then verify
//     as PKIX does with that certificate as the only root: signatures,
//     validity dates at the caller's time, and the leaf's names against the
//     reference identifiers (RFC 7672 §3.2.2: the TLSA base domain, that
//     is the MX host name, and the names the caller adds). The server must
//     send the trust anchor in its chain (RFC 7672 §3.1.2); one that is
//     only named by a key not in the chain is not found.
//
// Any one matching record authenticates the server. A failure says why,
// in the words of the deferral ("no matching TLSA record") and as the
// RFC 8460 result type for TLS reports.
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Usages, selectors and matching types (RFC 6698 §2.1, RFC 7218).
const (
	PKIXTA = 0
	PKIXEE = 1
	DANETA = 2
	DANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// Record is one TLSA record.
type Record struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// String is the record in presentation form: "3 1 1 0a1b...".
func (r Record) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

// FromDNS converts TLSA resource records; a record whose data is not hex
// is dropped (it could match nothing).
func FromDNS(rrs []*dns.TLSA) []Record {
	var out []Record
	for _, rr := range rrs {
		data, err := hex.DecodeString(rr.Certificate)
		if err != nil {
			continue
		}
		out = append(out, Record{Usage: rr.Usage, Selector: rr.Selector, MatchingType: rr.MatchingType, Data: data})
	}
	return out
}

// Parse reads a record in presentation form ("3 1 1 hex").
func Parse(s string) (Record, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return Record{}, fmt.Errorf("TLSA record %q: want usage, selector, matching type and data", s)
	}
	var r Record
	for i, p := range []*uint8{&r.Usage, &r.Selector, &r.MatchingType} {
		n, err := strconv.ParseUint(f[i], 10, 8)
		if err != nil {
			return Record{}, fmt.Errorf("TLSA record %q: bad field %q", s, f[i])
		}
		*p = uint8(n)
	}
	data, err := hex.DecodeString(strings.Join(f[3:], ""))
	if err != nil {
		return Record{}, fmt.Errorf("TLSA record %q: data is not hex", s)
	}
	r.Data = data
	return r, nil
}

// usable reports whether SMTP may use the record (see the package
// comment).
func (r Record) usable() bool {
	if r.Usage != DANETA && r.Usage != DANEEE {
		return false
	}
	if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return len(r.Data) > 0
	case MatchSHA256:
		return len(r.Data) == sha256.Size
	case MatchSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

// Usable returns the records SMTP may use, in order.
func Usable(rs []Record) []Record {
	var out []Record
	for _, r := range rs {
		if r.usable() {
			out = append(out, r)
		}
	}
	return out
}

// Matches reports whether the record matches the certificate, whatever
// its usage.
func (r Record) Matches(c *x509.Certificate) bool {
	var sel []byte
	switch r.Selector {
	case SelectorCert:
		sel = c.Raw
	case SelectorSPKI:
		sel = c.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return bytes.Equal(sel, r.Data)
	case MatchSHA256:
		d := sha256.Sum256(sel)
		return bytes.Equal(d[:], r.Data)
	case MatchSHA512:
		d := sha512.Sum512(sel)
		return bytes.Equal(d[:], r.Data)
	}
	return false
}

// Match says which record authenticated the server.
type Match struct {
	Record Record
	Depth  int // 0: the leaf (DANE-EE); n: the n-th certificate above it (DANE-TA)
}

// Error is a chain the records do not authenticate.
type Error struct {
	Reason string // "no matching TLSA record", ...
	Result string // RFC 8460 result type: validation-failure, certificate-host-mismatch, certificate-expired
	Err    error  // the PKIX error of a DANE-TA chain, if that was the reason
}

func (e *Error) Error() string { return e.Reason }
func (e *Error) Unwrap() error { return e.Err }

// TLSRPTResult is the RFC 8460 result type of the failure.
func (e *Error) TLSRPTResult() string { return e.Result }

// ErrNoRecords is Verify without usable records.
var ErrNoRecords = errors.New("no usable TLSA records")

// Verify authenticates chain (the peer's certificates, leaf first) with
// the usable records among rs. names are the reference identifiers for
// DANE-TA (the MX host name first); now is the time the chain's validity
// dates are checked at.
func Verify(chain []*x509.Certificate, rs []Record, names []string, now time.Time) (Match, error) {
	rs = Usable(rs)
	if len(rs) == 0 {
		return Match{}, ErrNoRecords
	}
	if len(chain) == 0 {
		return Match{}, &Error{Reason: "no server certificate", Result: "validation-failure"}
	}
	for _, r := range rs {
		if r.Usage == DANEEE && r.Matches(chain[0]) {
			return Match{Record: r, Depth: 0}, nil
		}
	}
	var taErr *Error
	for _, r := range rs {
		if r.Usage != DANETA {
			continue
		}
		for depth := 1; depth < len(chain); depth++ {
			if !r.Matches(chain[depth]) {
				continue
			}
			err := verifyToAnchor(chain, depth, names, now)
			if err == nil {
				return Match{Record: r, Depth: depth}, nil
			}
			if taErr == nil {
				taErr = err
			}
		}
	}
	if taErr != nil {
		return Match{}, taErr
	}
	return Match{}, &Error{Reason: "no matching TLSA record", Result: "validation-failure"}
}

// verifyToAnchor checks the chain from the leaf up to chain[depth], which
// a DANE-TA record named, as the only root.
func verifyToAnchor(chain []*x509.Certificate, depth int, names []string, now time.Time) *Error {
	roots := x509.NewCertPool()
	roots.AddCert(chain[depth])
	inter := x509.NewCertPool()
	for _, c := range chain[1:depth] {
		inter.AddCert(c)
	}
	var first error
	for _, name := range names {
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: strings.TrimSuffix(name, "."),
			CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return &Error{Reason: "DANE-TA: no name to check the certificate against", Result: "certificate-host-mismatch"}
	}
	e := &Error{Reason: "DANE-TA chain does not verify: " + first.Error(), Result: "validation-failure", Err: first}
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	switch {
	case errors.As(first, &he):
		e.Reason, e.Result = "certificate not valid for "+strings.Join(names, " or ")+" (DANE-TA)", "certificate-host-mismatch"
	case errors.As(first, &ce) && ce.Reason == x509.Expired:
		e.Reason, e.Result = "certificate expired or not yet valid (DANE-TA)", "certificate-expired"
	}
	return e
}
