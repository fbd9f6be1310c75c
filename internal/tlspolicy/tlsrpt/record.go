package tlsrpt

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strings"
)

// Record is a domain's TLSRPT record.
type Record struct {
	Mailto []string // the mailto: addresses of rua
	Other  []string // the other rua URIs (https:), not used
}

// ParseRecord reads the TXT records of _smtp._tls.<domain> (RFC 8460
// §3): the one starting with "v=TLSRPTv1".
func ParseRecord(texts []string) (Record, error) {
	var found []string
	for _, t := range texts {
		if strings.HasPrefix(t, "v=TLSRPTv1") {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return Record{}, errors.New("no v=TLSRPTv1 record")
	case 1:
	default:
		return Record{}, errors.New("more than one v=TLSRPTv1 record")
	}
	fields := strings.Split(found[0], ";")
	if strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
		return Record{}, fmt.Errorf("bad version in %q", found[0])
	}
	var rec Record
	seenRUA := false
	for _, f := range fields[1:] {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return Record{}, fmt.Errorf("bad field %q", f)
		}
		if strings.TrimSpace(k) != "rua" || seenRUA {
			continue
		}
		seenRUA = true
		for _, u := range strings.Split(v, ",") {
			u = strings.TrimSpace(u)
			if addr, ok := strings.CutPrefix(u, "mailto:"); ok {
				addr, err := url.PathUnescape(addr)
				if err != nil {
					return Record{}, fmt.Errorf("bad mailto: URI %q", u)
				}
				addr, _, _ = strings.Cut(addr, "?")
				if a, err := mail.ParseAddress(addr); err == nil && strings.Contains(a.Address, "@") {
					rec.Mailto = append(rec.Mailto, a.Address)
					continue
				}
				return Record{}, fmt.Errorf("bad mailto: address %q", addr)
			}
			if u != "" {
				rec.Other = append(rec.Other, u)
			}
		}
	}
	if !seenRUA || len(rec.Mailto)+len(rec.Other) == 0 {
		return Record{}, errors.New("no rua")
	}
	return rec, nil
}
