package relay

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// This file is sendmail's mime8to7: a message with 8-bit data goes to a
// peer that does not offer 8BITMIME as 7-bit MIME.
//
//   - The header is written without Content-Transfer-Encoding; then
//     "MIME-Version: 1.0" and "Content-Type: text/plain; charset=<DefaultCharSet>"
//     when the message has none.
//   - multipart/* (not multipart/signed) is walked: prologue and epilogue
//     with the high bit of each octet cleared, every part between
//     "--boundary" lines with its own header (less its
//     Content-Transfer-Encoding) converted in turn, "--boundary--" at the
//     end; nesting is followed to 20 levels, deeper parts are leaves.
//   - message/rfc822 is entered once: its header is written (with
//     "MIME-Version: 1.0" added when missing) and its body converted.
//   - Any other part (a leaf) is scanned: without 8-bit octets it goes
//     out unchanged, its Content-Transfer-Encoding written back; with them
//     it is encoded as base64 when more than one octet in eight has the
//     high bit set (or the part said "binary"), as quoted-printable
//     otherwise, and gets "Content-Transfer-Encoding: base64" or
//     "quoted-printable" and "X-MIME-Autoconverted: from 8bit to <cte> by
//     $j id $i". Quoted-printable lines are at most 76 characters, with
//     sendmail's soft breaks; base64 lines 72.
//   - Parts whose Content-Transfer-Encoding is neither 7bit, 8bit nor
//     binary, and multipart/signed, are passed through untouched.
//
// Deviations, all on malformed input: a multipart without a boundary
// parameter is treated as a leaf (sendmail invents the boundary "---"); a
// boundary of an enclosing multipart ends the inner one, which is closed
// with its own final boundary line (sendmail keeps reading parts); a CR
// before LF is stripped when lines are compared with boundaries.

const maxMIMENesting = 20

// Boundary line types (sendmail's MBT_*).
const (
	btNotSep = iota
	btIntermed
	btFinal
)

type convOptions struct {
	host, qid, charset string
}

type converter struct {
	lw     *lineWriter
	in     *posReader
	opt    convOptions
	bounds []string // pending multipart boundaries, outermost first
	open   bool     // a line was started and not ended
}

// convert8to7 writes header and body as 7-bit MIME.
func convert8to7(lw *lineWriter, header []byte, body io.ReaderAt, size int64, opt convOptions) error {
	if opt.charset == "" {
		opt.charset = "unknown-8bit"
	}
	fields := headerFields(header)
	writeHeader(lw, header, "Content-Transfer-Encoding")
	if _, ok := lookupField(fields, "MIME-Version"); !ok {
		lw.lineString("MIME-Version: 1.0")
	}
	if _, ok := lookupField(fields, "Content-Type"); !ok {
		lw.lineString("Content-Type: text/plain; charset=" + opt.charset)
	}
	cv := &converter{lw: lw, in: newPosReader(body, size), opt: opt}
	_, _, err := cv.entity(fields, false, 0)
	if cv.open {
		lw.endLine()
	}
	if lw.err != nil {
		return lw.err
	}
	if err != nil {
		return fmt.Errorf("%w: %v", errBodyRead, err)
	}
	return nil
}

