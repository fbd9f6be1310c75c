package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/posthorn/posthorn/internal/hoststat"
	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/queue/runner"
)

// Exit statuses recorded in the host status (sendmail's sysexits values).
const (
	exitOK          = 0
	exitNoHost      = 68
	exitUnavailable = 69
	exitTempFail    = 75
	exitConfig      = 78
)

// errno values sendmail records in a host status file (Linux numbering,
// which sendmail's own files on Linux carry too).
const (
	errnoConnReset   = 104
	errnoTimedOut    = 110
	errnoConnRefused = 111
)

// failure is why a host (or the whole destination) did not take the
// message: the result every recipient still pending gets, and the host
// status recorded for the host.
type failure struct {
	st     *status.Error
	relay  string // relay= ("mx.example. [192.0.2.1]", "mx.example.")
	remote string // Remote-MTA
	reply  string // the remote reply that decided, if one did
	diag   string // Diagnostic-Code when no reply was received
	errno  int
	herrno int // resolver error (h_errno): 1 HOST_NOT_FOUND
	exit   int
	stick  bool   // recorded as host status (sendmail's non-NOTSTICKY errors)
	syserr string // logged as "SYSERR(root): ..." when the delivery settles with it
}

func (f *failure) temporary() bool { return f.st.Temporary() }

// result is the recipient result the failure gives.
func (f *failure) result() runner.Result {
	return runner.Result{Err: f.st, Relay: f.relay, RemoteMTA: f.remote, Reply: f.reply, Diagnostic: f.diag}
}

// hostStatus is what is recorded about host key after the failure.
func (f *failure) hostStatus(key string) hoststat.Status {
	s := hoststat.Status{Host: key, Errno: f.errno, Herrno: f.herrno, Exit: f.exit, DSN: f.st.Enhanced, Reply: f.reply}
	if f.exit == exitOK {
		s.Exit = exitTempFail
	}
	return s
}

// netErrno classifies a connection-level error as the errno sendmail would
// have seen: ECONNREFUSED, ETIMEDOUT, ECONNRESET (also for a peer that
// closed the connection: sendmail fakes ECONNRESET then), or another errno.
func netErrno(err error) int {
	var en syscall.Errno
	switch {
	case errors.As(err, &en):
		return int(en)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return errnoTimedOut
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return errnoConnReset
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errnoTimedOut
	}
	return errnoConnReset
}

// errnoText is sendmail's sm_errstring for the errors a connection meets,
// with the host name where sendmail puts it: "Connection refused by
// mx.example.", "Connection timed out with mx.example.", "Connection reset
// by mx.example.". (sendmail's " during <phase>" suffix lands past the end
// of its buffer and is never shown; it is not shown here either.)
func errnoText(errno int, host string) string {
	switch errno {
	case errnoConnRefused:
		return "Connection refused by " + host
	case errnoTimedOut:
		return "Connection timed out with " + host
	case errnoConnReset:
		return "Connection reset by " + host
	case int(syscall.EHOSTDOWN):
		return host + ": Host " + host + " is down"
	case int(syscall.ENETDOWN), int(syscall.ENETUNREACH), int(syscall.ENETRESET),
		int(syscall.ECONNABORTED), int(syscall.EHOSTUNREACH):
		return host + ": " + syscall.Errno(errno).Error()
	case 0:
		return "Deferred"
	}
	return upperFirst(syscall.Errno(errno).Error())
}

