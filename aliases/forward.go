package aliases

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/posthorn/posthorn/internal/status"
)

// ParseForward splits the content of a .forward or :include: file into
// recipient lists, one per line, with their line numbers. Empty lines and
// lines whose first non-blank character is '#' are skipped; " #@# " starts a
// comment anywhere on a line (sendmail's rule). The lists are split further
// on commas when they are expanded.
func ParseForward(data []byte) []ForwardLine {
	var out []ForwardLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), len(data)+1)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		if i := strings.Index(line, " #@# "); i >= 0 {
			line = line[:i]
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' {
			continue
		}
		out = append(out, ForwardLine{Line: n, Text: t})
	}
	return out
}

// ForwardLine is one line of a .forward or :include: file.
type ForwardLine struct {
	Line int
	Text string
}

// fileCheck is what openChecked learned about a file.
type fileCheck struct {
	data     []byte
	uid, gid int
	unsafe   string // why others could change it, "" when safe
}

// errNotFound marks a file that is not there (try the next candidate).
var errNotFound = errors.New("not found")

// openChecked reads a file without following a final symlink and checks
// it on the open descriptor: a regular file of at most limit bytes. owner,
// when >= 0, is the only uid besides root that may own the file and the
// directories above it; writability by others is reported in unsafe.
func openChecked(path string, owner int, limit int64) (*fileCheck, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("%s: not an absolute path", path)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if err == syscall.ENOENT || err == syscall.ENOTDIR {
			return nil, errNotFound
		}
		if err == syscall.ELOOP {
			return nil, errUnsafe("Symbolic links not allowed")
		}
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return nil, errUnsafe("Not a regular file")
	}
	if owner >= 0 && int(st.Uid) != owner && st.Uid != 0 {
		return nil, errUnsafe("Permission denied (owned by uid " + strconv.Itoa(int(st.Uid)) + ")")
	}
	if st.Size > limit {
		return nil, errUnsafe("File too large")
	}
	fc := &fileCheck{uid: int(st.Uid), gid: int(st.Gid)}
	switch {
	case st.Mode&0o002 != 0:
		fc.unsafe = "World writable file"
	case st.Mode&0o020 != 0:
		fc.unsafe = "Group writable file"
	default:
		fc.unsafe = unsafeDirs(filepath.Dir(path), owner)
	}
	fc.data, err = io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(fc.data)) > limit {
		return nil, errUnsafe("File too large")
	}
	return fc, nil
}