// entity writes the rest of one entity whose header fields (hdr) have
// been written except Content-Transfer-Encoding: that field if any, the
// blank line and the body. It returns the boundary line that ended it
// (btFinal at the end of the input) and that boundary's level in bounds.
func (cv *converter) entity(hdr [][]byte, digest bool, depth int) (int, int, error) {
	cteVal, _ := lookupField(hdr, "Content-Transfer-Encoding")
	cteVal = stripComments(cteVal)
	cte := strings.ToLower(firstToken(cteVal))
	ctVal, ok := lookupField(hdr, "Content-Type")
	if !ok {
		ctVal = "text/plain"
		if digest {
			ctVal = "message/rfc822"
		}
	}
	typ, sub, params := parseContentType(ctVal)
	passThrough := typ+"/"+sub == "multipart/signed" ||
		(cte != "" && cte != "7bit" && cte != "8bit" && cte != "binary")

	if typ == "multipart" && !passThrough && depth < maxMIMENesting && len(cv.bounds) < maxMIMENesting {
		if b, ok := params["boundary"]; ok && b != "" && len(b) < 128 {
			return cv.multipart(b, sub == "digest", depth)
		}
	}
	if typ == "message" && sub == "rfc822" && !passThrough && depth < maxMIMENesting {
		cv.lw.line(nil)
		inner, err := cv.readHeader()
		if err != nil {
			return btFinal, -1, err
		}
		cv.writeFields(inner)
		if _, ok := lookupField(inner, "MIME-Version"); !ok {
			cv.lw.lineString("MIME-Version: 1.0")
		}
		return cv.entity(inner, false, depth+1)
	}
	return cv.leaf(cte, cteVal, passThrough)
}

// multipart walks a multipart body with the given boundary.
func (cv *converter) multipart(boundary string, digest bool, depth int) (int, int, error) {
	level := len(cv.bounds)
	cv.bounds = append(cv.bounds, boundary)
	defer func() { cv.bounds = cv.bounds[:level] }()

	cv.lw.line(nil)
	bt, lvl, err := cv.copyUntilBoundary(true)
	for err == nil && bt == btIntermed && lvl == level {
		cv.lw.lineString("--" + boundary)
		var part [][]byte
		if part, err = cv.readHeader(); err != nil {
			break
		}
		cv.writeFields(part)
		bt, lvl, err = cv.entity(part, digest, depth+1)
	}
	if err != nil {
		return btFinal, -1, err
	}
	cv.lw.lineString("--" + boundary + "--")
	if lvl != level && lvl >= 0 {
		return bt, lvl, nil // an enclosing boundary ended this multipart
	}
	cv.bounds = cv.bounds[:level]
	return cv.copyUntilBoundary(true) // the epilogue
}

// leaf writes a non-compound part.
func (cv *converter) leaf(cte, cteVal string, passThrough bool) (int, int, error) {
	var size, high int
	if !passThrough {
		start := cv.in.pos
		var err error
		if size, high, err = cv.scan(); err != nil {
			return btFinal, -1, err
		}
		cv.in.seek(start)
	}
	if cte == "binary" {
		size = high
	}
	switch {
	case high == 0:
		if cteVal != "" {
			cv.lw.lineString("Content-Transfer-Encoding: " + cteVal)
		}
		cv.lw.line(nil)
		return cv.copyUntilBoundary(false)
	case size/8 < high:
		cv.lw.lineString("Content-Transfer-Encoding: base64")
		cv.lw.lineString("X-MIME-Autoconverted: from 8bit to base64 by " + cv.opt.host + " id " + cv.opt.qid)
		cv.lw.line(nil)
		e := &b64Encoder{lw: cv.lw}
		bt, lvl, err := cv.content(func(b []byte) { e.write(b) }, true)
		e.finish()
		return bt, lvl, err
	default:
		cv.lw.lineString("Content-Transfer-Encoding: quoted-printable")
		cv.lw.lineString("X-MIME-Autoconverted: from 8bit to quoted-printable by " + cv.opt.host + " id " + cv.opt.qid)
		cv.lw.line(nil)
		e := &qpEncoder{lw: cv.lw, prev: '\n'}
		bt, lvl, err := cv.content(func(b []byte) { e.write(b) }, false)
		e.finish(len(cv.bounds) > 0)
		return bt, lvl, err
	}
}

// eachLine calls fn with each line (or piece of a long line) of the part
// ahead, up to a line that is one of the pending boundaries: it returns
// that boundary and its level, btFinal and -1 at the end of the input,
// btNotSep when fn stops it early by returning false.
func (cv *converter) eachLine(fn func(piece []byte, eol bool) bool) (int, int, error) {
	atStart := true
	for {
		piece, eol, err := cv.in.next()
		if err == io.EOF {
			return btFinal, -1, nil
		}
		if err != nil {
			return btFinal, -1, err
		}
		if atStart {
			if bt, lvl := cv.boundary(piece, eol); bt != btNotSep {
				return bt, lvl, nil
			}
		}
		atStart = eol
		if !fn(piece, eol) {
			return btNotSep, -1, nil
		}
	}
}

