package runner

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/posthorn/posthorn/internal/maillog"
	"github.com/posthorn/posthorn/queue"
)

// BenchmarkQueueRun flushes a queue of RUNNER_BENCH_JOBS jobs (default
// 5,000; the figure is for 50,000) to a fake mailer that accepts
// everything: lock, read qf and df, render the header, log, remove.
//
//	RUNNER_BENCH_JOBS=50000 go test ./queue/runner -run=^$ -bench=QueueRun -benchtime=1x
func BenchmarkQueueRun(b *testing.B) {
	n := 5000
	if s := os.Getenv("RUNNER_BENCH_JOBS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	accept := MailerFunc(func(ctx context.Context, d *Delivery) []Result {
		res := make([]Result, len(d.Rcpts))
		for i := range res {
			res[i] = Result{Relay: "local", DSN: "2.1.5", Delivered: true}
		}
		return res
	})
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dir := b.TempDir()
		s, err := queue.Open(queue.Options{Dirs: []string{dir}, Sync: queue.SyncNone, Mode: 0o600})
		if err != nil {
			b.Fatal(err)
		}
		fill(b, s, n)
		r, err := New(Config{Store: s, Router: RouterFunc(fakeRouter), Schedule: queue.DefaultSchedule(),
			Mailers:  map[string]Mailer{"local": accept, "esmtp": accept},
			Hostname: "refhost.example.org", Logger: maillog.New(io.Discard, "sm-mta")})
		if err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime()
		b.StartTimer()
		start := time.Now()
		st, err := r.Run(context.Background(), RunOptions{})
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/msg")
		if err != nil || st.Sent != n {
			b.Fatalf("%+v %v", st, err)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
		s.Close()
	}
}

// fill queues n one-recipient jobs in parallel.
func fill(b *testing.B, s *queue.Store, n int) {
	body := strings.Repeat("A line of the message body, like any other.\n", 40)
	var wg sync.WaitGroup
	ch := make(chan int)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ch {
				j := &queue.Job{Created: time.Now(), Priority: 32000, Sender: "<alice@refhost.example.org>",
					Macros: []queue.Macro{{Name: "_", Value: "localhost [127.0.0.1]"}},
					Recipients: []queue.Recipient{{Flags: "PFD", Addr: "<bob" + strconv.Itoa(i%50) + "@refhost.example.org>",
						FinalRcpt: "RFC822; bob@refhost.example.org"}},
					Headers: []queue.Header{{HasCond: true, Cond: "P", Name: "Return-Path", Value: " <\x81g>"},
						{HasCond: true, Name: "Received", Value: " from client.example\n\tby refhost.example.org id \x81i"},
						{HasCond: true, Name: "Subject", Value: " bench"}}}
				if err := s.Enqueue(j, strings.NewReader(body)); err != nil {
					b.Error(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		ch <- i
	}
	close(ch)
	wg.Wait()
}

// cpuTime is the CPU time (user + system) the process has used: on this
// shared machine it says more than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