// unsafeDirs checks every directory from dir up to /: none may be writable
// by group or others, nor owned by anyone but root and owner.
func unsafeDirs(dir string, owner int) string {
	for {
		var st syscall.Stat_t
		if err := syscall.Stat(dir, &st); err != nil {
			return "Cannot stat directory " + dir
		}
		// A sticky directory owned by root (/tmp) lets nobody replace
		// another user's entry, so it does not make the path unsafe.
		if st.Mode&0o022 != 0 && (st.Mode&syscall.S_ISVTX == 0 || st.Uid != 0) {
			if st.Mode&0o002 != 0 {
				return "World writable directory " + dir
			}
			return "Group writable directory " + dir
		}
		if st.Uid != 0 && (owner < 0 || int(st.Uid) != owner) {
			return "Unsafe directory " + dir + " (owned by uid " + strconv.Itoa(int(st.Uid)) + ")"
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

type errUnsafe string

func (e errUnsafe) Error() string { return string(e) }

// transient reports whether a file error may go away (sendmail's
// transienterror), so the message is queued rather than bounced.
func transient(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EAGAIN, syscall.EINTR, syscall.EIO, syscall.ETIMEDOUT, syscall.ENFILE,
		syscall.EMFILE, syscall.ENOMEM, syscall.ESTALE, syscall.EHOSTDOWN, syscall.EHOSTUNREACH,
		syscall.ENETUNREACH, syscall.ECONNREFUSED, syscall.ECONNRESET:
		return true
	}
	return false
}

// include reads an :include: file into the send list.
func (r *run) include(n *node) {
	fc, err := openChecked(n.path, -1, r.x.opts.MaxFileSize)
	if err != nil {
		why := errText(err)
		if errors.Is(err, errNotFound) {
			why = "No such file or directory"
		}
		if transient(err) {
			r.x.opts.Logger.Errf(r.qid, "include %s: transient error: %s", n.path, why)
			r.fail(n, status.New(451, "4.2.4", "%s... Cannot open %s: %s", n.paddr, n.path, why))
			return
		}
		r.fail(n, status.New(550, "5.2.4", "%s... Cannot open %s: %s", n.paddr, n.path, why))
		return
	}
	if fc.unsafe != "" {
		// Others can change the list: its addresses are used, but no
		// program or file named in it.
		n.unsafe = true
	}
	// A list file owned by an ordinary user runs as that user, unless a
	// user (not the aliases file) already controls it.
	if c := n.ctl(); fc.uid != 0 && (c == nil || c.isAlias) {
		n.goodUID, n.uid, n.gid = true, fc.uid, fc.gid
		if u, err := r.x.opts.Users.LookupID(fc.uid); err == nil {
			n.ruser = u.Name
		}
	}
	r.readLines(n, n.path, fc.data, false)
}

// readLines hands each line of a .forward or :include: file to sendtolist,
// with messages prefixed by the file name and line number.
func (r *run) readLines(n *node, file string, data []byte, forwarding bool) int {
	saved := r.ctx
	defer func() { r.ctx = saved }()
	verb := "sending"
	if forwarding {
		verb = "forwarding"
	}
	count := 0
	for _, l := range ParseForward(data) {
		r.ctx = fmt.Sprintf("%s: line %d: ", file, l.Line)
		r.emit(verb+" to "+l.Text, true)
		count += r.sendtolist(l.Text, n, n.depth+1)
	}
	return count
}

// forward honours a local user's .forward.
func (r *run) forward(n *node) {
	u := n.local
	if u == nil || u.Home == "" || u.Home == "/" {
		return
	}
	for _, cand := range strings.Split(r.x.opts.ForwardPath, ":") {
		path := r.expandMacros(cand, u)
		if path == "" {
			continue
		}
		fc, err := openChecked(path, u.UID, r.x.opts.MaxFileSize)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err == nil && fc.unsafe != "" {
			err = errUnsafe(fc.unsafe)
		}
		if err != nil {
			var eu errUnsafe
			if transient(err) {
				r.x.opts.Logger.Errf(r.qid, "forward %s: transient error: %s", path, errText(err))
				r.fail(n, status.New(451, "4.3.0", "%s... Deferred: cannot read %s: %s", n.paddr, path, errText(err)))
				return
			}
			why := errText(err)
			if errors.As(err, &eu) {
				why = string(eu)
			}
			// sendmail's wording; the file is skipped and the next
			// ForwardPath candidate (or the mailbox) is used.
			r.x.opts.Logger.Warnf(r.qid, "forward %s: %s", path, why)
			r.emit(fmt.Sprintf("forward: %s: %s", path, why), true)
			continue
		}
		n.selfRef = false
		count := r.readLines(n, path, fc.data, true)
		if count > 0 && !n.selfRef && n.st == stOK {
			n.st = stExpanded
		}
		return
	}
}

// expandMacros expands $z (home), $u (user) and the macros in Options in a
// ForwardPath element. A path using an undefined macro is skipped.
func (r *run) expandMacros(s string, u *User) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		name := string(s[i])
		if s[i] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return ""
			}
			name = s[i+1 : i+end]
			i += end
		}
		switch name {
		case "z":
			b.WriteString(u.Home)
		case "u":
			b.WriteString(u.Name)
		default:
			v, ok := r.x.opts.Macros[name]
			if !ok {
				return ""
			}
			b.WriteString(v)
		}
	}
	return b.String()
}
