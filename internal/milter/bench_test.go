package milter

import (
	"fmt"
	"testing"

	mt "github.com/posthorn/posthorn/internal/milter/miltertest"
)

// BenchmarkSession: messages through one SMTP session's filters (one
// connection per filter for the whole session): MAIL, RCPT, DATA, two
// header fields, a body chunk and end of message with one added header.
func BenchmarkSession(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("filters=%d", n), func(b *testing.B) {
			var scripts []mt.Script
			for i := 0; i < n; i++ {
				scripts = append(scripts, mt.Script{EOM: []mt.Packet{mt.AddHeader("X-Bench", "1"), mt.Continue()}})
			}
			h := newHarness(b, nil, scripts...)
			h.chain.cfg.LogLevel = 0
			s, v := h.open()
			if v.Action != ActContinue {
				b.Fatal(v)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if res := transaction(s, testMessage(), "line 1\nline 2\n"); res.Action != ActContinue {
					b.Fatal(res.Verdict)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			s.Close()
			for _, srv := range h.servers {
				srv.Close()
			}
		})
	}
}
