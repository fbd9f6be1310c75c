package queue

import (
	"errors"
	"io"
	"os"
	"sync"
)

// Data is a job's df opened for reading through Locked.OpenData. It reads
// only while the caller holds the job: Unlock, Remove and Lose close it
// first, waiting for reads in progress. Once the job is released its df
// may be emptied and handed to another job through the spare pool (see
// the package comment), and a descriptor kept open would read that job's
// body. After the close every read fails with os.ErrClosed. Safe for
// concurrent reads: a mailer may read the body from several goroutines.
type Data struct {
	mu     sync.RWMutex
	f      *os.File // nil once closed
	size   int64
	closed bool
}

// openData opens the df at path and learns its size.
func openData(path string) (*Data, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Data{f: f, size: fi.Size()}, nil
}

// ReadAt reads the body at off (io.ReaderAt).
func (d *Data) ReadAt(p []byte, off int64) (int, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.closed {
		return 0, os.ErrClosed
	}
	if off >= d.size {
		return 0, io.EOF
	}
	// Never past the size seen at open: the body does not change while
	// the job is held, and a longer file is not this job's.
	if rest := d.size - off; int64(len(p)) > rest {
		p = p[:rest]
		n, err := d.f.ReadAt(p, off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return d.f.ReadAt(p, off)
}

// Size is the body's length in bytes.
func (d *Data) Size() int64 { return d.size }

// Reader returns a reader of the whole body from its start.
func (d *Data) Reader() *io.SectionReader { return io.NewSectionReader(d, 0, d.size) }

// Close releases the file once the reads in progress have returned. It is
// safe to call more than once.
func (d *Data) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	return d.f.Close()
}

// closeAll closes every Data of a job; errors other than a double close
// are returned.
func closeAll(ds []*Data) error {
	var first error
	for _, d := range ds {
		if err := d.Close(); err != nil && !errors.Is(err, os.ErrClosed) && first == nil {
			first = err
		}
	}
	return first
}
