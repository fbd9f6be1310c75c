package deliver

import (
	"bufio"
	"bytes"
	"io"
	"sync"
	"time"
)

// Message is one message to deliver, as the caller has rendered it for local
// delivery: the header block already carries Return-Path and Received.
// Body is read through ReadAt, so one Message can be delivered to many
// targets (concurrently, too) without being copied.
type Message struct {
	// Sender is the envelope sender without angle brackets; "" is the null
	// sender <>, written MAILER-DAEMON in the From_ line.
	Sender string
	// Header is the header block, LF line ends, without the empty line that
	// ends it. A missing final newline is added.
	Header []byte
	// Body and BodySize give the body, LF line ends. Body may be nil when
	// BodySize is 0.
	Body     io.ReaderAt
	BodySize int64
	// Time is the delivery time shown in the From_ line; zero means now.
	Time time.Time
	// QueueID prefixes the log lines about this delivery; "" for none.
	QueueID string
}

// ctimeLayout is ctime(3)'s format without the newline.
const ctimeLayout = "Mon Jan _2 15:04:05 2006"

// FromLine returns the From_ line that starts a message in an mbox:
// "From sender ctime\n". The null sender is written MAILER-DAEMON; bytes
// that would split the line or the field (white space, control characters)
// become "_".
func FromLine(sender string, t time.Time) []byte {
	b := make([]byte, 0, len(sender)+40)
	b = append(b, "From "...)
	b = appendSender(b, sender)
	b = append(b, ' ')
	b = t.AppendFormat(b, ctimeLayout)
	return append(b, '\n')
}

// appendSender appends the sender as the From_ line shows it.
func appendSender(b []byte, sender string) []byte {
	if sender == "" {
		return append(b, "MAILER-DAEMON"...)
	}
	for i := 0; i < len(sender); i++ {
		c := sender[i]
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// DefaultUnixFromLine is sendmail's UnixFromLine default.
const DefaultUnixFromLine = "From $g $d"

// UnixFromLine renders sendmail's UnixFromLine template for /file and
// |program targets: $g is the envelope sender (MAILER-DAEMON for <>, white
// space and control characters as "_", as in FromLine) and $d the ctime
// date; "$$" is a dollar sign. The caller has expanded every other macro.
// A line break in the result becomes a space, and the line ends in "\n".
func UnixFromLine(template, sender string, t time.Time) []byte {
	b := make([]byte, 0, len(template)+len(sender)+30)
	for i := 0; i < len(template); i++ {
		c := template[i]
		if c == '$' && i+1 < len(template) {
			i++
			switch template[i] {
			case 'g':
				b = appendSender(b, sender)
			case 'd':
				b = t.AppendFormat(b, ctimeLayout)
			case '$':
				b = append(b, '$')
			default:
				b = append(b, c, template[i])
			}
			continue
		}
		if c == '\n' || c == '\r' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\n')
}

// format says how a message is written out for one kind of target.
type format struct {
	quote   bool // ">From " quoting of lines beginning "From "
	trailer bool // one empty line after the message
}

var (
	mboxFormat    = format{quote: true, trailer: true}
	programFormat = format{}
)

// bufSize is the copy buffer. Lines longer than this are copied in pieces;
// only the first piece is at the start of a line and can need quoting.
const bufSize = 64 << 10

// The buffers of render, reused: a new pair per message was most of what
// a delivery allocated.
var (
	renderWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, bufSize) }}
	renderReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}
)

// render writes a message to w in the given format, starting with the
// From_ line from (FromLine or UnixFromLine). body may be nil. It returns
// the first error of w or of reading the body.
func render(w io.Writer, from []byte, header []byte, body io.Reader, f format) error {
	bw := renderWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() { bw.Reset(nil); renderWriters.Put(bw) }()
	bw.Write(from)
	writeHeader(bw, header, f.quote)
	bw.WriteByte('\n')
	if body != nil {
		if err := copyLines(bw, body, f.quote); err != nil {
			return err
		}
	}
	if f.trailer {
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// bodyReader returns a fresh reader of the body, nil when there is none.
func (m *Message) bodyReader() io.Reader {
	if m.Body == nil || m.BodySize <= 0 {
		return nil
	}
	return io.NewSectionReader(m.Body, 0, m.BodySize)
}

// when returns the From_ line time.
func (m *Message) when(now func() time.Time) time.Time {
	if m.Time.IsZero() {
		return now()
	}
	return m.Time
}

var fromPrefix = []byte("From ")

// writeHeader writes the header block with the same quoting as the body
// (a "From " line is no header field, but a caller's stray From_ line must
// not start a new message) and a final newline when it lacks one.
func writeHeader(w *bufio.Writer, header []byte, quote bool) {
	for line := range bytes.Lines(header) {
		if quote && bytes.HasPrefix(line, fromPrefix) {
			w.WriteByte('>')
		}
		w.Write(line)
	}
	if len(header) > 0 && header[len(header)-1] != '\n' {
		w.WriteByte('\n')
	}
}

// copyLines copies r to w line by line, putting ">" before every line that
// begins "From " when quote is set, and ending the text with a newline when
// it is not empty and lacks one. Write errors are left in w (a bufio.Writer
// remembers them and reports them on Flush).
func copyLines(w *bufio.Writer, r io.Reader, quote bool) error {
	br := renderReaders.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); renderReaders.Put(br) }()
	atStart, empty := true, true
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if quote && atStart && bytes.HasPrefix(line, fromPrefix) {
				w.WriteByte('>')
			}
			w.Write(line)
			atStart = line[len(line)-1] == '\n'
			empty = false
		}
		switch err {
		case nil, bufio.ErrBufferFull:
			continue
		case io.EOF:
			if !empty && !atStart {
				w.WriteByte('\n')
			}
			return nil
		default:
			return err
		}
	}
}
