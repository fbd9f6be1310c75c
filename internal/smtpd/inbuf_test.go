package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// chunked returns data in reads of the given sizes (cycling), as a
// network connection may.
type chunked struct {
	data  []byte
	sizes []byte
	i     int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(c.sizes) > 0 {
		n = int(c.sizes[c.i%len(c.sizes)])*37 + 1
		c.i++
	}
	n = min(n, len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// FuzzInbuf: inbuf reads the same lines, long-line pieces and errors as
// bufio.Reader of maxLine bytes, however the input is chunked and
// wherever the buffer is given back while idle.
func FuzzInbuf(f *testing.F) {
	f.Add([]byte("EHLO c\r\nMAIL FROM:<a@b>\r\n"), []byte{0, 3, 200})
	f.Add(append(bytes.Repeat([]byte("x"), 5000), "\r\nend"...), []byte{255, 1})
	f.Add([]byte("no line end"), []byte{})
	f.Fuzz(func(t *testing.T, data, sizes []byte) {
		if len(data) > 16<<10 {
			return // a few buffers' worth shows everything; more only slows minimising
		}
		want := bufio.NewReaderSize(&chunked{data: data, sizes: sizes}, maxLine)
		got := newInbuf(&chunked{data: data, sizes: sizes})
		for i := 0; ; i++ {
			wl, werr := want.ReadSlice('\n')
			if i%3 == 0 && got.Buffered() == 0 {
				got.idle()
			}
			gl, gerr := got.ReadSlice('\n')
			if !bytes.Equal(wl, gl) || !errors.Is(gerr, werr) {
				t.Fatalf("read %d: %q %v, bufio %q %v", i, gl, gerr, wl, werr)
			}
			if werr != nil && !errors.Is(werr, bufio.ErrBufferFull) {
				return
			}
		}
	})
}

func TestInbufIdleAndPeek(t *testing.T) {
	b := newInbuf(iotest.OneByteReader(bytes.NewReader([]byte("ab\ncd\n"))))
	if p, err := b.Peek(1); err != nil || string(p) != "a" {
		t.Fatalf("Peek: %q %v", p, err)
	}
	if l, _ := b.ReadSlice('\n'); string(l) != "ab\n" || b.Buffered() != 0 {
		t.Fatalf("ReadSlice: %q, %d buffered", l, b.Buffered())
	}
	b.idle()
	if b.buf != nil {
		t.Fatal("idle kept the buffer")
	}
	if l, _ := b.ReadSlice('\n'); string(l) != "cd\n" {
		t.Fatalf("after idle: %q", l)
	}
	if l, err := b.ReadSlice('\n'); len(l) != 0 || err != io.EOF {
		t.Fatalf("at the end: %q %v", l, err)
	}
}
