// Package maillog writes sendmail-format log lines.
//
// Admins grep these lines and tools (pflogsumm-like parsers, fail2ban) parse
// them, so the shape is an interface:
//
//	<QID>: from=<sender>, size=N, class=0, nrcpts=N, msgid=<id>, proto=ESMTP, daemon=MTA, relay=host [ip]
//	<QID>: to=<rcpt>, ctladdr=<a> (uid/gid), delay=HH:MM:SS, xdelay=HH:MM:SS, mailer=local, pri=N, relay=local, dsn=2.0.0, stat=Sent
//
// Lines go to syslog facility mail with the tag "sm-mta" (daemon) or
// "sendmail" (command-line runs), as sendmail's; when /dev/log cannot be
// reached they go to standard error instead, and with -X/-L to a file.
package maillog

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strings"
	"sync"
	"time"
)

// Priority is a syslog severity.
type Priority int

// Severities used by sendmail.
const (
	Err Priority = iota
	Warning
	Notice
	Info
	Debug
)

// Logger writes log lines. The zero value and a nil *Logger discard them, so
// packages can be tested without wiring a logger.
type Logger struct {
	mu     sync.Mutex
	sys    *syslog.Writer
	w      io.Writer // used when sys is nil
	tag    string
	stamps bool // prefix lines with a time and tag (file and stderr output)
	level  int  // sendmail's LogLevel: see minLevel
}

// DefaultLevel is sendmail's default LogLevel.
const DefaultLevel = 9

// minLevel is the LogLevel from which lines of a priority are written,
// after sendmail's scale: 1 serious system failures, 3 other failures, 4
// minor errors, 5 received messages and connections, 8 deliveries, 9
// deferrals and beyond (the level of each posthorn line follows its
// syslog priority, so Info lines — from=, to= — need 5).
var minLevel = map[Priority]int{Err: 1, Warning: 3, Notice: 4, Info: 5, Debug: 11}

// Open returns a logger that writes to syslog (facility mail) with the given
// tag, or to stderr when syslog is not reachable.
func Open(tag string) *Logger {
	sys, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, tag)
	if err != nil {
		return &Logger{w: os.Stderr, tag: tag, stamps: true, level: DefaultLevel}
	}
	return &Logger{sys: sys, tag: tag, level: DefaultLevel}
}

// OpenSyslogOnly is Open without the stderr fallback: for modes that
// speak a protocol on standard output (sendmail -bs), where a caller may
// read stderr and stdout as one stream.
func OpenSyslogOnly(tag string) *Logger {
	sys, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, tag)
	if err != nil {
		return nil
	}
	return &Logger{sys: sys, tag: tag, level: DefaultLevel}
}

// New returns a logger writing traditional syslog-format lines
// ("Nov 25 04:25:51 sm-mta[969]: ...") to w: the -L/-X file and test output.
func New(w io.Writer, tag string) *Logger {
	return &Logger{w: w, tag: tag, stamps: true, level: DefaultLevel}
}

// SetLevel sets sendmail's LogLevel: 0 writes nothing, 9 (the default)
// everything posthorn logs.
func (l *Logger) SetLevel(level int) {
	if l != nil {
		l.level = level
	}
}

// Close releases the syslog connection.
func (l *Logger) Close() error {
	if l == nil || l.sys == nil {
		return nil
	}
	return l.sys.Close()
}

// pid is this process's ID (os.Getpid is a system call each time).
var pid = os.Getpid()

func (l *Logger) logf(p Priority, qid, format string, args []any) {
	if l == nil || (l.sys == nil && l.w == nil) || l.level < minLevel[p] {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if qid != "" {
		msg = qid + ": " + msg
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sys != nil {
		switch p {
		case Err:
			l.sys.Err(msg)
		case Warning:
			l.sys.Warning(msg)
		case Notice:
			l.sys.Notice(msg)
		case Debug:
			l.sys.Debug(msg)
		default:
			l.sys.Info(msg)
		}
		return
	}
	if l.stamps {
		fmt.Fprintf(l.w, "%s %s[%d]: %s\n", time.Now().Format(time.Stamp), l.tag, pid, msg)
		return
	}
	fmt.Fprintln(l.w, msg)
}

// Errf logs at LOG_ERR. qid may be empty.
func (l *Logger) Errf(qid, format string, args ...any) { l.logf(Err, qid, format, args) }

// Warnf logs at LOG_WARNING.
func (l *Logger) Warnf(qid, format string, args ...any) { l.logf(Warning, qid, format, args) }

// Noticef logs at LOG_NOTICE.
func (l *Logger) Noticef(qid, format string, args ...any) { l.logf(Notice, qid, format, args) }

// Infof logs at LOG_INFO.
func (l *Logger) Infof(qid, format string, args ...any) { l.logf(Info, qid, format, args) }

// Fields joins "key=value" pairs with ", " as sendmail does, skipping pairs
// whose value is empty (optional fields such as ctladdr= or reply=).
func Fields(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(kv[i])
		b.WriteByte('=')
		b.WriteString(kv[i+1])
	}
	return b.String()
}

// Delay formats a duration as sendmail's delay= and xdelay= fields:
// HH:MM:SS, with a "D+" day prefix past 24 hours.
func Delay(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	out := fmt.Sprintf("%02d:%02d:%02d", s/3600, s%3600/60, s%60)
	if days > 0 {
		out = fmt.Sprintf("%d+%s", days, out)
	}
	return out
}
