package submit

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"
)

// referenceRead is the specification of readMessage without -i, written
// the simple way: split the input at LF, stop at the first line that is
// ".\n" or ".\r\n" (or "." / ".\r" as the unterminated last line), keep
// every byte before it.
func referenceRead(in []byte) []byte {
	var out []byte
	for len(in) > 0 {
		i := bytes.IndexByte(in, '\n')
		line := in
		if i >= 0 {
			line = in[:i+1]
		}
		s := string(line)
		if s == ".\n" || s == ".\r\n" || (i < 0 && (s == "." || s == ".\r")) {
			return out
		}
		out = append(out, line...)
		in = in[len(line):]
	}
	return out
}

// TestReadMessageLongLines: a line longer than the read buffer that ends
// in "." was taken as the end of the message when its last piece was
// exactly ".\n", and the rest was silently dropped (issue 8, item 5).
// Lengths around one and two buffers, with LF and CRLF.
func TestReadMessageLongLines(t *testing.T) {
	const buf = 64 << 10
	for _, n := range []int{buf - 3, buf - 2, buf - 1, buf, buf + 1, buf + 2, 2*buf - 2, 2*buf - 1, 2 * buf, 2*buf + 1, 3*buf + 7} {
		for _, eol := range []string{"\n", "\r\n"} {
			long := strings.Repeat("x", n) + "." + eol
			text := "Subject: long\n\n" + long + "after the long line\n"
			var m bytes.Buffer
			got, err := readMessage(strings.NewReader(text), false, &m)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != text || m.String() != text {
				t.Errorf("line of %d bytes + %q: read %d of %d bytes (queued %d)", n, "."+eol, len(got), len(text), m.Len())
			}
		}
	}
}

func TestReadMessageDot(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\n.\nrest\n", "a\n"},
		{"a\r\n.\r\nrest\r\n", "a\r\n"},
		{"a\n.", "a\n"},
		{"a\n.\r", "a\n"},
		{"a\n..\nb\n", "a\n..\nb\n"},
		{"a\n.\r\r\nb\n", "a\n.\r\r\nb\n"},
		{"a\n .\nb\n", "a\n .\nb\n"},
		{"a.\nb", "a.\nb"},
		{".\n", ""},
		{"", ""},
	}
	for _, tt := range tests {
		// one byte per Read: refills must not matter
		got, err := readMessage(iotest.OneByteReader(strings.NewReader(tt.in)), false, &bytes.Buffer{})
		if err != nil || string(got) != tt.want {
			t.Errorf("readMessage(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzReadMessage checks readMessage against referenceRead with small
// buffers, so that inputs cross buffer boundaries everywhere, and checks
// that what reached the queue is what was returned. With -i nothing is
// ever cut.
func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("Subject: x\n\nbody\n.\nafter\n"), uint8(0), false)
	f.Add([]byte("0123456789abcdef.\nrest\n"), uint8(0), false)
	f.Add([]byte("0123456789abcde.\r\n.\r\nrest\r\n"), uint8(1), false)
	f.Add([]byte("a\n.\nb\n"), uint8(3), true)
	f.Fuzz(func(t *testing.T, in []byte, size uint8, ignoreDots bool) {
		n := 16 + int(size%48) // bufio's minimum is 16
		var m bytes.Buffer
		got, err := readMessageSize(bytes.NewReader(in), ignoreDots, &m, n)
		if err != nil {
			t.Fatal(err)
		}
		want := in
		if !ignoreDots {
			want = referenceRead(in)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("buffer %d: got %q, want %q", n, got, want)
		}
		if !bytes.Equal(m.Bytes(), got) {
			t.Fatalf("queued %q, returned %q", m.Bytes(), got)
		}
	})
}
