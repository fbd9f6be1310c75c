package queue

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchDir is where benchmarks put their queues. Durability figures only
// mean something on a real disk: run with TMPDIR pointing to one (not
// tmpfs), e.g. TMPDIR=/work/tmp go test -bench . ./queue.
func benchDir(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("", "queue-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BenchmarkEnqueue measures durable enqueues (df + qf, synced before the
// call returns) with 1 and 20 concurrent writers, for each sync mode.
func BenchmarkEnqueue(b *testing.B) {
	for _, mode := range []struct {
		name string
		m    SyncMode
	}{{"syncfs", SyncBatch}, {"fsync", SyncFiles}, {"each", SyncEach}, {"nosync", SyncNone}} {
		for _, writers := range []int{1, 20} {
			b.Run(fmt.Sprintf("%s/writers=%d", mode.name, writers), func(b *testing.B) {
				s, err := Open(Options{Dirs: []string{benchDir(b)}, Sync: mode.m})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				enqueueConcurrently(b, s, writers)
			})
		}
	}
}

// BenchmarkEnqueueFourDirs spreads 20 writers over four queue
// directories (QueueDirectory=.../q*), so that file creation does not
// serialise on one directory.
func BenchmarkEnqueueFourDirs(b *testing.B) {
	root := benchDir(b)
	for _, q := range []string{"q1", "q2", "q3", "q4"} {
		os.Mkdir(root+"/"+q, 0o700)
	}
	s, err := Open(Options{Dirs: []string{root + "/q*"}, Sync: SyncBatch})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	enqueueConcurrently(b, s, 20)
}

// enqueueConcurrently makes b.N durable enqueues of a 2 KiB message from
// the given number of writers and reports the rate.
func enqueueConcurrently(b *testing.B, s *Store, writers int) {
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 32) // 2 KiB
	work := make(chan struct{}, b.N)
	for i := 0; i < b.N; i++ {
		work <- struct{}{}
	}
	close(work)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := s.Enqueue(sampleJob("<a@x.example>"), bytes.NewReader(body)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkMailq50k lists a queue of 50,000 deferred jobs, as mailq does:
// open the store read-only, read every qf, stat every df, sort, print.
func BenchmarkMailq50k(b *testing.B) {
	const jobs = 50000
	dir := benchDir(b)
	s, err := Open(Options{Dirs: []string{dir}, Sync: SyncNone})
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < jobs; i += 8 {
				j := sampleJob("<someone@remote.example>", "<other@multi.example>")
				j.Priority = int64(30000 + i%977*100)
				j.Attempts, j.LastTry = 1, j.Created
				j.Message = "Deferred: Connection refused by mx.remote.example."
				if err := s.Enqueue(j, strings.NewReader("Nobody listens at the MX of remote.example.\n")); err != nil {
					b.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	s.Close()
	b.Run("mailq", func(b *testing.B) {
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			s, err := Open(Options{Dirs: []string{dir}, ReadOnly: true})
			if err != nil {
				b.Fatal(err)
			}
			n, err := s.List(io.Discard, ListOptions{})
			if err != nil || n != jobs {
				b.Fatal(n, err)
			}
			s.Close()
		}
		// On a shared machine wall time depends on the neighbours; the
		// CPU time the listing needs does not.
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	})
	b.Run("LoadIndex", func(b *testing.B) {
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			s, err := Open(Options{Dirs: []string{dir}})
			if err != nil {
				b.Fatal(err)
			}
			x, lost, err := s.LoadIndex()
			if err != nil || indexLen(x) != jobs || len(lost) != 0 {
				b.Fatal(indexLen(x), lost, err)
			}
			if got := x.Select(Filter{}, DefaultSchedule(), time.Now()); len(got) != jobs {
				b.Fatal(len(got))
			}
			s.Close()
		}
		b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	})
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
