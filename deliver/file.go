package deliver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/status"
)

// Owner is whose authority a /file or |program target carries (sendmail's
// controlling user).
type Owner struct {
	// User the target runs as. nil: the target comes from the aliases file
	// and runs as Options.DefaultUser.
	User *User
	// Restricted marks a target from a ~/.forward (or a user's :include:
	// file): its programs must be in Options.SmrshDirectory.
	Restricted bool
}

// File appends m in mbox format to the file at path (an absolute path, as
// named in the aliases file or a ~/.forward), with the mailbox locking and
// rollback, as the owner's user. A missing file is created with
// Options.FileMode, owned by that user. /dev/null takes the message and
// discards it. The error is a *status.Error.
func (a *Agent) File(ctx context.Context, path string, o Owner, m *Message) error {
	if !filepath.IsAbs(path) {
		return status.New(554, "5.3.0", "%s... file name must be an absolute path", path)
	}
	if filepath.Clean(path) == "/dev/null" {
		return nil
	}
	u, err := a.runAs(o, m.QueueID)
	if err != nil {
		return err
	}
	t := m.when(a.opt.Now)
	if !a.root || u.UID == a.euid {
		return appendPath(ctx, a.opt.SafeFileEnvironment, path, uint32(a.opt.FileMode), a.lockConfig(m.QueueID),
			func(w io.Writer) error {
				return render(w, a.fromLine(m.Sender, t), m.Header, m.bodyReader(), mboxFormat)
			})
	}
	err = a.fileInChild(ctx, path, u, t, m)
	if err != nil {
		a.opt.Logger.Errf(m.QueueID, "%s... %s (as uid %d)", path, status.From(err).Text, u.UID)
	}
	return err
}

// runAs returns the user a target of o runs as: the owner, DefaultUser for
// the aliases file, or the current user when posthorn is not root.
func (a *Agent) runAs(o Owner, qid string) (*User, error) {
	switch {
	case !a.root:
		home := "/"
		if o.User != nil && o.User.Home != "" {
			home = o.User.Home
		}
		return &User{UID: a.euid, GID: syscall.Getegid(), Home: home}, nil
	case o.User != nil:
		return o.User, nil
	case a.defltErr != nil:
		a.opt.Logger.Errf(qid, "%v", a.defltErr)
		return nil, status.Wrap(a.defltErr, 451, "4.3.5", "%v", a.defltErr)
	}
	return a.deflt, nil
}

// appendPath appends to path, confined to safeEnv when it is set: the name
// is looked up inside it with RESOLVE_IN_ROOT, so neither ".." nor a symlink
// in a directory leads out. A new file gets mode.
func appendPath(ctx context.Context, safeEnv, path string, mode uint32, lc lockConfig, write func(io.Writer) error) error {
	dir, name := filepath.Split(filepath.Clean(path))
	if name == "" {
		return status.New(554, "5.3.0", "%s... not a file name", path)
	}
	display := path
	var dirfd int
	var err error
	if safeEnv == "" {
		dirfd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		rel := dir
		if root := filepath.Clean(safeEnv); strings.HasPrefix(dir, root+"/") {
			rel = strings.TrimPrefix(dir, root)
		}
		display = filepath.Join(safeEnv, rel, name)
		var rootfd int
		rootfd, err = unix.Open(safeEnv, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err == nil {
			dirfd, err = unix.Openat2(rootfd, "."+rel, &unix.OpenHow{
				Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
				Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
			})
			unix.Close(rootfd)
		}
	}
	if err != nil {
		if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.EACCES {
			return status.Wrap(err, 550, "5.0.0", "%s... Can't create output: %s", display, strerror(err))
		}
		return ioStatus(display, err)
	}
	defer unix.Close(dirfd)
	rules := appendRules{create: true, mode: mode, noExec: true, optionalDotlock: true, accessPermanent: true, unsafePermanent: true}
	return appendMessage(ctx, spot{dirfd: dirfd, name: name, display: display}, rules, lc, write)
}

// fileInChild runs the append in a child process with u's credentials: the
// posthorn binary in its child mode (see RunChild), the message on its
// standard input, the result as one status line on its standard output.
func (a *Agent) fileInChild(ctx context.Context, path string, u *User, t time.Time, m *Message) error {
	if len(a.opt.Child) == 0 {
		return status.New(451, "4.3.0", "%s... no child program configured for file deliveries", path)
	}
	args := append(a.opt.Child[1:len(a.opt.Child):len(a.opt.Child)], childFile, path, a.opt.SafeFileEnvironment,
		strconv.FormatUint(uint64(a.opt.FileMode), 8), string(a.fromLine(m.Sender, t)),
		strconv.Itoa(len(m.Header)), strconv.FormatInt(max(m.BodySize, 0), 10),
		a.opt.LockTimeout.String(), a.opt.StaleLockAge.String())
	ctx, cancel := context.WithTimeout(ctx, a.opt.LockTimeout+a.opt.ProgramTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.opt.Child[0], args...)
	cmd.Env = []string{}
	if tz, ok := syscall.Getenv("TZ"); ok {
		cmd.Env = append(cmd.Env, "TZ="+tz)
	}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: credential(u)}
	stdin := []io.Reader{bytes.NewReader(m.Header)}
	if b := m.bodyReader(); b != nil {
		stdin = append(stdin, b)
	}
	cmd.Stdin = io.MultiReader(stdin...)
	var out, errOut limitedBuffer
	out.max, errOut.max = 4096, 4096
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	line, _, _ := strings.Cut(out.String(), "\n")
	if line == childOK && runErr == nil {
		return nil
	}
	if st := parseStatusLine(line); st != nil {
		return st
	}
	detail := strings.TrimSpace(errOut.String())
	if detail == "" && runErr != nil {
		detail = runErr.Error()
	}
	return status.Wrap(runErr, 451, "4.3.0", "%s... file delivery child failed: %s", path, detail)
}

// fromLine is the From_ line of a /file or |program delivery
// (Options.UnixFromLine).
func (a *Agent) fromLine(sender string, t time.Time) []byte {
	return UnixFromLine(a.opt.UnixFromLine, sender, t)
}

// credential is the child credential for u.
func credential(u *User) *syscall.Credential {
	c := &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}}
	for _, g := range u.Groups {
		c.Groups = append(c.Groups, uint32(g))
	}
	return c
}

// parseStatusLine reads "451 4.3.0 text" as written by the child.
func parseStatusLine(line string) *status.Error {
	codeStr, rest, ok := strings.Cut(line, " ")
	code, err := strconv.Atoi(codeStr)
	if !ok || err != nil || code < 400 || code > 599 {
		return nil
	}
	enh, text, _ := strings.Cut(rest, " ")
	return &status.Error{Code: code, Enhanced: enh, Text: text}
}

// limitedBuffer keeps the first max bytes written to it and drops the rest,
// so a chatty program cannot fill memory.
type limitedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *limitedBuffer) String() string { return b.buf.String() }

// formatStatus is the child's answer line for err.
func formatStatus(err error) string {
	st := status.From(err)
	return fmt.Sprintf("%d %s %s", st.Code, st.Enhanced, strings.ReplaceAll(st.Text, "\n", " "))
}