// scan counts the octets of the part ahead and those with the high bit
// set, stopping early once 4K read are more than a quarter 8-bit (then
// base64 is the answer anyway).
func (cv *converter) scan() (size, high int, err error) {
	_, _, err = cv.eachLine(func(piece []byte, _ bool) bool {
		size += len(piece)
		for _, c := range piece {
			if c >= 0x80 {
				high++
			}
		}
		return size < 4096 || high <= size/4
	})
	return size, high, err
}

// copyUntilBoundary copies lines as they are until a line that is one of
// the pending boundaries (returned, not written) or the end of the input.
// strip clears the high bit (prologue and epilogue, as sendmail).
func (cv *converter) copyUntilBoundary(strip bool) (int, int, error) {
	bt, lvl, err := cv.eachLine(func(piece []byte, eol bool) bool {
		if strip {
			piece = bytes.Clone(piece)
			for i := range piece {
				piece[i] &= 0x7f
			}
		}
		if eol {
			cv.lw.line(trimEOL(piece))
		} else {
			cv.lw.write(piece)
		}
		cv.open = !eol
		return cv.lw.err == nil
	})
	if cv.lw.err != nil {
		return btFinal, -1, cv.lw.err
	}
	return bt, lvl, err
}

// content feeds the octets of a leaf to an encoder: its lines joined by
// LF (CRLF when crlf is set, for base64), without the line end that
// precedes the boundary ending the part (it belongs to the boundary).
func (cv *converter) content(feed func([]byte), crlf bool) (int, int, error) {
	nl := []byte("\n")
	if crlf {
		nl = []byte("\r\n")
	}
	pendingNL := false
	bt, lvl, err := cv.eachLine(func(piece []byte, eol bool) bool {
		if pendingNL {
			feed(nl)
		}
		if pendingNL = eol; eol {
			piece = piece[:len(piece)-1]
		}
		feed(piece)
		return cv.lw.err == nil
	})
	switch {
	case cv.lw.err != nil:
		return btFinal, -1, cv.lw.err
	case err == nil && lvl < 0 && pendingNL:
		feed(nl) // the end of the input: the last line end is content
	}
	return bt, lvl, err
}

// boundary reports whether a line is "--b" or "--b--" for one of the
// pending boundaries b (trailing blanks ignored), innermost first.
func (cv *converter) boundary(line []byte, eol bool) (int, int) {
	if len(cv.bounds) == 0 || len(line) < 2 || line[0] != '-' || line[1] != '-' || len(line) > 512 {
		return btNotSep, -1
	}
	s := strings.TrimRight(string(line[2:]), " \t\r\n")
	for i := len(cv.bounds) - 1; i >= 0; i-- {
		if s == cv.bounds[i] {
			return btIntermed, i
		}
	}
	if strings.HasSuffix(s, "--") {
		s = s[:len(s)-2]
		for i := len(cv.bounds) - 1; i >= 0; i-- {
			if s == cv.bounds[i] {
				return btFinal, i
			}
		}
	}
	return btNotSep, -1
}

// readHeader reads the header of a body part: lines up to a blank line
// (consumed) or up to a line that cannot be a header field (left for the
// body).
func (cv *converter) readHeader() ([][]byte, error) {
	var block []byte
	for {
		start := cv.in.pos
		piece, eol, err := cv.in.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		line := trimEOL(piece)
		if eol && len(line) == 0 {
			break
		}
		if !eol || len(line) == 0 || len(block) > 1<<20 {
			cv.in.seek(start)
			break
		}
		cont := len(block) > 0 && (line[0] == ' ' || line[0] == '\t')
		if !cont && !isFieldLine(line) {
			cv.in.seek(start)
			break
		}
		block = append(block, line...)
		block = append(block, '\n')
	}
	return headerFields(block), nil
}

