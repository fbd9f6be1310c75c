package resolve

import (
	"testing"
	"time"
)

// BenchmarkExchangers: an MX walk answered from the cache (the common case
// in a queue run) and one that asks the in-process server each time.
func BenchmarkExchangers(b *testing.B) {
	f := newFakeDNS(b, zone...)
	b.Run("cached", func(b *testing.B) {
		r := New(Config{Servers: []string{f.addr}, Timeout: time.Second, Retries: 1})
		for b.Loop() {
			if _, err := r.Exchangers(ctx, "equal.example"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		clock := time.Unix(0, 0)
		r := New(Config{Servers: []string{f.addr}, Timeout: time.Second, Retries: 1, Now: func() time.Time { return clock }})
		for b.Loop() {
			clock = clock.Add(time.Hour)
			if _, err := r.Exchangers(ctx, "equal.example"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
