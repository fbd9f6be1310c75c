package deliver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/posthorn/posthorn/internal/status"
)

// ProgramError is the cause (status.Error.Err) of a failed |program: how it
// ended and what it printed on standard output and standard error.
type ProgramError struct {
	Command  string
	ExitCode int    // -1 when it was killed by a signal
	Output   []byte // the first 4 KiB of its output
}

func (e *ProgramError) Error() string {
	return fmt.Sprintf("%s: exit %d: %s", e.Command, e.ExitCode, oneLine(e.Output))
}

// sysexitsReply is sendmail's reply for a mailer's sysexits status (its
// SysExMsg table), used for programs that exit with one of them.
var sysexitsReply = map[int]struct {
	code     int
	enhanced string
	text     string
}{
	64: {500, "5.0.0", "Bad usage"},
	65: {501, "5.6.0", "Data format error"},
	66: {550, "5.3.0", "Cannot open input"},
	67: {550, "5.1.1", "User unknown"},
	68: {550, "5.1.2", "Host unknown"},
	69: {554, "5.0.0", "Service unavailable"},
	70: {554, "5.3.0", "Internal error"},
	71: {451, "4.0.0", "Operating system error"},
	72: {554, "5.3.5", "System file missing"},
	73: {550, "5.0.0", "Can't create output"},
	74: {451, "4.0.0", "I/O error"},
	75: {450, "4.0.0", "Deferred"},
	76: {554, "5.5.0", "Remote protocol error"},
	77: {550, "5.0.0", "Insufficient permission"},
	78: {554, "5.3.5", "Local configuration error"},
}

