package queue

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// scanned is what a directory scan learns about one control file.
type scanned struct {
	dir     *queueDir
	id      string
	job     *Job  // may be partial when parseErr is set; nil when openErr is
	parseOK bool  // the file parsed completely
	openErr error // the qf could not be opened or read
	locked  bool  // another process holds the job (only when probing)
	dfSize  int64 // -1 when the df cannot be found
}

// scan reads every control file whose name starts with letter+"f" in d,
// using a few goroutines so that the open/read/close system calls of many
// files overlap. envelopeOnly stops parsing at the first header;
// probeLock tries a shared flock to tell whether a runner holds the job.
// The df size comes from fstatat, never from opening the df.
func (s *Store) scan(d *queueDir, letter byte, envelopeOnly, probeLock bool) ([]scanned, error) {
	dirf, err := os.Open(d.qf)
	if err != nil {
		return nil, err
	}
	defer dirf.Close()
	out, err := readControlNames(int(dirf.Fd()), d, letter)
	if err != nil {
		return nil, err
	}
	dfDir := dirf
	if d.df != d.qf {
		if dfDir, err = os.Open(d.df); err != nil {
			return nil, err
		}
		defer dfDir.Close()
	}
	qfd, dfd := int(dirf.Fd()), int(dfDir.Fd())
	workers := runtime.GOMAXPROCS(0) * 2
	if workers > len(out) {
		workers = len(out)
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			buf := make([]byte, 16<<10)
			for i := w; i < len(out); i += workers {
				buf = s.scanOne(&out[i], qfd, dfd, letter, buf, envelopeOnly, probeLock)
			}
		}(w)
	}
	wg.Wait()
	return out, nil
}

func (s *Store) scanOne(e *scanned, qfd, dfd int, letter byte, buf []byte, envelopeOnly, probeLock bool) []byte {
	name := string([]byte{letter, 'f'}) + e.id
	fd, err := unix.Openat(qfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		e.openErr = err
		return buf
	}
	if probeLock {
		if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
			e.locked = true
		}
	}
	n := 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			e.openErr = err
			unix.Close(fd)
			return buf
		}
		n += m
		// A short read of a regular file is its end: saves a read
		// returning 0 for every file of a big queue.
		if m == 0 || n < len(buf) {
			break
		}
	}
	unix.Close(fd)
	j, perr := parse(e.id, buf[:n], envelopeOnly)
	e.job, e.parseOK = j, perr == nil
	e.dfSize = -1
	var st unix.Stat_t
	if j.DataDir != "" {
		if unix.Stat(s.dataPath(e.dir, j.DataDir, e.id), &st) == nil {
			e.dfSize = st.Size
		}
	} else if unix.Fstatat(dfd, "df"+e.id, &st, 0) == nil {
		e.dfSize = st.Size
	}
	return buf
}

// readControlNames lists the files named <letter>f<ID> with big getdents
// calls (os.File.Readdirnames reads 8 KiB at a time: hundreds of calls for
// a queue of 50,000 jobs).
func readControlNames(fd int, d *queueDir, letter byte) ([]scanned, error) {
	buf := make([]byte, 256<<10)
	var out []scanned
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		for b := buf[:n]; len(b) >= 19; {
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				break
			}
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if len(name) > 2 && name[0] == letter && name[1] == 'f' {
				out = append(out, scanned{dir: d, id: string(name[2:])})
			}
			b = b[reclen:]
		}
	}
}
