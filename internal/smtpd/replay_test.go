package smtpd_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// replay plays a reference script (the format of the reference's
// scripts/smtpc.py) against conn and returns the transcript in the same
// "S:"/"C:" form. Waits are shortened: the server under test answers at
// once, and its tarpits do not sleep.
func replay(conn net.Conn, script string) string {
	r := &replayer{conn: conn, tmo: "60"}
	r.reply()
	for _, line := range strings.Split(script, "\n") {
		if r.closed {
			r.printf("# (server closed the connection; remaining script lines not sent)")
			break
		}
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			r.printf("%s", line)
		case strings.HasPrefix(line, ">> "):
			r.send([]byte(line[3:]+"\r\n"), "C: "+line[3:])
		case line == ">>":
			r.send([]byte("\r\n"), "C: ")
		case strings.HasPrefix(line, "> ") || line == ">":
			t := strings.TrimPrefix(strings.TrimPrefix(line, ">"), " ")
			lab := "C: " + t
			if len(t) > 200 {
				lab = fmt.Sprintf("C: %s...[%d chars total]", t[:60], len(t))
			}
			r.send([]byte(t+"\r\n"), lab)
			r.reply()
		case strings.HasPrefix(line, "RAW ") || strings.HasPrefix(line, "RAWW "):
			cmd, lit, _ := strings.Cut(line, " ")
			b := pyBytes(lit)
			lab := lit
			if len(lab) > 200 {
				lab = lab[:100] + fmt.Sprintf("...[%d bytes total]", len(b))
			}
			r.send(b, "C: (raw bytes) "+lab)
			if cmd == "RAWW" {
				r.reply()
			}
		case line == "TIMES", strings.HasPrefix(line, "SLEEP "):
		case strings.HasPrefix(line, "TIMEOUT "):
			f, _ := strconv.ParseFloat(line[8:], 64)
			r.tmo = strconv.FormatFloat(f, 'f', 1, 64)
		case line == "WAIT":
			r.reply()
		case strings.HasPrefix(line, "DRAIN "):
			for {
				l, ok := r.readline(300 * time.Millisecond)
				if !ok {
					break
				}
				r.show(l)
			}
		}
	}
	if !r.closed {
		for {
			l, ok := r.readline(200 * time.Millisecond)
			if !ok {
				break
			}
			r.show(l)
		}
	}
	if r.closed {
		r.printf("# connection closed by server")
	} else {
		r.printf("# connection still open at end of script; closed by client")
	}
	return r.out.String()
}

type replayer struct {
	conn   net.Conn
	buf    []byte
	closed bool
	tmo    string
	out    strings.Builder
}

func (r *replayer) printf(format string, args ...any) {
	fmt.Fprintf(&r.out, format+"\n", args...)
}

func (r *replayer) send(b []byte, label string) {
	if _, err := r.conn.Write(b); err != nil {
		r.printf("# send failed: %v", err)
		return
	}
	r.printf("%s", label)
}

func (r *replayer) readline(timeout time.Duration) (string, bool) {
	for bytes.IndexByte(r.buf, '\n') < 0 {
		if r.closed {
			break
		}
		_ = r.conn.SetReadDeadline(time.Now().Add(timeout))
		var tmp [65536]byte
		n, err := r.conn.Read(tmp[:])
		r.buf = append(r.buf, tmp[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "", false
			}
			r.closed = true
		}
	}
	i := bytes.IndexByte(r.buf, '\n')
	if i < 0 {
		if len(r.buf) > 0 {
			l := string(r.buf)
			r.buf = nil
			return l, true
		}
		return "", false
	}
	l := string(r.buf[:i+1])
	r.buf = r.buf[i+1:]
	return l, true
}

func (r *replayer) show(l string) {
	if strings.HasSuffix(l, "\r\n") {
		r.printf("S: %s", l[:len(l)-2])
	} else {
		r.printf("S: %q   [no CRLF]", l)
	}
}

func (r *replayer) reply() {
	for {
		l, ok := r.readline(2 * time.Second)
		if !ok {
			extra := ""
			if r.closed {
				extra = ", connection closed"
			}
			r.printf("S: <no reply within %ss%s>", r.tmo, extra)
			return
		}
		r.show(l)
		if len(l) >= 4 && isDigits(l[:3]) && l[3] == ' ' && l[0] != '0' {
			return
		}
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// pyBytes decodes a Python bytes literal such as b'a\r\n\x00'.
func pyBytes(lit string) []byte {
	lit = strings.TrimPrefix(lit, "b")
	if len(lit) >= 2 {
		lit = lit[1 : len(lit)-1]
	}
	var b []byte
	for i := 0; i < len(lit); i++ {
		c := lit[i]
		if c != '\\' || i+1 >= len(lit) {
			b = append(b, c)
			continue
		}
		i++
		switch lit[i] {
		case 'r':
			b = append(b, '\r')
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'x':
			v, _ := strconv.ParseUint(lit[i+1:i+3], 16, 8)
			b = append(b, byte(v))
			i += 2
		default:
			b = append(b, lit[i])
		}
	}
	return b
}

// refDir holds the sendmail 8.17 captures (testdata/reference/sendmail at
// the top of the repository: copies of shared/reference/sendmail, so the
// tests run on a clean clone), and refScripts their input scripts.
const (
	refDir     = "../../testdata/reference/sendmail/"
	refScripts = refDir + "scripts/smtp/"
)

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return string(b)
}
