package deliver

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/sysexits"
)

// ChildFlag, as the first argument of the posthorn binary, selects the
// hidden child mode in which a file delivery runs with another user's
// credentials. cmd/sendmail checks for it before anything else:
//
//	if len(os.Args) > 1 && os.Args[1] == deliver.ChildFlag {
//		os.Exit(deliver.RunChild(os.Args[2:], os.Stdin, os.Stdout))
//	}
//
// The mode grants nothing: the child runs with the credentials it was
// started with, and refuses to run in a set-user-ID process.
const ChildFlag = "--posthorn-deliver-child"

// The child's protocol. Arguments (after ChildFlag):
//
//	file <path> <SafeFileEnvironment> <mode, octal> <From_ line>
//	     <header bytes> <body bytes> <lock timeout> <stale lock age>
//
// Standard input carries exactly <header bytes> of header then <body bytes>
// of body; fewer is a failure and nothing is kept. Standard output gets one
// line: "OK", or "<code> <enhanced> <text>"; the exit status is 0 or the
// sysexits code of the failure.
const (
	childFile = "file"
	childOK   = "OK"
)

// RunChild is the child mode's main function. It returns the exit status.
func RunChild(args []string, stdin io.Reader, stdout io.Writer) int {
	if os.Getuid() != os.Geteuid() || os.Getgid() != os.Getegid() {
		fmt.Fprintln(stdout, "554 5.3.0 child mode refused in a set-user-ID process")
		return sysexits.NoPerm
	}
	err := runChild(args, stdin)
	if err != nil {
		fmt.Fprintln(stdout, formatStatus(err))
		return status.From(err).Exit()
	}
	fmt.Fprintln(stdout, childOK)
	return sysexits.OK
}

func runChild(args []string, stdin io.Reader) error {
	if len(args) != 9 || args[0] != childFile {
		return status.New(554, "5.3.0", "child mode: bad arguments %q", args)
	}
	path, safeEnv, from := args[1], args[2], args[4]
	mode, err1 := strconv.ParseUint(args[3], 8, 32)
	hlen, err3 := strconv.Atoi(args[5])
	blen, err4 := strconv.ParseInt(args[6], 10, 64)
	lockTimeout, err5 := time.ParseDuration(args[7])
	stale, err6 := time.ParseDuration(args[8])
	if !strings.HasSuffix(from, "\n") || strings.Count(from, "\n") != 1 {
		return status.New(554, "5.3.0", "child mode: bad From_ line %q", from)
	}
	for _, err := range []error{err1, err3, err4, err5, err6} {
		if err != nil {
			return status.New(554, "5.3.0", "child mode: bad arguments: %v", err)
		}
	}
	header := make([]byte, hlen)
	if _, err := io.ReadFull(stdin, header); err != nil {
		return status.Wrap(err, 451, "4.3.0", "%s... message truncated in transfer", path)
	}
	var body io.Reader
	if blen > 0 {
		body = &exactReader{r: stdin, n: blen}
	}
	lc := lockConfig{timeout: lockTimeout, stale: stale, now: time.Now}
	return appendPath(context.Background(), safeEnv, path, uint32(mode), lc, func(w io.Writer) error {
		return render(w, []byte(from), header, body, mboxFormat)
	})
}

// exactReader reads exactly n bytes from r: an early end of input is an
// error, so a parent that died mid-message leaves no partial message.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.n {
		p = p[:e.n]
	}
	n, err := e.r.Read(p)
	e.n -= int64(n)
	if err == io.EOF {
		if e.n > 0 {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	return n, err
}
