package relay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Line limits of the mailers (L= in sendmail.cf): 990 for the SMTP
// mailers, 2040 for relay.
const (
	smtpLineLimit  = 990
	relayLineLimit = 2040
	// maxHeaderLine is where sendmail cuts one physical header line when
	// writing it out (its MAXLINE+256 buffer, less the NUL).
	maxHeaderLine = 2303
)

// lineWriter writes the lines of a message to the DATA stream as
// sendmail's putxline does: CRLF line ends; a "." doubled at the start of
// a line; a line longer than the limit cut after limit-1 characters,
// which are followed by "!" and CRLF, and continued on a line that starts
// with a space (so "0123…" of 1500 characters goes out as 989 characters
// and "!", then " " and the other 511). Lines arrive in pieces (write)
// and end with endLine; at most a limit's worth of a line is held.
type lineWriter struct {
	w     *bufio.Writer
	limit int
	pend  []byte
	slop  int // 1 on a continuation line: its leading space counts
	err   error
}

func newLineWriter(w *bufio.Writer, limit int) *lineWriter {
	return &lineWriter{w: w, limit: limit, pend: make([]byte, 0, limit+1)}
}

func (lw *lineWriter) write(p []byte) {
	lw.pend = append(lw.pend, p...)
	for lw.limit > 0 && len(lw.pend)+lw.slop > lw.limit {
		cut := lw.limit - lw.slop - 1
		if lw.slop == 0 && lw.pend[0] == '.' {
			lw.put([]byte{'.'})
		}
		lw.put(lw.pend[:cut])
		lw.put([]byte("!\r\n "))
		lw.pend = append(lw.pend[:0], lw.pend[cut:]...)
		lw.slop = 1
	}
}

func (lw *lineWriter) endLine() {
	if lw.slop == 0 && len(lw.pend) > 0 && lw.pend[0] == '.' {
		lw.put([]byte{'.'})
	}
	lw.put(lw.pend)
	lw.put([]byte("\r\n"))
	lw.pend, lw.slop = lw.pend[:0], 0
}

func (lw *lineWriter) line(p []byte) {
	lw.write(p)
	lw.endLine()
}

func (lw *lineWriter) lineString(s string) { lw.line([]byte(s)) }

func (lw *lineWriter) put(p []byte) {
	if lw.err != nil {
		return
	}
	_, lw.err = lw.w.Write(p)
}

// writeHeader writes a header block, each physical line cut at
// maxHeaderLine characters as sendmail writes headers. skip names fields
// left out (the Content-Transfer-Encoding a conversion replaces).
func writeHeader(lw *lineWriter, header []byte, skip string) {
	for _, f := range headerFields(header) {
		if skip != "" && strings.EqualFold(fieldName(f), skip) {
			continue
		}
		for _, l := range bytes.SplitAfter(f, []byte("\n")) {
			if len(l) == 0 {
				continue
			}
			l = bytes.TrimSuffix(l, []byte("\n"))
			if len(l) > maxHeaderLine {
				l = l[:maxHeaderLine]
			}
			lw.line(l)
		}
	}
}

// bodyReaders are the buffers copyBody reads through, reused across
// messages.
var bodyReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// copyBody writes a body as it is (LF or CRLF line ends in, CRLF out).
func copyBody(lw *lineWriter, body io.Reader) error {
	br := bodyReaders.Get().(*bufio.Reader)
	br.Reset(body)
	defer func() { br.Reset(nil); bodyReaders.Put(br) }()
	open := false // a line has been started and not ended
	for lw.err == nil {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if chunk[len(chunk)-1] == '\n' {
				chunk = bytes.TrimSuffix(chunk[:len(chunk)-1], []byte("\r"))
				lw.line(chunk)
				open = false
			} else {
				lw.write(chunk)
				open = true
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errBodyRead, err)
		}
	}
	if open {
		lw.endLine() // sendmail ends the data with a line end before "."
	}
	return lw.err
}

// dataPlan says how the message goes out on one connection.
type dataPlan struct {
	convert bool   // 8-bit to 7-bit MIME conversion (mime8to7)
	mimefy  bool   // add MIME headers to a non-MIME 8-bit message (EightBitMode=m)
	charset string // for added Content-Type headers
	limit   int    // line limit
	host    string // $j, for X-MIME-Autoconverted
	qid     string
}

// writeMessage writes the header, blank line and body (not the final dot).
func writeMessage(w *bufio.Writer, m *message, p dataPlan) error {
	lw := newLineWriter(w, p.limit)
	if p.convert {
		return convert8to7(lw, m.header, m.body, m.bodySize, convOptions{host: p.host, qid: p.qid, charset: p.charset})
	}
	writeHeader(lw, m.header, "")
	if p.mimefy {
		fields := headerFields(m.header)
		if _, ok := lookupField(fields, "MIME-Version"); !ok {
			lw.lineString("MIME-Version: 1.0")
			if _, ok := lookupField(fields, "Content-Type"); !ok {
				lw.lineString("Content-Type: text/plain; charset=" + p.charset)
			}
			if _, ok := lookupField(fields, "Content-Transfer-Encoding"); !ok {
				lw.lineString("Content-Transfer-Encoding: 8bit")
			}
		}
	}
	lw.line(nil)
	return copyBody(lw, m.reader())
}
