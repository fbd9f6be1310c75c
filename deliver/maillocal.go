package deliver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/posthorn/posthorn/internal/status"
	"github.com/posthorn/posthorn/internal/sysexits"
)

const mailLocalUsage = "usage: mail.local [-7] [-b] [-d] [-f from|-r from] user ..."

// MailLocal is the mail.local agent: "mail.local [-7] [-b] [-d] [-f from]
// user ...". args are the arguments after the program name, with -C and -O
// already taken out by the caller and applied to opt. It reads the message
// (header, empty line, body) from stdin to its end, adds a final newline if
// it lacks one, appends it to each user's mailbox and returns the exit
// status: 0, 67 (EX_NOUSER) when a user does not exist, 75 (EX_TEMPFAIL)
// when a mailbox could not be written (this wins over 67, because the
// caller must try again), 64 for bad usage. Errors go to stderr as
// mail.local words them ("mail.local: bob: User unknown").
//
// -7 and -d are accepted and ignored (no LMTP, always delivery mode); -b
// makes a full disk or quota a permanent failure, as in mail.local. LMTP
// mode (-l) is not provided: posthorn delivers in-process.
func MailLocal(args []string, stdin io.Reader, stderr io.Writer, opt Options) int {
	from, bounceFull, users, err := parseMailLocalArgs(args)
	if err != nil {
		if err.Error() != "" {
			fmt.Fprintf(stderr, "mail.local: %v\n", err)
		}
		fmt.Fprintln(stderr, mailLocalUsage)
		return sysexits.Usage
	}
	a, err := New(opt)
	if err != nil {
		fmt.Fprintf(stderr, "mail.local: %v\n", err)
		return sysexits.Config
	}
	msg, cleanup, err := spoolInput(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "mail.local: temporary file: %s\n", strerror(err))
		a.opt.Logger.Errf("", "temporary file: %s", strerror(err))
		return sysexits.TempFail
	}
	defer cleanup()
	msg.Sender = from
	msg.Time = a.opt.Now()

	exit := sysexits.OK
	for _, name := range users {
		err := a.Mailbox(context.Background(), name, msg)
		if err == nil {
			continue
		}
		st := status.From(err)
		code := st.Exit()
		if bounceFull && (st.Enhanced == "4.2.2" || st.Enhanced == "4.3.1") {
			code = sysexits.Unavailable
		}
		switch {
		case code == sysexits.NoUser:
			fmt.Fprintf(stderr, "mail.local: %s: User unknown\n", name)
		default:
			fmt.Fprintf(stderr, "mail.local: %s\n", st.Text)
			a.opt.Logger.Errf("", "%s: %s", name, st.Text)
		}
		if exit != sysexits.TempFail {
			exit = code
		}
	}
	return exit
}

// parseMailLocalArgs reads mail.local's flags (getopt style: "-ffrom" and
// "-f from" both work, flags end at the first non-flag or "--").
func parseMailLocalArgs(args []string) (from string, bounceFull bool, users []string, err error) {
	i := 0
	for ; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			i++
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			break
		}
		for j := 1; j < len(arg); j++ {
			switch c := arg[j]; c {
			case '7', 'd':
			case 'b':
				bounceFull = true
			case 'f', 'r':
				v := arg[j+1:]
				if v == "" {
					if i+1 >= len(args) {
						return "", false, nil, fmt.Errorf("option requires an argument -- %c", c)
					}
					i++
					v = args[i]
				}
				from = strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">")
				j = len(arg)
			case 'l':
				return "", false, nil, errors.New("LMTP mode (-l) is not supported")
			default:
				return "", false, nil, fmt.Errorf("illegal option -- %c", c)
			}
		}
	}
	users = args[i:]
	if len(users) == 0 {
		return "", false, nil, errors.New("")
	}
	return from, bounceFull, users, nil
}

// spoolInput copies stdin to an unlinked temporary file (as mail.local
// does), so that a message of any size is read once and can then be
// appended to several mailboxes, and splits it at the first empty line.
// Input without an empty line is all header.
func spoolInput(stdin io.Reader) (*Message, func(), error) {
	f, err := os.CreateTemp("", "local.")
	if err != nil {
		return nil, nil, err
	}
	os.Remove(f.Name())
	cleanup := func() { f.Close() }
	size, err := io.Copy(f, stdin)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	br := bufio.NewReader(io.NewSectionReader(f, 0, size))
	var header []byte
	var off int64
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			header = append(header, line...)
			off += int64(len(line))
			continue
		}
		if (string(line) == "\n" || string(line) == "\r\n") && !endsInPartialLine(header) {
			off += int64(len(line))
			break
		}
		header = append(header, line...)
		off += int64(len(line))
		if err != nil {
			break
		}
	}
	m := &Message{Header: header}
	if off < size {
		m.Body = io.NewSectionReader(f, off, size-off)
		m.BodySize = size - off
	}
	return m, cleanup, nil
}

// endsInPartialLine reports whether b ends inside a line (after a piece of a
// very long line), where a "\n" ends that line rather than the header.
func endsInPartialLine(b []byte) bool {
	return len(b) > 0 && b[len(b)-1] != '\n'
}
