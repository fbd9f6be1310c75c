package smtpd

import (
	"bufio"
	"bytes"
	"io"
	"sync"
)

// inbuf is the session's input buffer: bufio.Reader's ReadSlice, Buffered
// and Peek over a maxLine buffer, which an idle session gives back. Most
// sessions spend their life waiting for the next command; holding 2 KiB
// each for that was a fifth of an idle session's memory. While idle the
// first read goes into a small array inside inbuf, and the big buffer is
// taken from a pool only when data arrives.
type inbuf struct {
	rd    io.Reader
	buf   []byte // nil while idle; else len maxLine, from bufPool
	r, w  int    // buf[r:w] is buffered
	err   error  // the read error to return once buf is drained
	small [128]byte
}

var bufPool = sync.Pool{New: func() any { return new([maxLine]byte) }}

func newInbuf(rd io.Reader) *inbuf { return &inbuf{rd: rd} }

// Buffered is the number of bytes read from the connection and not yet
// consumed.
func (b *inbuf) Buffered() int { return b.w - b.r }

// Reset switches to another reader (STARTTLS); buffered input is dropped.
func (b *inbuf) Reset(rd io.Reader) {
	b.rd, b.r, b.w, b.err = rd, 0, 0, nil
	b.idle()
}

// idle gives the buffer back when nothing is buffered. A slice ReadSlice
// returned must not be used after it.
func (b *inbuf) idle() {
	if b.buf != nil && b.r == b.w {
		bufPool.Put((*[maxLine]byte)(b.buf))
		b.buf, b.r, b.w = nil, 0, 0
	}
}

// fill reads once more from the connection.
func (b *inbuf) fill() {
	if b.r > 0 {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	for range 100 { // as bufio: give up on a reader that returns nothing
		var n int
		var err error
		if b.buf == nil {
			n, err = b.rd.Read(b.small[:])
			if n > 0 {
				b.buf = bufPool.Get().(*[maxLine]byte)[:]
				b.w = copy(b.buf, b.small[:n])
			}
		} else {
			n, err = b.rd.Read(b.buf[b.w:])
			b.w += n
		}
		if err != nil {
			b.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	b.err = io.ErrNoProgress
}

func (b *inbuf) readErr() error {
	err := b.err
	b.err = nil
	return err
}

// ReadSlice is bufio.Reader.ReadSlice: the input up to and including
// delim, valid until the next read; bufio.ErrBufferFull with the full buffer
// when maxLine bytes hold no delim; the data before a read error with the
// error.
func (b *inbuf) ReadSlice(delim byte) ([]byte, error) {
	searched := 0
	for {
		if b.buf != nil {
			if i := bytes.IndexByte(b.buf[b.r+searched:b.w], delim); i >= 0 {
				line := b.buf[b.r : b.r+searched+i+1]
				b.r += searched + i + 1
				return line, nil
			}
		}
		if b.err != nil {
			var line []byte
			if b.buf != nil {
				line = b.buf[b.r:b.w]
			}
			b.r = b.w
			return line, b.readErr()
		}
		if b.Buffered() == maxLine {
			line := b.buf
			b.r = b.w
			return line, bufio.ErrBufferFull
		}
		searched = b.w - b.r
		b.fill()
	}
}

// Peek returns the next n bytes without consuming them (n <= maxLine).
func (b *inbuf) Peek(n int) ([]byte, error) {
	for b.Buffered() < n && b.err == nil {
		b.fill()
	}
	if b.Buffered() < n {
		return nil, b.readErr()
	}
	return b.buf[b.r : b.r+n], nil
}
