// Package status is the one error type that carries SMTP meaning through
// posthorn: a reply code (RFC 5321), an enhanced status code (RFC 3463) and
// sendmail's wording. It is built where a failure is understood (a policy
// check, a mailbox write, a remote reply) and read with errors.As where the
// answer is written: an SMTP reply, a DSN's Status/Diagnostic-Code, a
// "stat=" log field, or a sysexits code for the command line.
package status

import (
	"errors"
	"fmt"

	"github.com/posthorn/posthorn/internal/sysexits"
)

// Error is a failure with its SMTP reply.
type Error struct {
	Code     int    // three-digit SMTP reply code: 4xx temporary, 5xx permanent
	Enhanced string // RFC 3463 code such as "5.1.1"; empty when none applies
	Text     string // sendmail's wording, e.g. "<bob@x>... User unknown"
	// More are the further lines of a multi-line reply (a mail filter's
	// smfi_setmlreply), sent after Text with the same codes.
	More []string
	Err  error // the underlying cause, if any (not shown to clients)
}

// New returns an Error with a formatted text.
func New(code int, enhanced, format string, args ...any) *Error {
	return &Error{Code: code, Enhanced: enhanced, Text: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error whose cause is err.
func Wrap(err error, code int, enhanced, format string, args ...any) *Error {
	e := New(code, enhanced, format, args...)
	e.Err = err
	return e
}

// Error renders the reply line as it is sent: "550 5.1.1 text".
func (e *Error) Error() string {
	if e.Enhanced == "" {
		return fmt.Sprintf("%d %s", e.Code, e.Text)
	}
	return fmt.Sprintf("%d %s %s", e.Code, e.Enhanced, e.Text)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the failure may go away on a later try.
func (e *Error) Temporary() bool { return e.Code/100 == 4 }

// Exit maps the failure to the sysexits code that sendmail's command line and
// mail.local use for it.
func (e *Error) Exit() int {
	switch {
	case e.Temporary():
		return sysexits.TempFail
	case e.Enhanced == "5.1.1":
		return sysexits.NoUser
	case e.Enhanced == "5.1.2":
		return sysexits.NoHost
	case len(e.Enhanced) > 2 && e.Enhanced[:3] == "5.7":
		return sysexits.NoPerm
	default:
		return sysexits.Unavailable
	}
}

// From extracts the Error carried by err. An error without SMTP meaning is
// treated as a local temporary failure, because giving up on mail for an
// unexplained reason is worse than trying again.
func From(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: 451, Enhanced: "4.3.0", Text: err.Error(), Err: err}
}
