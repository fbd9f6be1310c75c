package resolve

import (
	"strings"
	"testing"
	"time"
)

var secureZone = []string{
	soaRR,
	"signed.example. 300 IN MX 10 mx.signed.example.",
	"mx.signed.example. 300 IN A 127.0.0.40",
	"mx.signed.example. 300 IN AAAA ::1",
	"_25._tcp.mx.signed.example. 300 IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	"alias.signed.example. 300 IN CNAME mx.signed.example.",
	"_mta-sts.signed.example. 300 IN TXT \"v=STSv1; \" \"id=20260101;\"",
	"_mta-sts.signed.example. 300 IN TXT \"unrelated\"",
}

// The AD bit makes an answer secure only from a server marked
// validating; every step of a CNAME chain must have it.
func TestSecureAnswers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		validating bool
		ad         []string // names the server answers with AD
		mx, addrs  bool
		tlsa       bool
	}{
		{"validating, all signed", true, []string{"signed.example.", "mx.signed.example.", "_25._tcp.mx.signed.example."}, true, true, true},
		{"unmarked server sets AD", false, []string{"signed.example.", "mx.signed.example.", "_25._tcp.mx.signed.example."}, false, false, false},
		{"validating, MX unsigned", true, []string{"mx.signed.example.", "_25._tcp.mx.signed.example."}, false, true, true},
		{"validating, nothing signed", true, nil, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeDNS(t, secureZone...)
			f.set(f.ad, tc.ad...)
			clock := time.Unix(1_800_000_000, 0)
			r := testResolver(f, &clock)
			if tc.validating {
				r = New(Config{Servers: []string{f.addr}, Validating: []string{f.addr}, Timeout: 200 * time.Millisecond, Retries: 1,
					Now: func() time.Time { return clock }})
			}
			mxs, sec, err := r.SecureExchangers(ctx, "signed.example")
			if err != nil || len(mxs) != 1 || mxs[0].Host != "mx.signed.example" || sec != tc.mx {
				t.Errorf("MX: %v %v %v, want secure=%v", mxs, sec, err, tc.mx)
			}
			addrs, sec, err := r.SecureAddrs(ctx, "mx.signed.example")
			if err != nil || len(addrs) != 2 || sec != tc.addrs {
				t.Errorf("addrs: %v %v %v, want secure=%v", addrs, sec, err, tc.addrs)
			}
			res, err := r.TLSA(ctx, 25, "mx.signed.example.")
			if err != nil || len(res.Records) != 1 || res.Secure != tc.tlsa || res.Name != "_25._tcp.mx.signed.example" {
				t.Errorf("TLSA: %+v %v, want secure=%v", res, err, tc.tlsa)
			}
			if tc.validating {
				f.mu.Lock()
				asked := append([]bool(nil), f.adAsked...)
				f.mu.Unlock()
				for i, asked := range asked {
					if !asked {
						t.Errorf("question %d (%s) did not ask for AD", i, f.log()[i])
					}
				}
			}
			// Cached answers keep their verdict.
			if _, sec, _ := r.SecureExchangers(ctx, "signed.example"); sec != tc.mx {
				t.Errorf("cached MX secure=%v", sec)
			}
		})
	}
}

func TestSecureCNAMEChain(t *testing.T) {
	f := newFakeDNS(t, secureZone...)
	f.chase = false // the target is asked for separately
	f.set(f.ad, "mx.signed.example.")
	clock := time.Unix(1_800_000_000, 0)
	r := New(Config{Servers: []string{f.addr}, TrustAD: true, Timeout: 200 * time.Millisecond, Retries: 1, Now: func() time.Time { return clock }})
	if _, sec, err := r.SecureAddrs(ctx, "alias.signed.example"); err != nil || sec {
		t.Errorf("an unsigned CNAME to a signed name: secure=%v %v", sec, err)
	}
	f.set(f.ad, "alias.signed.example.")
	r = New(Config{Servers: []string{f.addr}, TrustAD: true, Timeout: 200 * time.Millisecond, Retries: 1, Now: func() time.Time { return clock }})
	if _, sec, err := r.SecureAddrs(ctx, "alias.signed.example"); err != nil || !sec {
		t.Errorf("a signed chain: secure=%v %v", sec, err)
	}
}

func TestTLSAAndTXTNegativeAndFailure(t *testing.T) {
	f := newFakeDNS(t, secureZone...)
	f.set(f.servfail, "_25._tcp.broken.signed.example.", "_smtp._tls.broken.signed.example.")
	f.set(f.ad, "_25._tcp.none.signed.example.")
	clock := time.Unix(1_800_000_000, 0)
	r := New(Config{Servers: []string{f.addr}, TrustAD: true, Timeout: 200 * time.Millisecond, Retries: 1, Now: func() time.Time { return clock }})
	res, err := r.TLSA(ctx, 25, "none.signed.example")
	if err != nil || len(res.Records) != 0 || !res.Secure {
		t.Errorf("secure NXDOMAIN: %+v %v", res, err)
	}
	if _, err := r.TLSA(ctx, 25, "broken.signed.example"); err == nil || !strings.Contains(err.Error(), "_25._tcp.broken.signed.example") {
		t.Errorf("SERVFAIL: %v", err)
	}
	txt, err := r.TXT(ctx, "_mta-sts.signed.example")
	if err != nil || len(txt.Texts) != 2 || txt.Texts[0] != "v=STSv1; id=20260101;" {
		t.Errorf("TXT: %+v %v", txt, err)
	}
	if txt, err := r.TXT(ctx, "_mta-sts.nowhere.signed.example"); err != nil || len(txt.Texts) != 0 {
		t.Errorf("TXT NXDOMAIN: %+v %v", txt, err)
	}
	if _, err := r.TXT(ctx, "_smtp._tls.broken.signed.example"); err == nil {
		t.Error("TXT SERVFAIL: no error")
	}
}
