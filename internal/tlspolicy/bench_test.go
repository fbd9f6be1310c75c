package tlspolicy_test

import (
	"context"
	"testing"

	"github.com/posthorn/posthorn/internal/relay"
)

// BenchmarkRequire: the decision for one host with the resolver's and
// the MTA-STS cache warm (what every delivery attempt pays): a DANE host,
// an MTA-STS host, a host with neither.
func BenchmarkRequire(b *testing.B) {
	for _, bc := range []struct{ name, domain, host string }{
		{"dane", "dane.test", "mx.dane.test"},
		{"sts", "sts.test", "mx.sts.test"},
		{"neither", "plain.test", "mx.plain.test"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newWorld(b, nil)
			c := w.ca.Valid(b, bc.host)
			w.dns.add(b, bc.domain+". 300 IN MX 10 "+bc.host+".", bc.host+". 300 IN A 127.0.0.1")
			switch bc.name {
			case "dane":
				w.dns.add(b, "_25._tcp."+bc.host+". 300 IN TLSA "+tlsa(3, 1, 1, nil, c.Leaf.RawSubjectPublicKeyInfo))
			case "sts":
				w.stsPolicy(bc.domain, "127.0.0.99", "1", stsEnforce, nil)
			}
			q := relay.TLSQuery{Domain: bc.domain, NextHop: bc.domain, Host: bc.host, Port: 25}
			ctx := context.Background()
			w.engine.Require(ctx, q)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.engine.Require(ctx, q)
			}
		})
	}
}
