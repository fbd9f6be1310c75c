package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"
)

// maxReplyLine bounds one reply line as sendmail's MAXLINE does; the rest
// of a longer line is read and dropped.
const maxReplyLine = 2048

// reply is one SMTP reply: its code and lines (without CRLF).
type reply struct {
	code  int
	lines []string
	enh   string // enhanced code of the first line, when the peer offers ENHANCEDSTATUSCODES
}

func (r *reply) first() string {
	if r == nil || len(r.lines) == 0 {
		return ""
	}
	return r.lines[0]
}

func (r *reply) enhancedOr(def string) string {
	if r != nil && r.enh != "" {
		return r.enh
	}
	return def
}

// text is the first line after the code and, when the peer offers
// ENHANCEDSTATUSCODES, after the enhanced code: sendmail's e_statmsg
// ("Ok: queued as SINK1795580906").
func (r *reply) text() string {
	s := r.first()
	if len(s) < 4 {
		return ""
	}
	s = s[4:]
	if r.enh != "" && strings.HasPrefix(s, r.enh+" ") {
		s = s[len(r.enh)+1:]
	}
	return s
}

// extensions are what the EHLO reply offered.
type extensions struct {
	size       int64 // SIZE limit; 0 none given
	sizeOK     bool  // SIZE offered
	eightBit   bool  // 8BITMIME
	dsn        bool
	enhanced   bool // ENHANCEDSTATUSCODES
	pipelining bool
	startTLS   bool
	smtpUTF8   bool
}

// conn is one SMTP connection to a peer.
type conn struct {
	nc   net.Conn // the connection, or TLS over it
	raw  net.Conn // the TCP connection
	r    *bufio.Reader
	w    *bufio.Writer // over dw
	dw   deadlineWriter
	name string     // the peer as shown: "mx.example.", "[192.0.2.1]"
	addr netip.Addr // connected address
	port int
	key  cacheKey
	// unlock drops the host's lock (SingleThreadDelivery) that an idle
	// connection holds; close calls it.
	unlock func()

	esmtp    bool // EHLO was accepted
	ext      extensions
	eightOK  bool // the greeting said 8BIT-OK
	tls      bool
	verified bool   // the TLS requirement's Verify accepted the peer
	authKey  string // the TLSVerify requirement it was authenticated for

	// Per use (a cached connection serves several deliveries).
	v, xf     io.Writer // -v output, DSN transcript
	needIntro bool      // "... while talking to" not yet written
	lastCmd   string    // the last command sent, for the transcript
	broken    bool      // an I/O error or a timeout: never reuse
	closed    bool
	lastUse   time.Time
	lastV     io.Writer // -v output of the last delivery, for Close
	ctx       context.Context
	stopCtx   func() bool // detaches the context watcher
}

func newConn(nc net.Conn, name string, addr netip.Addr, port int) *conn {
	c := &conn{nc: nc, raw: nc, r: bufio.NewReaderSize(nc, 4096), name: name, addr: addr, port: port,
		v: io.Discard, xf: io.Discard, lastV: io.Discard, ctx: context.Background()}
	c.dw.c = c
	c.w = bufio.NewWriterSize(&c.dw, 32<<10)
	return c
}

// deadlineWriter re-arms the write deadline for every block written, so
// that a timeout bounds each write (sendmail's Timeout.datablock) rather
// than the whole message.
type deadlineWriter struct {
	c       *conn
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.arm(w.c.nc.SetWriteDeadline, w.timeout); err != nil {
		return 0, err
	}
	return w.c.nc.Write(p)
}

// relay is the log's relay= value for this connection.
func (c *conn) relay() string {
	return relayName(c.name, addrText(c.addr, c.addr.Is6() && !c.addr.Is4In6()))
}

// use binds the connection to one delivery: its writers and context. A
// context that ends sets a deadline in the past, so that any blocked read
// or write returns at once.
func (c *conn) use(ctx context.Context, v, xf io.Writer) {
	c.v, c.xf = v, xf
	c.needIntro = true
	c.lastCmd = ""
	c.ctx = ctx
	raw := c.raw
	c.stopCtx = context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
}

// arm sets a read or write deadline timeout from now, unless the
// delivery's context has ended (then the deadline stays in the past).
func (c *conn) arm(set func(time.Time) error, timeout time.Duration) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	set(deadline(timeout))
	if err := c.ctx.Err(); err != nil {
		set(time.Unix(1, 0))
		return err
	}
	return nil
}

// release detaches the connection from its delivery.
func (c *conn) release() {
	if c.stopCtx != nil {
		c.stopCtx()
		c.stopCtx = nil
	}
	c.v, c.xf = io.Discard, io.Discard
	c.ctx = context.Background()
}

// send writes a command (buffered until the next read or flush) and shows
// it with -v as sendmail's ">>> " line.
func (c *conn) send(cmd string) {
	c.lastCmd = cmd
	fmt.Fprintf(c.v, ">>> %s\n", cmd)
	c.w.WriteString(cmd)
	c.w.WriteString("\r\n")
}