func isFieldLine(l []byte) bool {
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return false
	}
	for _, c := range l[:i] {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// writeFields writes part header fields, less Content-Transfer-Encoding.
func (cv *converter) writeFields(fields [][]byte) {
	writeHeader(cv.lw, bytes.Join(fields, nil), "Content-Transfer-Encoding")
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// posReader reads lines of a body at known offsets, so that a part can be
// scanned and read again. It keeps a window of the body: going back to a
// place still in it (a small part scanned, a header line given back) costs
// nothing, and further back one read.
type posReader struct {
	ra   io.ReaderAt
	size int64
	buf  []byte
	base int64 // offset of buf[0]
	r, w int   // next byte, end of the valid bytes
	pos  int64 // base + r
}

func newPosReader(ra io.ReaderAt, size int64) *posReader {
	return &posReader{ra: ra, size: size, buf: make([]byte, 16<<10)}
}

func (p *posReader) seek(off int64) {
	if off >= p.base && off <= p.base+int64(p.w) {
		p.r = int(off - p.base)
	} else {
		p.base, p.r, p.w = off, 0, 0
	}
	p.pos = off
}

// next returns the next line with its LF (eol), or a piece of a line too
// long for the window, or the last bytes before the end without an LF.
// The slice is valid until the next call.
func (p *posReader) next() ([]byte, bool, error) {
	for {
		if i := bytes.IndexByte(p.buf[p.r:p.w], '\n'); i >= 0 {
			return p.take(i + 1), true, nil
		}
		if p.w-p.r == len(p.buf) {
			return p.take(p.w - p.r), false, nil
		}
		// Keep what is left, read more after it.
		n := copy(p.buf, p.buf[p.r:p.w])
		p.base += int64(p.r)
		p.r, p.w = 0, n
		end := p.base + int64(p.w)
		if end >= p.size {
			if p.w > 0 {
				return p.take(p.w), false, nil
			}
			return nil, false, io.EOF
		}
		want := len(p.buf) - p.w
		if rest := p.size - end; rest < int64(want) {
			want = int(rest)
		}
		m, err := p.ra.ReadAt(p.buf[p.w:p.w+want], end)
		p.w += m
		if m == 0 && err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // shorter than its size
			}
			return nil, false, err
		}
	}
}

func (p *posReader) take(n int) []byte {
	b := p.buf[p.r : p.r+n]
	p.r += n
	p.pos += int64(n)
	return b
}

// qpEncoder is sendmail's quoted-printable encoder, octet by octet.
type qpEncoder struct {
	lw      *lineWriter
	buf     []byte
	linelen int
	prev    byte // the previous octet ('\n' at the start of a line); a blank is held until the next octet shows whether it ends the line
}

const hexDigits = "0123456789ABCDEF"

func qpBad(c byte) bool { return (c < 0x20 && c != '\t') || c >= 0x7f || c == '=' }

func (q *qpEncoder) write(b []byte) {
	for _, c := range b {
		q.octet(c)
	}
}

func (q *qpEncoder) octet(c byte) {
	if c == '\n' {
		if q.prev == ' ' || q.prev == '\t' {
			q.buf = append(q.buf, '=', hexDigits[q.prev>>4], hexDigits[q.prev&0x0f])
		}
		if len(q.buf) == 1 && q.buf[0] == '.' {
			q.buf = append(q.buf[:0], "=2E"...)
		}
		q.emit()
		q.prev = '\n'
		return
	}
	if q.prev == ' ' || q.prev == '\t' {
		q.buf = append(q.buf, q.prev)
		q.linelen++
	}
	if q.linelen > 72 && (q.linelen > 75 || c != '.' || (q.linelen > 73 && q.prev == '.')) {
		if q.linelen > 73 && q.prev == '.' {
			q.buf = q.buf[:len(q.buf)-1]
		} else {
			q.prev = '\n'
		}
		q.buf = append(q.buf, '=')
		q.emit()
		if q.prev == '.' {
			q.buf = append(q.buf, '.')
			q.linelen++
		}
	}
	if qpBad(c) {
		q.buf = append(q.buf, '=', hexDigits[c>>4], hexDigits[c&0x0f])
		q.linelen += 3
	} else if c != ' ' && c != '\t' {
		q.buf = append(q.buf, c)
		q.linelen++
	}
	q.prev = c
}

