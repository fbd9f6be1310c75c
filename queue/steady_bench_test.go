package queue

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// BenchmarkSteadyState is an MTA's day: every writer enqueues a message
// durably and removes the job it enqueued a few messages earlier, so the
// file system keeps seeing deletions next to creations (on a journal-less
// ext4 that is what makes new inodes expensive). A warm-up of the same
// loop runs before the timer starts, so that the measured part meets the
// recently deleted inodes. Reported: msgs/s (wall) and CPU per message.
// spares=off is the store without a pool of spare files (MaxSpares -1:
// unlink and create, as sendmail does); sync=none leaves out the syncs,
// whose CPU cost depends on what else the machine writes.
func BenchmarkSteadyState(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"), 32) // 2 KiB
	for _, c := range []struct {
		name      string
		mode      SyncMode
		maxSpares int
		writers   int
	}{
		{"sync=syncfs/spares=off/writers=1", SyncBatch, -1, 1},
		{"sync=syncfs/spares=on/writers=1", SyncBatch, 0, 1},
		{"sync=syncfs/spares=off/writers=20", SyncBatch, -1, 20},
		{"sync=syncfs/spares=on/writers=20", SyncBatch, 0, 20},
		{"sync=none/spares=off/writers=20", SyncNone, -1, 20},
		{"sync=none/spares=on/writers=20", SyncNone, 0, 20},
	} {
		writers := c.writers
		b.Run(c.name, func(b *testing.B) {
			dir := benchDir(b)
			s, err := Open(Options{Dirs: []string{dir}, Sync: c.mode, MaxSpares: c.maxSpares})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const backlog = 8 // jobs each writer keeps queued
			run := func(n int) {
				var wg sync.WaitGroup
				work := make(chan struct{}, n)
				for i := 0; i < n; i++ {
					work <- struct{}{}
				}
				close(work)
				for w := 0; w < writers; w++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var ring []string
						for range work {
							j := sampleJob("<a@x.example>")
							if err := s.Enqueue(j, bytes.NewReader(body)); err != nil {
								b.Error(err)
								return
							}
							ring = append(ring, j.ID)
							if len(ring) > backlog {
								removeJob(b, s, dir, ring[0])
								ring = ring[1:]
							}
						}
						for _, id := range ring {
							removeJob(b, s, dir, id)
						}
					}()
				}
				wg.Wait()
			}
			run(2000)
			b.ResetTimer()
			cpu0, start := cpuTime(), time.Now()
			run(b.N)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/msg")
		})
	}
}

func removeJob(b *testing.B, s *Store, dir, id string) {
	l, err := s.Lock(dir, id)
	if err != nil {
		b.Error(err)
		return
	}
	if err := l.Remove(); err != nil {
		b.Error(err)
	}
}
