package test

// What the side-by-side benchmark measures of an MTA it does not control:
// the CPU and memory of its process tree (from /proc), messages arriving
// in mbox files (by reading what was appended), and the latency an SMTP
// client sees (its own small client, one connection per message).

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procStat is one process's line of /proc/<pid>/stat, the fields used.
type procStat struct {
	ppid       int
	user, sys  int // utime + cutime, stime + cstime, in ticks
	haveFields bool
}

func readProcStat(pid string) procStat {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return procStat{}
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 15 {
		return procStat{}
	}
	n := func(i int) int { v, _ := strconv.Atoi(f[i]); return v }
	return procStat{ppid: n(1), user: n(11) + n(13), sys: n(12) + n(14), haveFields: true}
}

// procTree is every live process under pid, pid included, with its
// counters.
func procTree(pid int) map[int]procStat {
	procs := map[int]procStat{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st := readProcStat(e.Name()); st.haveFields {
			procs[p] = st
		}
	}
	children := map[int][]int{}
	for p, st := range procs {
		children[st.ppid] = append(children[st.ppid], p)
	}
	tree := map[int]procStat{}
	var walk func(int)
	walk = func(p int) {
		if st, ok := procs[p]; ok {
			tree[p] = st
		}
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return tree
}

// treeTimes is the user and system time of pid and its descendants: what
// each live process used itself plus what its reaped children used
// (cutime, cstime), so children that came and went in between are counted
// through their parent.
func treeTimes(pid int) (user, sys time.Duration) {
	var u, s int
	for _, st := range procTree(pid) {
		u += st.user
		s += st.sys
	}
	const tick = time.Second / 100 // USER_HZ
	return time.Duration(u) * tick, time.Duration(s) * tick
}

// memPeak samples the summed RSS and PSS of a process tree until stopped
// and keeps the largest sums seen. PSS shares each page among the
// processes mapping it, so a tree of many processes (Postfix) is not
// charged its shared libraries once per process.
type memPeak struct {
	stop     chan struct{}
	done     chan struct{}
	rss, pss int // KiB
}

func sampleMemory(pid int, every time.Duration) *memPeak {
	m := &memPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			var rss, pss int
			for p := range procTree(pid) {
				r, s := smapsRollup(p)
				rss += r
				pss += s
			}
			m.rss, m.pss = max(m.rss, rss), max(m.pss, pss)
			select {
			case <-m.stop:
				return
			case <-t.C:
			}
		}
	}()
	return m
}

// peak stops the sampling and returns the peaks in KiB.
func (m *memPeak) peak() (rss, pss int) {
	close(m.stop)
	<-m.done
	return m.rss, m.pss
}

// smapsRollup reads a process's Rss and Pss (KiB).
func smapsRollup(pid int) (rss, pss int) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Rss:":
			rss, _ = strconv.Atoi(f[1])
		case "Pss:":
			pss, _ = strconv.Atoi(f[1])
		}
	}
	return rss, pss
}

// mboxTail follows mbox files as they grow: it counts the messages
// appended (From_ lines) and, for the latency client's messages, notes
// when each "Subject: bench <n>" first appeared.
type mboxTail struct {
	mu    sync.Mutex
	files []*tailFile
	msgs  int
	seen  map[int]time.Time
}

type tailFile struct {
	path string
	off  int64
	rest []byte // an incomplete last line
	// atLineStart: the next byte read starts a line; after a blank line
	// is whether a From_ line may start a message there.
	atLineStart, afterBlank bool
}

func newMboxTail(paths ...string) *mboxTail {
	t := &mboxTail{seen: map[int]time.Time{}}
	for _, p := range paths {
		t.files = append(t.files, &tailFile{path: p, atLineStart: true, afterBlank: true})
	}
	return t
}

// poll reads what was appended since the last call.
func (t *mboxTail) poll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, f := range t.files {
		fh, err := os.Open(f.path)
		if err != nil {
			continue
		}
		fh.Seek(f.off, io.SeekStart)
		data, _ := io.ReadAll(fh)
		fh.Close()
		f.off += int64(len(data))
		buf := append(f.rest, data...)
		for {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				break
			}
			line := buf[:i]
			buf = buf[i+1:]
			switch {
			case f.afterBlank && bytes.HasPrefix(line, []byte("From ")):
				t.msgs++
			case bytes.HasPrefix(line, []byte("Subject: bench ")):
				if n, err := strconv.Atoi(string(line[len("Subject: bench "):])); err == nil {
					if _, ok := t.seen[n]; !ok {
						t.seen[n] = now
					}
				}
			}
			f.afterBlank = len(line) == 0
		}
		f.rest = append(f.rest[:0], buf...)
	}
}

