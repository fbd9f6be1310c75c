package relay

import (
	"bytes"
	"io"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue"
	"github.com/posthorn/posthorn/queue/runner"
)

// message is what one Delivery sends: the header block rendered for the
// mailer and the df, readable as often as hosts are tried.
type message struct {
	header   []byte
	body     io.ReaderAt
	bodySize int64
	size     int64 // the SIZE= value

	scanned bool
	eight   bool // an octet with the high bit set, in the header or the body
}

type sizedReaderAt interface {
	io.ReaderAt
	Size() int64
}

// newMessage reads the Delivery's body through io.ReaderAt when it has
// one (the runner hands the df that way); any other reader is read into
// memory once.
func newMessage(d *runner.Delivery) (*message, error) {
	m := &message{header: d.Header}
	if r, ok := d.Body.(sizedReaderAt); ok {
		m.body, m.bodySize = r, r.Size()
	} else {
		var b []byte
		if d.Body != nil {
			var err error
			if b, err = io.ReadAll(d.Body); err != nil {
				return nil, status.Wrap(err, 451, "4.3.0", "cannot read the data file")
			}
		}
		m.body, m.bodySize = bytes.NewReader(b), int64(len(b))
	}
	m.size = sizeEstimate(d.Job, len(d.Header), m.bodySize)
	return m, nil
}

// sizeEstimate is the SIZE= sendmail announces for a queued message: the
// df size plus, for every H line of the qf, its length less three (the
// "H??" of an unconditional header). It is what sendmail's readqf
// computes, so the value matches byte for byte; without the job's headers
// it is the rendered header plus the blank line and the body.
func sizeEstimate(j *queue.Job, headerLen int, bodySize int64) int64 {
	if j == nil || len(j.Headers) == 0 {
		return int64(headerLen) + 1 + bodySize
	}
	n := bodySize
	for _, h := range j.Headers {
		l := 1 + len(h.Name) + 1 + len(h.Value) // "H" name ":" value
		if h.HasCond {
			l += len(h.Cond) + 2
		}
		n += int64(l - 3)
	}
	return n
}

// has8bit reports whether the header or the body has an octet with the
// high bit set (sendmail's EF_HAS8BIT), reading the body once.
func (m *message) has8bit() (bool, error) {
	if m.scanned {
		return m.eight, nil
	}
	if hasHigh(m.header) {
		m.scanned, m.eight = true, true
		return true, nil
	}
	buf := make([]byte, 64<<10)
	for off := int64(0); off < m.bodySize; {
		n, err := m.body.ReadAt(buf, off)
		if hasHigh(buf[:n]) {
			m.scanned, m.eight = true, true
			return true, nil
		}
		off += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, err
		}
	}
	m.scanned = true
	return false, nil
}

func hasHigh(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

// reader returns a fresh reader of the body.
func (m *message) reader() io.Reader { return io.NewSectionReader(m.body, 0, m.bodySize) }

// headerFields splits a header block into fields, each with its
// continuation lines (LF line ends, no trailing blank line).
func headerFields(h []byte) [][]byte {
	var out [][]byte
	for len(h) > 0 {
		end := 0
		for {
			i := bytes.IndexByte(h[end:], '\n')
			if i < 0 {
				end = len(h)
				break
			}
			end += i + 1
			if end >= len(h) || (h[end] != ' ' && h[end] != '\t') {
				break
			}
		}
		out = append(out, h[:end])
		h = h[end:]
	}
	return out
}

// fieldName is the name of a header field ("" when the line has no colon).
func fieldName(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i <= 0 {
		return ""
	}
	return strings.TrimRight(string(f[:i]), " \t")
}

// fieldValue is the unfolded value of a field, trimmed.
func fieldValue(f []byte) string {
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return ""
	}
	v := strings.NewReplacer("\r", "", "\n", "").Replace(string(f[i+1:]))
	return strings.TrimSpace(v)
}

// lookupField returns the value of the first field named name.
func lookupField(fields [][]byte, name string) (string, bool) {
	for _, f := range fields {
		if strings.EqualFold(fieldName(f), name) {
			return fieldValue(f), true
		}
	}
	return "", false
}

// hopCount counts the trace fields of a header block as sendmail's
// e_hopcount does: Received, X400-Received, Via and Mail-From.
func hopCount(h []byte) int {
	n := 0
	for _, f := range headerFields(h) {
		switch strings.ToLower(fieldName(f)) {
		case "received", "x400-received", "via", "mail-from":
			n++
		}
	}
	return n
}
