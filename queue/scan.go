package queue

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
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
	ino     uint64
}

// scan reads every control file whose name starts with letter+"f" in d,
// using a few goroutines so that the open/read/close system calls of many
// files overlap. envelopeOnly stops parsing at the first header;
// probeLock tries a shared flock to tell whether a runner holds the job.
// The df size comes from fstatat, never from opening the df.
//
// each, when set, is called in the reading goroutine right after an entry
// is read, so that a caller which keeps less than the parsed job (the
// index) can take what it needs and drop the job: the whole queue's jobs
// are then never in memory at once.
func (s *Store) scan(d *queueDir, letter byte, envelopeOnly, probeLock bool, each func(*scanned)) ([]scanned, error) {
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
	// One read of /proc/locks tells which qf files are locked, instead of
	// a flock probe (and its release) per file.
	var locked map[uint64]bool
	if probeLock {
		var st unix.Stat_t
		if unix.Fstat(qfd, &st) == nil {
			if m, err := lockedInodes("/proc/locks", st.Dev); err == nil {
				locked, probeLock = m, false
				for i := range out {
					out[i].locked = locked[out[i].ino]
				}
			}
		}
	}
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
				if each != nil {
					each(&out[i])
				}
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
	var out []scanned
	err := eachDirent(fd, func(name []byte, ino uint64) {
		if len(name) > 2 && name[0] == letter && name[1] == 'f' {
			out = append(out, scanned{dir: d, id: string(name[2:]), ino: ino})
		}
	})
	return out, err
}

// readNames lists every name in the directory open as fd, as
// Readdirnames does, with the big getdents calls of eachDirent. The
// directory's offset is left at its end.
func readNames(fd int) ([]string, error) {
	var names []string
	err := eachDirent(fd, func(name []byte, _ uint64) {
		if string(name) != "." && string(name) != ".." {
			names = append(names, string(name))
		}
	})
	return names, err
}

// eachDirent calls fn with the name and inode of each entry of the
// directory open as fd, from its current offset, reading 256 KiB per
// getdents(2) call. name is only valid during the call.
func eachDirent(fd int, fn func(name []byte, ino uint64)) error {
	buf := make([]byte, 256<<10)
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
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
			ino := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
				uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
			fn(name, ino)
			b = b[reclen:]
		}
	}
}

// lockedInodes reads the kernel's table of file locks and returns the
// inodes on device dev that hold a FLOCK lock (lines like
// "1: FLOCK  ADVISORY  WRITE 1234 fd:00:5342136 0 EOF"; "->" lines are
// waiters and are skipped).
func lockedInodes(path string, dev uint64) (map[uint64]bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[uint64]bool{}
	maj, min := uint64(unix.Major(dev)), uint64(unix.Minor(dev))
	for _, line := range bytes.Split(data, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) < 6 || string(f[1]) != "FLOCK" {
			continue
		}
		parts := bytes.Split(f[5], []byte(":"))
		if len(parts) != 3 {
			continue
		}
		a, err1 := strconv.ParseUint(string(parts[0]), 16, 32)
		b, err2 := strconv.ParseUint(string(parts[1]), 16, 32)
		ino, err3 := strconv.ParseUint(string(parts[2]), 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || a != maj || b != min {
			continue
		}
		m[ino] = true
	}
	return m, nil
}