func (t *mboxTail) count() int {
	t.poll()
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.msgs
}

// waitFor polls every interval until the files hold n messages or the
// deadline passes; it reports whether they do.
func (t *mboxTail) waitFor(n int, every time.Duration, deadline time.Time) bool {
	for t.count() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(every)
	}
	return true
}

// latencyLoad is the side-by-side benchmark's own SMTP client: sessions
// parallel sessions, one connection per message, size bytes of body, as
// smtp-source sends; when rate > 0 the messages start at that many per
// second in all. It records, per message, the time from the end of DATA
// to the 250 reply.
type latencyLoad struct {
	addr     string
	rcpt     string
	sessions int
	n        int
	size     int
	rate     float64
	first    int // the number of the first message (Subject: bench <n>)
}

type latencyResult struct {
	sent    map[int]time.Time // end of DATA written
	replied map[int]time.Duration
	elapsed time.Duration
	errs    []error
}

func (l latencyLoad) run() latencyResult {
	res := latencyResult{sent: map[int]time.Time{}, replied: map[int]time.Duration{}}
	var mu sync.Mutex
	next := make(chan int)
	go func() {
		var tick *time.Ticker
		if l.rate > 0 {
			tick = time.NewTicker(time.Duration(float64(time.Second) / l.rate))
			defer tick.Stop()
		}
		for i := 0; i < l.n; i++ {
			if tick != nil {
				<-tick.C
			}
			next <- l.first + i
		}
		close(next)
	}()
	body := benchBody(l.size)
	start := time.Now()
	var wg sync.WaitGroup
	for range l.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range next {
				sent, took, err := sendTimed(l.addr, l.rcpt, seq, body)
				mu.Lock()
				if err != nil {
					res.errs = append(res.errs, err)
				} else {
					res.sent[seq], res.replied[seq] = sent, took
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

// benchBody is size bytes of text in lines of up to 78 characters plus
// CRLF, with no line starting with a dot or "From ".
func benchBody(size int) []byte {
	var b bytes.Buffer
	line := "La de da de da de da de da de da de da de da de da de da de da de da de da de"
	for b.Len() < size {
		n := min(len(line), size-b.Len())
		b.WriteString(line[:n])
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// sendTimed sends one message on a new connection and returns when its
// DATA was ended and how long the 250 took to come.
func sendTimed(addr, rcpt string, seq int, body []byte) (time.Time, time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return time.Time{}, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReaderSize(c, 4096)
	reply := func(want string) error {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, want) {
				return fmt.Errorf("message %d: %q, want %s", seq, strings.TrimSpace(l), want)
			}
			if len(l) < 4 || l[3] != '-' {
				return nil
			}
		}
	}
	steps := []struct{ cmd, want string }{
		{"", "220"},
		{"EHLO client.example\r\n", "250"},
		{"MAIL FROM:<load@client.example>\r\n", "250"},
		{"RCPT TO:<" + rcpt + ">\r\n", "250"},
		{"DATA\r\n", "354"},
	}
	for _, s := range steps {
		if s.cmd != "" {
			if _, err := io.WriteString(c, s.cmd); err != nil {
				return time.Time{}, 0, err
			}
		}
		if err := reply(s.want); err != nil {
			return time.Time{}, 0, err
		}
	}
	hdr := fmt.Sprintf("From: <load@client.example>\r\nTo: <%s>\r\nSubject: bench %d\r\nMessage-Id: <%d.bench@client.example>\r\n\r\n", rcpt, seq, seq)
	msg := slices.Concat([]byte(hdr), body, []byte(".\r\n"))
	if _, err := c.Write(msg); err != nil {
		return time.Time{}, 0, err
	}
	sent := time.Now()
	if err := reply("250"); err != nil {
		return time.Time{}, 0, err
	}
	took := time.Since(sent)
	io.WriteString(c, "QUIT\r\n")
	reply("221")
	return sent, took, nil
}

// percentiles returns the p50 and p99 of ds.
func percentiles(ds []time.Duration) (p50, p99 time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	at := func(q float64) time.Duration { return ds[min(len(ds)-1, int(q*float64(len(ds))))] }
	return at(0.50), at(0.99)
}
