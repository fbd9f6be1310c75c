package addrtest

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/relay"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/tlspolicy"
	"github.com/posthorn/posthorn/internal/tlspolicy/dane"
	"github.com/posthorn/posthorn/internal/tlspolicy/sts"
)

// fakeTLS decides by host and records the questions.
type fakeTLS struct{ asked []relay.TLSQuery }

func (f *fakeTLS) Decide(_ context.Context, q relay.TLSQuery) tlspolicy.Decision {
	f.asked = append(f.asked, q)
	switch q.Host {
	case "mx1.multi.example":
		r, _ := dane.Parse("3 1 1 00112233")
		return tlspolicy.Decision{Level: tlspolicy.Verify, Source: "dane", Why: "1 usable TLSA record(s) at _25._tcp.mx1.multi.example", TLSA: []dane.Record{r}}
	case "mx2.multi.example":
		p, _ := sts.Parse([]byte("version: STSv1\nmode: enforce\nmx: mx1.multi.example\nmax_age: 86400\n"))
		return tlspolicy.Decision{Level: tlspolicy.Verify, Source: "sts", Why: "MTA-STS policy mode enforce: mx2.multi.example does not match",
			Refuse:        status.New(403, "4.7.0", "403 4.7.0 TLS policy (MTA-STS): MX host mx2.multi.example is not in the policy of multi.example"),
			STS:           &sts.Result{Policy: p, ID: "abc", Source: "cache", Expires: time.Date(2030, 1, 2, 0, 0, 0, 0, time.UTC)},
			PolicyFailure: "validation-failure", PolicyFailureDetail: "mx2.multi.example does not match the MTA-STS policy's mx patterns"}
	}
	return tlspolicy.Decision{Level: tlspolicy.May, Source: "opportunistic", Why: "level may: STARTTLS when offered, any certificate"}
}

func TestTLSCommands(t *testing.T) {
	e := env(t)
	f := &fakeTLS{}
	e.TLS = f
	e.TLSSettings = []string{"TLSDefaultLevel=may, DANE=true, MTASTS=true, TLSReports=true"}
	e.TLSReports = func(w io.Writer, domain string) error {
		fmt.Fprintf(w, "report data for %q\n", domain)
		return nil
	}
	var out strings.Builder
	Run(strings.NewReader("/tls multi.example\n/tls example.com\n/tls [relay.example]:587\n/tls localhost\n/tls nxdomain.invalid\n/tls\n/tlsrpt Multi.Example\n"), &out, e)
	want := `> TLSDefaultLevel=may, DANE=true, MTASTS=true, TLSReports=true
TLS policy for multi.example, port 25:
mx1.multi.example: policy=dane, verify: 1 usable TLSA record(s) at _25._tcp.mx1.multi.example
	TLSA 3 1 1 00112233
MTA-STS: id abc, mode enforce, mx mx1.multi.example, max_age 86400 (cache, until 2030-01-02T00:00:00Z)
mx2.multi.example: policy=sts, not tried: MTA-STS policy mode enforce: mx2.multi.example does not match
	deferred: 403 4.7.0 TLS policy (MTA-STS): MX host mx2.multi.example is not in the policy of multi.example
	reported as validation-failure: mx2.multi.example does not match the MTA-STS policy's mx patterns
> TLSDefaultLevel=may, DANE=true, MTASTS=true, TLSReports=true
example.com is routed to [mail.example.com] (mailer esmtp)
TLS policy for [mail.example.com], port 25:
mail.example.com: policy=opportunistic, may: level may: STARTTLS when offered, any certificate
> TLSDefaultLevel=may, DANE=true, MTASTS=true, TLSReports=true
TLS policy for [relay.example], port 587:
relay.example: policy=opportunistic, may: level may: STARTTLS when offered, any certificate
> TLSDefaultLevel=may, DANE=true, MTASTS=true, TLSReports=true
localhost is delivered by the local mailer: no outbound TLS
> TLSDefaultLevel=may, DANE=true, MTASTS=true, TLSReports=true
Host unknown (Name server: nxdomain.invalid: host not found)
> Usage: /tls domain|[host][:port]
> report data for "multi.example"
> `
	got := strings.TrimPrefix(out.String(), "ADDRESS TEST MODE (ruleset 3 NOT automatically invoked)\nEnter <ruleset> <address>\n")
	got = strings.TrimSuffix(got, "\n")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if len(f.asked) != 4 || f.asked[0] != (relay.TLSQuery{Domain: "multi.example", NextHop: "multi.example", Host: "mx1.multi.example", Port: 25}) ||
		f.asked[3] != (relay.TLSQuery{NextHop: "[relay.example]", Host: "relay.example", Port: 587}) {
		t.Errorf("asked %+v", f.asked)
	}
	out.Reset()
	Run(strings.NewReader("/tls multi.example\n/tlsrpt\n"), &out, env(t))
	if !strings.Contains(out.String(), "posthorn: no TLS policy configured\n") || !strings.Contains(out.String(), "TLS reports are off") {
		t.Errorf("unconfigured:\n%s", out.String())
	}
}
