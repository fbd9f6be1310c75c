package deliver

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Deliveries per second with fsync, a 2 KiB message as in the design
// notes' Postfix figures (smtp-source -l 2048). Report msgs/s with
// go test -bench Mailbox -benchtime 2000x ./deliver.
func BenchmarkMailbox(b *testing.B) {
	body := strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n", 32)
	m := msg("sender@client.example", "bench", body)
	run := func(b *testing.B, boxes, parallel int) {
		a, _, _ := testAgent(b, nil)
		names := make([]string, boxes)
		for i := range names {
			names[i] = fmt.Sprintf("user%03d", i)
		}
		uid := a.euid
		if uid == 0 {
			uid = 4242 // as root, deliver as a user: chown and the per-thread fsuid
		}
		a.opt.LookupUser = func(name string) (*User, error) { return &User{Name: name, UID: uid, GID: uid}, nil }
		var n atomic.Int64
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		b.SetParallelism(parallel)
		var before syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if err := a.Mailbox(context.Background(), names[int(i)%boxes], m); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		var after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
	}
	b.Run("one-mailbox-serial", func(b *testing.B) { run(b, 1, 1) })
	b.Run("one-mailbox-parallel", func(b *testing.B) { run(b, 1, 8) })
	b.Run("100-mailboxes-parallel", func(b *testing.B) { run(b, 100, 8) })
}

// BenchmarkRender: a 2 KiB message in mbox form (From_ line, quoting,
// trailing empty line), into memory: the CPU of an append without the
// file system.
func BenchmarkRender(b *testing.B) {
	body := strings.Repeat("From the body, a line that needs quoting, and some more text.\n", 32)
	m := msg("sender@client.example", "bench", body)
	from := FromLine(m.Sender, time.Date(2026, 12, 4, 3, 54, 31, 0, time.UTC))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := render(io.Discard, from, m.Header, m.bodyReader(), mboxFormat); err != nil {
			b.Fatal(err)
		}
	}
}
