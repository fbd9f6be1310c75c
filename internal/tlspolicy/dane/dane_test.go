package dane

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/posthorn/posthorn/internal/tlspolicy/testca"
)

// rec makes a record for c's certificate or key.
func rec(usage, selector, mtype uint8, c *x509.Certificate) Record {
	data := c.Raw
	if selector == SelectorSPKI {
		data = c.RawSubjectPublicKeyInfo
	}
	switch mtype {
	case MatchSHA256:
		d := sha256.Sum256(data)
		data = d[:]
	case MatchSHA512:
		d := sha512.Sum512(data)
		data = d[:]
	}
	return Record{Usage: usage, Selector: selector, MatchingType: mtype, Data: append([]byte(nil), data...)}
}

func TestVerify(t *testing.T) {
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	ca := testca.New(t, "Test Root", now)
	ca.Intermediate(t, "Test Issuing CA")
	good := ca.Valid(t, "mx.example.net")
	wrongName := ca.Valid(t, "other.example.org")
	expired := ca.Expired(t, "mx.example.net")
	other := testca.New(t, "Other Root", now).Valid(t, "mx.example.net")
	names := []string{"mx.example.net."}

	type tc struct {
		name    string
		chain   []*x509.Certificate
		records []Record
		depth   int
		err     string // "" success; else the Reason's start
		result  string // the TLS-RPT result type on failure
	}
	var cases []tc
	// DANE-EE: every selector and matching type, on the leaf.
	for _, sel := range []uint8{SelectorCert, SelectorSPKI} {
		for _, mt := range []uint8{MatchFull, MatchSHA256, MatchSHA512} {
			r := rec(DANEEE, sel, mt, good.Leaf)
			cases = append(cases, tc{name: "EE " + r.String()[:5], chain: good.Chain, records: []Record{r}})
		}
	}
	// DANE-TA: the intermediate, by certificate and by key.
	for _, sel := range []uint8{SelectorCert, SelectorSPKI} {
		for _, mt := range []uint8{MatchFull, MatchSHA256, MatchSHA512} {
			r := rec(DANETA, sel, mt, ca.Inter)
			cases = append(cases, tc{name: "TA " + r.String()[:5], chain: good.Chain, records: []Record{r}, depth: 1})
		}
	}
	cases = append(cases,
		// DANE-EE binds the key: names and dates do not matter.
		tc{name: "EE wrong name", chain: wrongName.Chain, records: []Record{rec(DANEEE, 1, 1, wrongName.Leaf)}},
		tc{name: "EE expired", chain: expired.Chain, records: []Record{rec(DANEEE, 1, 1, expired.Leaf)}},
		// DANE-TA checks the chain below the anchor as PKIX does.
		tc{name: "TA wrong name", chain: wrongName.Chain, records: []Record{rec(DANETA, 0, 1, ca.Inter)},
			err: "certificate not valid for mx.example.net.", result: "certificate-host-mismatch"},
		tc{name: "TA expired", chain: expired.Chain, records: []Record{rec(DANETA, 1, 1, ca.Inter)},
			err: "certificate expired", result: "certificate-expired"},
		tc{name: "TA of another CA", chain: other.Chain, records: []Record{rec(DANETA, 0, 1, ca.Inter)},
			err: "no matching TLSA record", result: "validation-failure"},
		// A TA record does not match the leaf, an EE record not the anchor.
		tc{name: "TA record for the leaf", chain: good.Chain, records: []Record{rec(DANETA, 1, 1, good.Leaf)},
			err: "no matching TLSA record", result: "validation-failure"},
		tc{name: "EE record for the anchor", chain: good.Chain, records: []Record{rec(DANEEE, 1, 1, ca.Inter)},
			err: "no matching TLSA record", result: "validation-failure"},
		tc{name: "EE of another key", chain: other.Chain, records: []Record{rec(DANEEE, 1, 1, good.Leaf)},
			err: "no matching TLSA record", result: "validation-failure"},
		// Any one record suffices; unusable ones are skipped.
		tc{name: "one of several", chain: good.Chain, records: []Record{rec(DANEEE, 1, 1, other.Leaf), rec(PKIXEE, 1, 1, good.Leaf), rec(DANEEE, 0, 2, good.Leaf)}},
		tc{name: "no certificate", chain: nil, records: []Record{rec(DANEEE, 1, 1, good.Leaf)}, err: "no server certificate", result: "validation-failure"},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := Verify(c.chain, c.records, names, now)
			if c.err == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if m.Depth != c.depth {
					t.Errorf("depth %d, want %d", m.Depth, c.depth)
				}
				return
			}
			var de *Error
			if !errors.As(err, &de) || !strings.HasPrefix(de.Reason, c.err) || de.TLSRPTResult() != c.result {
				t.Errorf("error %v (%+v), want %q / %s", err, de, c.err, c.result)
			}
		})
	}
}

func TestUsable(t *testing.T) {
	d32, d64 := make([]byte, 32), make([]byte, 64)
	for _, tt := range []struct {
		r      Record
		usable bool
	}{
		{Record{3, 1, 1, d32}, true},
		{Record{3, 0, 2, d64}, true},
		{Record{2, 1, 0, []byte{0x30, 1}}, true},
		{Record{2, 0, 1, d32}, true},
		{Record{0, 1, 1, d32}, false}, // PKIX-TA
		{Record{1, 1, 1, d32}, false}, // PKIX-EE
		{Record{4, 1, 1, d32}, false}, // no such usage
		{Record{3, 2, 1, d32}, false}, // no such selector
		{Record{3, 1, 3, d32}, false}, // no such matching type
		{Record{3, 1, 1, d64}, false}, // SHA-256 of the wrong length
		{Record{3, 1, 2, d32}, false}, // SHA-512 of the wrong length
		{Record{3, 1, 0, nil}, false}, // empty full data
	} {
		if got := len(Usable([]Record{tt.r})) == 1; got != tt.usable {
			t.Errorf("%s: usable %v, want %v", tt.r, got, tt.usable)
		}
	}
	if _, err := Verify(nil, []Record{{0, 1, 1, d32}}, nil, time.Now()); err != ErrNoRecords {
		t.Errorf("only unusable records: %v", err)
	}
}

func TestParseAndFromDNS(t *testing.T) {
	r, err := Parse("3 1 1 0A0b 0c0d")
	if err != nil || r.String() != "3 1 1 0a0b0c0d" {
		t.Errorf("Parse: %v %v", r, err)
	}
	for _, bad := range []string{"3 1 1", "3 1 x 00", "256 1 1 00", "3 1 1 0g", "-1 1 1 00"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q): no error", bad)
		}
	}
	rr, err := dns.NewRR("_25._tcp.mx.example.net. 300 IN TLSA 3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	if err != nil {
		t.Fatal(err)
	}
	got := FromDNS([]*dns.TLSA{rr.(*dns.TLSA), {Usage: 3, Selector: 1, MatchingType: 1, Certificate: "zz"}})
	if len(got) != 1 || got[0].String() != "3 1 1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" {
		t.Errorf("FromDNS: %v", got)
	}
}
