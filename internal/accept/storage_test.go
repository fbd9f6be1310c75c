package accept

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/posthorn/posthorn/internal/status"
)

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "write", Path: "dfX", Err: syscall.ENOSPC}, "452 4.3.1 Insufficient disk space; try again later"},
		{fmt.Errorf("queue: sync: %w", syscall.ENOSPC), "452 4.3.1 Insufficient disk space; try again later"},
		{&os.LinkError{Op: "rename", Old: "tfX", New: "qfX", Err: syscall.EDQUOT}, "452 4.3.1 Insufficient disk space; try again later"},
		{&os.PathError{Op: "write", Path: "tfX", Err: syscall.EIO}, "451 4.3.0 Temporary failure: cannot write queue file"},
		{errors.New("queue: store closed"), "451 4.3.0 Temporary failure: cannot write queue file"},
	} {
		if got := status.From(writeError(tc.err)).Error(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}
