package accept

import (
	"errors"
	"syscall"

	"github.com/posthorn/posthorn/internal/status"
)

// writeError is the reply for a failure to write the queue files: a full
// file system or quota (at any step: the df, the tf, the sync, the
// rename) is "452 4.3.1 Insufficient disk space; try again later", as
// RFC 3463's "mail system full"; anything else is a temporary system
// failure. Both are temporary: the client keeps the message.
func writeError(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return status.Wrap(err, 452, "4.3.1", "Insufficient disk space; try again later")
	}
	return status.Wrap(err, 451, "4.3.0", "Temporary failure: cannot write queue file")
}
