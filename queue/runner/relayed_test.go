package runner

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// A recipient with NOTIFY=SUCCESS relayed to a host without DSN gets
// sendmail's "relayed" receipt; relayed to a DSN-aware host, none; the
// transcript-only lines reach the DSN, never the -v output.
func TestRelayedReceipt(t *testing.T) {
	for _, tc := range []struct {
		name    string
		relayed bool
		dsns    int
	}{{"non-DSN peer", true, 1}, {"DSN peer", false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			var seenOnly bool
			e := newEnv(t, func(c *Config) {
				local := c.Mailers["local"]
				c.Mailers["esmtp"] = MailerFunc(func(ctx context.Context, d *Delivery) []Result {
					fmt.Fprintf(d.TranscriptOnly, "%s... relayed; expect no further notifications\n", d.Rcpts[0].Addr)
					seenOnly = d.TranscriptOnly != nil
					return []Result{{Relay: "mx.remote.example. [127.0.0.10]", RemoteMTA: "mx.remote.example.",
						Reply: "250 2.1.5 Ok", Stat: "Ok: queued as X", DSN: "2.0.0", Relayed: tc.relayed}}
				})
				c.Mailers["local"] = local
			})
			e.enqueue(e.job("PNS:<x@remote.example>"))
			var v strings.Builder
			st := e.run(RunOptions{Verbose: &v})
			if st.Sent != 1+tc.dsns || st.DSNs != tc.dsns { // the receipt is delivered too
				t.Fatalf("stats %+v", st)
			}
			if !seenOnly || strings.Contains(v.String(), "expect no further") {
				t.Errorf("transcript-only line on -v:\n%s", v.String())
			}
			if tc.dsns == 0 {
				return
			}
			d := e.mail.deliveries()
			r := d[len(d)-1]
			for _, want := range []string{"Subject: Return receipt\n"} {
				if !strings.Contains(r.header, want) {
					t.Errorf("receipt header lacks %q:\n%s", want, r.header)
				}
			}
			for _, want := range []string{
				"<x@remote.example>  (relayed to non-DSN-aware mailer)",
				"<x@remote.example>... relayed; expect no further notifications",
				"Action: relayed (to non-DSN-aware mailer)",
				"Remote-MTA: DNS; mx.remote.example",
			} {
				if !strings.Contains(r.body, want) {
					t.Errorf("receipt lacks %q:\n%s", want, r.body)
				}
			}
		})
	}
}
