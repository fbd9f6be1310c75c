package accept

import (
	"bytes"
	"errors"
	"syscall"

	"github.com/posthorn/posthorn/internal/status"
)

// writeError is the reply for a failure to write the queue files: a full
// file system or quota (at any step: the df, the tf, the sync, the
// rename) is "452 4.3.1 Insufficient system storage", as
// RFC 3463's "mail system full"; anything else is a temporary system
// failure. Both are temporary: the client keeps the message.
func writeError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return status.Wrap(err, 452, "4.3.1", "Insufficient system storage")
	}
	return status.Wrap(err, 451, "4.3.0", "Temporary failure: cannot write queue file")
}

// headerText is a header block as the queue keeps it: LF line ends, and
// without NUL bytes, which sendmail's collect drops from header lines (a
// NUL in a qf H line would cut the field short for sendmail's own tools
// and for every program that reads it as a C string). NULs in the body
// are kept, as sendmail keeps them.
func headerText(block []byte) string {
	block = bytes.ReplaceAll(block, []byte("\r\n"), []byte("\n"))
	if bytes.IndexByte(block, 0) >= 0 {
		block = bytes.ReplaceAll(block, []byte{0}, nil)
	}
	return string(block)
}