func (q *qpEncoder) emit() {
	q.lw.line(q.buf)
	q.buf, q.linelen = q.buf[:0], 0
}

// finish writes what is held; inside a multipart the last line is always
// ended (its line end precedes the boundary).
func (q *qpEncoder) finish(inMultipart bool) {
	if q.prev == ' ' || q.prev == '\t' {
		q.buf = append(q.buf, '=', hexDigits[q.prev>>4], hexDigits[q.prev&0x0f])
		q.linelen += 3
	}
	if q.linelen > 0 || inMultipart {
		q.emit()
	}
}

// b64Encoder writes base64 in lines of 72 characters, as sendmail.
type b64Encoder struct {
	lw    *lineWriter
	group []byte
	line  []byte
}

const b64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

func (e *b64Encoder) write(b []byte) {
	for _, c := range b {
		e.group = append(e.group, c)
		if len(e.group) == 3 {
			e.flushGroup()
		}
	}
}

func (e *b64Encoder) flushGroup() {
	if len(e.line) > 71 {
		e.lw.line(e.line)
		e.line = e.line[:0]
	}
	g := e.group
	var v uint32
	for i := 0; i < 3; i++ {
		v <<= 8
		if i < len(g) {
			v |= uint32(g[i])
		}
	}
	for i := 0; i < 4; i++ {
		if i <= len(g) {
			e.line = append(e.line, b64Alphabet[(v>>(18-6*uint(i)))&0x3f])
		} else {
			e.line = append(e.line, '=')
		}
	}
	e.group = e.group[:0]
}

func (e *b64Encoder) finish() {
	if len(e.group) > 0 {
		e.flushGroup()
	}
	e.lw.line(e.line)
}

// parseContentType reads a Content-Type value leniently: the type and
// subtype in lower case, parameters by lower-case name with quotes
// removed.
func parseContentType(v string) (typ, sub string, params map[string]string) {
	params = map[string]string{}
	parts := splitParams(stripComments(v))
	if len(parts) == 0 {
		return "-none-", "-none-", params
	}
	t, s, ok := strings.Cut(strings.TrimSpace(parts[0]), "/")
	typ = strings.ToLower(strings.TrimSpace(t))
	sub = "-none-"
	if ok {
		sub = strings.ToLower(strings.TrimSpace(s))
	}
	if typ == "" {
		typ = "-none-"
	}
	for _, p := range parts[1:] {
		name, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		params[strings.ToLower(strings.TrimSpace(name))] = unquote(strings.TrimSpace(val))
	}
	return typ, sub, params
}

// splitParams splits at semicolons outside quoted strings.
func splitParams(s string) []string {
	var out []string
	var cur strings.Builder
	inQ, esc := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case inQ && c == '\\':
			esc = true
		case c == '"':
			inQ = !inQ
		case c == ';' && !inQ:
			out = append(out, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(c)
	}
	return append(out, cur.String())
}

func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' {
		return s
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// stripComments removes RFC 5322 comments outside quoted strings.
func stripComments(s string) string {
	if !strings.Contains(s, "(") {
		return strings.TrimSpace(s)
	}
	var b strings.Builder
	depth, inQ, esc := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
			if depth == 0 {
				b.WriteByte(c)
			}
			continue
		case c == '\\' && (inQ || depth > 0):
			esc = true
			if depth == 0 {
				b.WriteByte(c)
			}
			continue
		case c == '"' && depth == 0:
			inQ = !inQ
		case c == '(' && !inQ:
			depth++
			continue
		case c == ')' && !inQ && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

func firstToken(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t;"); i >= 0 {
		s = s[:i]
	}
	return s
}