func upperFirst(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// connFailure is a failed connect(): dsn 4.4.1, sticky.
func connFailure(err error, name, relay string) *failure {
	errno := netErrno(err)
	return &failure{st: status.Wrap(err, 451, "4.4.1", "%s", errnoText(errno, name)),
		relay: relay, remote: name, errno: errno, exit: exitTempFail, stick: true}
}

// ioFailure is a connection lost or timed out in the dialogue: dsn 4.4.2.
func ioFailure(err error, name, relay string) *failure {
	errno := netErrno(err)
	return &failure{st: status.Wrap(err, 451, "4.4.2", "%s", errnoText(errno, name)),
		relay: relay, remote: name, errno: errno, exit: exitTempFail, stick: true}
}

// interrupted is the result when the caller's context ends mid-delivery.
func interrupted(ctx context.Context, name, relay string) *failure {
	return &failure{st: status.Wrap(ctx.Err(), 451, "4.4.2", "Delivery interrupted (%v)", ctx.Err()),
		relay: relay, remote: name, exit: exitTempFail}
}

// replyTempFailure is a 4xx reply: "Deferred: 451 4.3.0 text" in the log.
// dsn is the enhanced code to use when the reply carries none.
func replyTempFailure(r *reply, dsn, name, relay string, stick bool) *failure {
	return &failure{st: status.New(r.code, r.enhancedOr(dsn), "%s", r.first()),
		relay: relay, remote: name, reply: r.first(), exit: exitTempFail, stick: stick}
}

// sysexit failures: sendmail's exit status with its text and the remote's
// enhanced code ("554 5.7.1 <a@b>... Service unavailable").
func unavailable(r *reply, dsn, name, relay string) *failure {
	return &failure{st: status.New(554, r.enhancedOr(dsn), "Service unavailable"),
		relay: relay, remote: name, reply: r.first(), exit: exitUnavailable, stick: true}
}

// hostUnknown is a name that does not exist: "Host unknown (Name server:
// x: host not found)", diagnostic "550 Host unknown" as sendmail's DSN.
func hostUnknown(err error, name, relay, remote string) *failure {
	return &failure{st: status.Wrap(err, 550, "5.1.2", "Host unknown (Name server: %s: host not found)", name),
		relay: relay, remote: remote, diag: "550 Host unknown", herrno: 1, exit: exitNoHost, stick: true}
}

// lookupFailure is a temporary resolver failure.
func lookupFailure(err error, name, relay string) *failure {
	return &failure{st: status.Wrap(err, 451, "4.4.3", "Name server: %s: host name lookup failure", name),
		relay: relay, remote: name, exit: exitTempFail}
}

// nullMX is a domain that publishes "MX 0 ." (RFC 7505).
func nullMX(err error, name string) *failure {
	return &failure{st: status.Wrap(err, 554, "5.1.10", "Service unavailable"),
		relay: name, remote: name, diag: "556 Host does not accept mail: MX 0 .", exit: exitUnavailable, stick: true}
}

// configFailure is sendmail's EX_CONFIG: "554 5.3.5 Local configuration
// error", with the reason as diagnostic.
func configFailure(diag, name, relay string) *failure {
	return &failure{st: status.New(554, "5.3.5", "Local configuration error"),
		relay: relay, remote: name, diag: diag, exit: exitConfig, stick: true}
}

// resolveFailure turns a resolver error about name into its failure: a
// *status.Error with 5.1.10 is a null MX, another permanent one a name
// that does not exist, anything else temporary.
func resolveFailure(err error, name, relay, remote string) *failure {
	var se *status.Error
	if errors.As(err, &se) && !se.Temporary() {
		if se.Enhanced == "5.1.10" {
			return nullMX(err, name)
		}
		return hostUnknown(err, name, relay, remote)
	}
	return lookupFailure(err, name, relay)
}

// statusFailure rebuilds the failure recorded in a host status, for a host
// skipped because it is down: same text as when it failed, relay= without
// an address (as sendmail's log shows for a cached status).
func statusFailure(s hoststat.Status, name string) *failure {
	f := &failure{relay: name, remote: name, errno: s.Errno, exit: s.Exit, stick: false, reply: s.Reply}
	dsn := s.DSN
	switch {
	case s.Exit == exitTempFail && s.Errno != 0:
		if dsn == "" {
			dsn = "4.4.1"
		}
		f.st = status.New(451, dsn, "%s", errnoText(s.Errno, name))
		f.reply = ""
	case s.Exit == exitTempFail:
		if dsn == "" {
			dsn = "4.0.0"
		}
		text := s.Reply
		if text == "" {
			text = "Deferred"
		}
		f.st = status.New(451, dsn, "%s", text)
	case s.Exit == exitNoHost:
		f.st = status.New(550, "5.1.2", "Host unknown (Name server: %s: host not found)", name)
		f.diag = "550 Host unknown"
	case s.Exit == exitConfig:
		f.st = status.New(554, "5.3.5", "Local configuration error")
	default:
		if dsn == "" || dsn[0] != '5' {
			dsn = "5.0.0"
		}
		f.st = status.New(554, dsn, "Service unavailable")
	}
	return f
}

// rcptFailure classifies the reply to one RCPT as sendmail's smtprcptstat
// does. It returns nil for a 2xx reply.
func rcptFailure(r *reply, name, relay string) *status.Error {
	switch {
	case r.code/100 == 2:
		return nil
	case r.code/100 == 4:
		return status.New(r.code, r.enhancedOr(smtpToDSN(r.code)), "%s", r.first())
	case r.code == 550:
		return status.New(550, r.enhancedOr("5.1.1"), "User unknown")
	case r.code == 551:
		return status.New(550, r.enhancedOr("5.1.6"), "User unknown")
	case r.code == 553:
		return status.New(550, r.enhancedOr("5.1.3"), "User unknown")
	case r.code/100 == 5:
		return status.New(554, r.enhancedOr(smtpToDSN(r.code)), "Service unavailable")
	}
	return status.New(554, r.enhancedOr("5.5.1"), "Remote protocol error")
}

// mailFailure classifies a failed MAIL reply (smtpmailfrom).
func mailFailure(r *reply) *status.Error {
	switch {
	case r.code/100 == 4:
		return status.New(r.code, r.enhancedOr(smtpToDSN(r.code)), "%s", r.first())
	case r.code == 501:
		return status.New(501, r.enhancedOr("5.5.2"), "Data format error")
	case r.code == 553:
		return status.New(501, r.enhancedOr("5.1.3"), "Data format error")
	case r.code == 552:
		return status.New(554, r.enhancedOr("5.3.4"), "Service unavailable")
	case r.code/100 == 5:
		return status.New(554, r.enhancedOr("5.0.0"), "Service unavailable")
	}
	return status.New(554, r.enhancedOr("5.5.1"), "Remote protocol error")
}

// dataFailure classifies a failed reply to DATA or to the final dot.
func dataFailure(r *reply) *status.Error {
	switch {
	case r.code/100 == 4:
		return status.New(r.code, r.enhancedOr(smtpToDSN(r.code)), "%s", r.first())
	case r.code/100 == 5:
		return status.New(554, r.enhancedOr(smtpToDSN(r.code)), "Service unavailable")
	}
	return status.New(554, r.enhancedOr("5.5.1"), "Remote protocol error")
}

// smtpToDSN is sendmail's smtptodsn: the enhanced code of a reply without one.
func smtpToDSN(code int) string {
	switch code {
	case 421:
		return "4.4.2"
	case 450:
		return "4.2.0"
	case 451:
		return "4.3.0"
	case 452:
		return "4.3.1"
	case 500:
		return "5.5.2"
	case 501:
		return "5.5.4"
	case 502, 503:
		return "5.5.1"
	case 504:
		return "5.5.4"
	case 550:
		return "5.2.0"
	case 551:
		return "5.1.6"
	case 552:
		return "5.2.2"
	case 553:
		return "5.1.0"
	case 554:
		return "5.0.0"
	}
	switch code / 100 {
	case 2:
		return "2.0.0"
	case 4:
		return "4.0.0"
	}
	return "5.0.0"
}

// relayName is the log's relay= for a host and the address connected to.
func relayName(name string, ap string) string {
	if ap == "" {
		return name
	}
	return name + " [" + ap + "]"
}

// addrText is an address as sendmail's anynet_ntoa shows it.
func addrText(a fmt.Stringer, is6 bool) string {
	if is6 {
		return "IPv6:" + a.String()
	}
	return a.String()
}

// portText is " port N" for a non-default port in "Connecting to" lines.
func portText(port int) string {
	if port == 25 {
		return ""
	}
	return " port " + strconv.Itoa(port)
}

// hostKey is the host status key of a shown name ("mx.example." ->
// "mx.example").
func hostKey(name string) string { return strings.ToLower(strings.TrimSuffix(name, ".")) }
