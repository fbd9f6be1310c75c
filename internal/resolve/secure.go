package resolve

import (
	"context"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// TLSAResult is the answer to a TLSA question.
type TLSAResult struct {
	Name    string      // the question: "_25._tcp.mx.example"
	Records []*dns.TLSA // none for NXDOMAIN and NODATA
	// Secure: the answer (records or their absence) was authenticated.
	Secure bool
}

// TLSA asks for the TLSA records of host's port over TCP
// ("_25._tcp.mx.example", RFC 6698 §3). The error is a temporary failure
// (a timeout, SERVFAIL: what a validating resolver answers to bogus
// data), as a *status.Error.
func (r *Resolver) TLSA(ctx context.Context, port int, host string) (TLSAResult, error) {
	name := "_" + strconv.Itoa(port) + "._tcp." + normName(host)
	res := TLSAResult{Name: name}
	if _, ok := dns.IsDomainName(name); !ok || !isASCII(name) {
		return res, hostNotFound(name)
	}
	a, err := r.lookup(ctx, name, dns.TypeTLSA)
	if err != nil {
		return res, lookupFailure(name, err)
	}
	res.Secure = a.secure
	for _, rr := range a.rrs {
		if t, ok := rr.(*dns.TLSA); ok {
			res.Records = append(res.Records, t)
		}
	}
	return res, nil
}

// TXTResult is the answer to a TXT question: each record's strings
// joined, as RFC 7208 §3.3 and RFC 8461 §3.1 read them.
type TXTResult struct {
	Texts  []string
	Secure bool
}

// TXT asks for the TXT records of name. NXDOMAIN and NODATA are no
// records and no error; the error is a temporary failure.
func (r *Resolver) TXT(ctx context.Context, name string) (TXTResult, error) {
	name = normName(name)
	if _, ok := dns.IsDomainName(name); !ok || !isASCII(name) || name == "" {
		return TXTResult{}, hostNotFound(name)
	}
	a, err := r.lookup(ctx, name, dns.TypeTXT)
	if err != nil {
		return TXTResult{}, lookupFailure(name, err)
	}
	res := TXTResult{Secure: a.secure}
	for _, rr := range a.rrs {
		if t, ok := rr.(*dns.TXT); ok {
			res.Texts = append(res.Texts, strings.Join(t.Txt, ""))
		}
	}
	return res, nil
}