// Program pipes m (From_ line, header, body; no quoting) into command, as
// sendmail's prog mailer does. command is the text after "|" (a leading "|"
// is accepted too). It runs as o's user, in that user's home directory (or
// "/"), in its own session, with only the environment AGENT=sendmail, TZ
// (when posthorn has one) and Options.ProgramEnv; nothing of posthorn's own
// environment passes. A command without shell syntax is executed directly;
// one with it (or with a program name that is not an absolute path) runs as
// /bin/sh -c command. Restricted owners may only run programs from
// Options.SmrshDirectory, by smrsh's rules (see smrshRewrite), and get
// PATH=/bin:/usr/bin as smrsh gives; their command cannot add variables.
//
// Exit 0 is success; 75 (and the other temporary sysexits codes) defer;
// any other status fails permanently with "unknown mailer error N" (or
// sendmail's text for a sysexits code) followed by the program's output.
// At Options.ProgramTimeout the process group is killed and the delivery
// deferred. The error is a *status.Error whose Err is a *ProgramError.
func (a *Agent) Program(ctx context.Context, command string, o Owner, m *Message) error {
	command = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(command), "|"))
	shown := `"|` + command + `"`
	if command == "" {
		return status.New(554, "5.3.0", "%s... empty program", shown)
	}
	env := []string{"AGENT=sendmail"}
	if tz, ok := syscall.Getenv("TZ"); ok {
		env = append(env, "TZ="+tz)
	}
	env = append(env, a.opt.ProgramEnv...)
	if o.Restricted && a.opt.SmrshDirectory != "none" {
		rewritten, err := smrshRewrite(command, a.opt.SmrshDirectory)
		if err != nil {
			a.opt.Logger.Errf(m.QueueID, "%s... %v", shown, err)
			return status.Wrap(err, 554, "5.0.0", "%s... Service unavailable: %v", shown, err)
		}
		command = rewritten
		env = append(env, "PATH=/bin:/usr/bin") // what smrsh gives its programs
	}
	argv := []string{"/bin/sh", "-c", command}
	if !needsShell(command) {
		argv = strings.Fields(command)
	}
	u, err := a.runAs(o, m.QueueID)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, a.opt.ProgramTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	cmd.Dir = "/"
	if u.Home != "" {
		if fi, err := os.Stat(u.Home); err == nil && fi.IsDir() && (!a.root || canEnter(fi, u)) {
			cmd.Dir = u.Home
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if a.root {
		cmd.SysProcAttr.Credential = credential(u)
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out limitedBuffer
	out.max = 4096
	cmd.Stdout, cmd.Stderr = &out, &out

	pr, pw := io.Pipe()
	cmd.Stdin = pr
	t := m.when(a.opt.Now)
	renderErr := make(chan error, 1)
	go func() {
		err := render(pw, a.fromLine(m.Sender, t), m.Header, m.bodyReader(), programFormat)
		pw.CloseWithError(err)
		renderErr <- err
	}()
	runErr := cmd.Run()
	pr.CloseWithError(io.ErrClosedPipe) // a program that stopped reading ends the writer
	rerr := <-renderErr

	pe := &ProgramError{Command: command, Output: []byte(out.String())}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		pe.ExitCode = -1
		a.opt.Logger.Warnf(m.QueueID, "%s... killed after %s", shown, a.opt.ProgramTimeout)
		return status.Wrap(pe, 451, "4.4.1", "%s... program timed out after %s%s", shown, a.opt.ProgramTimeout, outputSuffix(pe.Output))
	case errors.As(runErr, &exitErr):
		pe.ExitCode = exitErr.ExitCode()
		return programStatus(shown, pe)
	case errors.Is(runErr, fs.ErrNotExist) || errors.Is(runErr, fs.ErrPermission):
		// What "sh -c" would have said with exit 127 or 126.
		pe.ExitCode = 127
		return status.Wrap(pe, 554, "5.3.0", "%s... cannot run program: %v", shown, runErr)
	case runErr != nil:
		return status.Wrap(runErr, 451, "4.0.0", "%s... cannot run program: %v", shown, runErr)
	case rerr != nil && !errors.Is(rerr, io.ErrClosedPipe):
		return status.Wrap(rerr, 451, "4.3.0", "%s... cannot read message: %v", shown, rerr)
	}
	return nil
}

// programStatus maps a program's non-zero exit to sendmail's reply.
func programStatus(shown string, pe *ProgramError) *status.Error {
	if pe.ExitCode < 0 {
		return status.Wrap(pe, 451, "4.0.0", "%s... program killed by a signal%s", shown, outputSuffix(pe.Output))
	}
	if r, ok := sysexitsReply[pe.ExitCode]; ok {
		return status.Wrap(pe, r.code, r.enhanced, "%s... %s%s", shown, r.text, outputSuffix(pe.Output))
	}
	return status.Wrap(pe, 554, "5.3.0", "%s... unknown mailer error %d%s", shown, pe.ExitCode, outputSuffix(pe.Output))
}

// outputSuffix shows a program's output on the status line: ": " and its
// lines joined with "; ", at most 512 bytes.
func outputSuffix(out []byte) string {
	s := oneLine(out)
	if s == "" {
		return ""
	}
	if len(s) > 512 {
		s = s[:512] + "..."
	}
	return ": " + s
}

func oneLine(out []byte) string {
	var parts []string
	for l := range strings.SplitSeq(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

// needsShell reports whether command uses anything beyond plain words
// separated by blanks, or names its program without an absolute path (the
// shell's search then finds it, as for sendmail's "sh -c").
func needsShell(command string) bool {
	for i := 0; i < len(command); i++ {
		c := command[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-_./,:@+%= \t", c) >= 0:
		default:
			return true
		}
	}
	f := strings.Fields(command)
	return len(f) == 0 || !strings.HasPrefix(f[0], "/") || strings.Contains(f[0], "=")
}

// canEnter reports whether u may enter the directory fi describes: a home
// the user cannot enter is no working directory, and sendmail then runs
// the program in / rather than failing it.
func canEnter(fi os.FileInfo, u *User) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	mode := fi.Mode().Perm()
	switch {
	case u.UID == 0:
		return true
	case int(st.Uid) == u.UID:
		return mode&0o100 != 0
	case int(st.Gid) == u.GID || slices.Contains(u.Groups, int(st.Gid)):
		return mode&0o010 != 0
	}
	return mode&0o001 != 0
}
