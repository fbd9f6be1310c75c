package accept

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/posthorn/posthorn/internal/status"
)

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&os.PathError{Op: "write", Path: "dfX", Err: syscall.ENOSPC}, "452 4.3.1 Insufficient system storage"},
		{fmt.Errorf("queue: sync: %w", syscall.ENOSPC), "452 4.3.1 Insufficient system storage"},
		{&os.LinkError{Op: "rename", Old: "tfX", New: "qfX", Err: syscall.EDQUOT}, "452 4.3.1 Insufficient system storage"},
		{&os.PathError{Op: "write", Path: "tfX", Err: syscall.EIO}, "451 4.3.0 Temporary failure: cannot write queue file"},
		{errors.New("queue: store closed"), "451 4.3.0 Temporary failure: cannot write queue file"},
	} {
		if got := status.From(writeError(tc.err)).Error(); got != tc.want {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

// TestNULInHeaderDropped: sendmail's collect drops NUL bytes from header
// lines; the body keeps them.
func TestNULInHeaderDropped(t *testing.T) {
	a, dir := newAcceptor(t, nil)
	_, id := accept(t, a, &Envelope{Sender: "<a@b>", Recipients: []Recipient{{Addr: "<c@d>"}}},
		"Subject: a\x00b\r\nX-Long: one\r\n\ttwo\x00\r\n\r\nbody\x00nul\r\n", false)
	qf, err := os.ReadFile(filepath.Join(dir, "qf"+id))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.IndexByte(qf, 0) >= 0 || !bytes.Contains(qf, []byte("\nH??Subject: ab\n")) || !bytes.Contains(qf, []byte("\nH??X-Long: one\n\ttwo\n")) {
		t.Errorf("qf:\n%q", qf)
	}
	df, _ := os.ReadFile(filepath.Join(dir, "df"+id))
	if string(df) != "body\x00nul\n" {
		t.Errorf("df %q", df)
	}
}