// flush writes buffered commands within timeout.
func (c *conn) flush(timeout time.Duration) error {
	if c.w.Buffered() == 0 {
		return nil
	}
	c.dw.timeout = timeout
	if err := c.w.Flush(); err != nil {
		c.broken = true
		return err
	}
	return nil
}

func deadline(d time.Duration) time.Time {
	if d <= 0 {
		return time.Time{}
	}
	return time.Now().Add(d)
}

// readReply flushes pending commands and reads one reply within timeout.
// Every line is shown with -v; lines of 4xx and 5xx replies (5xx to EHLO
// excepted) go to the transcript after the command they answer, as
// sendmail writes its xf file.
func (c *conn) readReply(timeout time.Duration) (*reply, error) {
	if err := c.flush(timeout); err != nil {
		return nil, err
	}
	if err := c.arm(c.nc.SetReadDeadline, timeout); err != nil {
		c.broken = true
		return nil, err
	}
	r := &reply{}
	for {
		line, err := c.readLine()
		if err != nil {
			c.broken = true
			return nil, err
		}
		c.transcript(line)
		fmt.Fprintln(c.v, line)
		if !isReply(line) {
			continue // sendmail ignores improperly formatted input
		}
		code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
		if len(r.lines) == 0 {
			r.code = code
			if c.ext.enhanced {
				r.enh = enhancedCode(line[4:])
			}
		}
		r.lines = append(r.lines, line)
		if len(line) < 4 || line[3] != '-' {
			return r, nil
		}
	}
}

func (c *conn) transcript(line string) {
	if line == "" || (line[0] != '4' && (line[0] != '5' || strings.HasPrefix(c.lastCmd, "EHLO"))) {
		return
	}
	if c.needIntro {
		fmt.Fprintf(c.xf, "... while talking to %s:\n", c.name)
		c.needIntro = false
	}
	if c.lastCmd != "" {
		cmd := c.lastCmd
		if cmd == "STARTTLS" {
			cmd = "STARTTLS dialogue"
		}
		fmt.Fprintf(c.xf, ">>> %s\n", cmd)
		c.lastCmd = ""
	}
	fmt.Fprintf(c.xf, "<<< %s\n", line)
}

// readLine reads one line without its CRLF, at most maxReplyLine bytes
// of it.
func (c *conn) readLine() (string, error) {
	var b []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		if len(b)+len(chunk) <= maxReplyLine+2 {
			b = append(b, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF && len(b) == 0 {
				return "", io.EOF
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		s := strings.TrimRight(string(b), "\r\n")
		if len(s) > maxReplyLine {
			s = s[:maxReplyLine]
		}
		return s, nil
	}
}

// cmd sends a command and reads its reply.
func (c *conn) cmd(timeout time.Duration, format string, args ...any) (*reply, error) {
	c.send(fmt.Sprintf(format, args...))
	return c.readReply(timeout)
}

// quit says QUIT (unless the connection is broken) and closes.
func (c *conn) quit(timeout time.Duration) {
	if !c.broken {
		c.send("QUIT")
		c.readReply(timeout)
	}
	c.close()
}

func (c *conn) close() {
	c.release()
	c.closed = true
	c.nc.Close()
	if c.unlock != nil {
		c.unlock()
		c.unlock = nil
	}
}

// isReply reports whether line starts like an SMTP reply ("250 ", "250-",
// or a bare "250").
func isReply(line string) bool {
	if len(line) < 3 || !digit(line[0]) || !digit(line[1]) || !digit(line[2]) {
		return false
	}
	return len(line) == 3 || line[3] == ' ' || line[3] == '-'
}

func digit(b byte) bool { return b >= '0' && b <= '9' }

// enhancedCode returns the RFC 3463 code at the start of s ("5.1.1 ..."),
// or "".
func enhancedCode(s string) string {
	end := strings.IndexAny(s, " \t")
	if end < 0 {
		end = len(s)
	}
	code := s[:end]
	parts := strings.Split(code, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return ""
		}
		for i := 0; i < len(p); i++ {
			if !digit(p[i]) {
				return ""
			}
		}
	}
	return code
}

// parseEHLO reads the extensions of an EHLO reply (helo_options).
func parseEHLO(r *reply) extensions {
	var e extensions
	for _, line := range r.lines[1:] {
		if len(line) < 5 {
			continue
		}
		kw, arg, _ := strings.Cut(line[4:], " ")
		if k, a, ok := strings.Cut(kw, "="); ok {
			kw, arg = k, a
		}
		switch strings.ToUpper(kw) {
		case "SIZE":
			e.sizeOK = true
			var n int64
			for i := 0; i < len(arg) && digit(arg[i]); i++ {
				n = n*10 + int64(arg[i]-'0')
				if n > 1<<50 {
					break
				}
			}
			e.size = n
		case "8BITMIME":
			e.eightBit = true
		case "DSN":
			e.dsn = true
		case "ENHANCEDSTATUSCODES":
			e.enhanced = true
		case "PIPELINING":
			e.pipelining = true
		case "STARTTLS":
			e.startTLS = true
		case "SMTPUTF8":
			e.smtpUTF8 = true
		}
	}
	return e
}

// isTimeout reports a deadline that passed (Timeout.* expired).
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
