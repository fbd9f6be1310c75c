package hoststat

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/posthorn/posthorn/internal/sysexits"
)

const header = " -------------- Hostname --------------- How long ago ---------Results---------\n"

// Print writes the hoststat table (see the package comment). verbose is
// -v: the Results column is 78 bytes wide instead of 25. A file that
// cannot be read is skipped and named in the returned error, as sendmail
// reports "could not read status file" and goes on.
func (t *Table) Print(w io.Writer, verbose bool) error {
	if t.dir == "" {
		return nil
	}
	width := 25
	if verbose {
		width = 78
	}
	var errs []error
	first := true
	walkErr := walk(t.dir, nil, func(path string, comps []string) {
		if first {
			io.WriteString(w, header)
			first = false
		}
		data, err := os.ReadFile(path)
		var s Status
		if err == nil {
			s, err = Parse(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: could not read status file: %w", path, err))
			return
		}
		mark := ' '
		if locked(path) {
			mark = '*'
		}
		ago := t.now().Unix() - s.Updated.Unix()
		fmt.Fprintf(w, "%c%-39s %12s %s\n", mark, hostOf(comps), interval(ago), result(s, width))
	})
	if walkErr != nil && !errors.Is(walkErr, os.ErrNotExist) {
		errs = append(errs, walkErr)
	}
	return errors.Join(errs...)
}

// result is the Results column: what the host answered or why it failed.
func result(s Status, width int) string {
	switch {
	case s.Reply != "":
		return cut(s.Reply, width)
	case s.Exit == sysexits.TempFail && s.Errno != 0:
		return "Deferred: " + cut(strerror(s.Errno), width-10)
	case s.Exit != 0:
		if m, ok := exitTexts[s.Exit]; ok {
			return cut(m, width)
		}
		return cut(fmt.Sprintf("Unknown mailer error %d", s.Exit), width)
	case s.Errno == 0:
		return "OK"
	default:
		return "OK: " + cut(strerror(s.Errno), width-4)
	}
}

// exitTexts are sendmail's sm_sysexmsg texts from the enhanced code on.
var exitTexts = map[int]string{
	sysexits.Usage:       "5.0.0 Command line usage error",
	sysexits.DataErr:     "5.6.0 Data format error",
	sysexits.NoInput:     "5.3.0 Cannot open input",
	sysexits.NoUser:      "5.1.1 User unknown",
	sysexits.NoHost:      "5.1.2 Host unknown",
	sysexits.Unavailable: "5.0.0 Service unavailable",
	sysexits.Software:    "5.3.0 Internal error",
	sysexits.OSErr:       "4.0.0 Operating system error",
	sysexits.OSFile:      "5.3.5 System file missing",
	sysexits.CantCreat:   "5.0.0 Can't create output",
	sysexits.IOErr:       "4.0.0 I/O error",
	sysexits.TempFail:    "4.0.0 Deferred",
	sysexits.Protocol:    "5.5.0 Remote protocol error",
	sysexits.NoPerm:      "5.0.0 Insufficient permission",
	sysexits.Config:      "5.3.5 Local configuration error",
}

// cut is C's "%.*s": at most n bytes.
func cut(s string, n int) string {
	if n < 0 {
		n = 0
	}
	if len(s) > n {
		return s[:n]
	}
	return s
}

// strerror is the C library's text for errno n: Go's table is glibc's
// with the first letter lowered.
func strerror(n int) string {
	s := syscall.Errno(n).Error()
	if strings.HasPrefix(s, "errno ") {
		return fmt.Sprintf("Unknown error %d", n)
	}
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		s = string(s[0]-'a'+'A') + s[1:]
	}
	return s
}

// interval is sendmail's pintvl in brief form: [D+]HH:MM:SS, computed with
// C's truncating division (a status from the future shows negative parts).
func interval(secs int64) string {
	se := secs % 60
	secs /= 60
	mi := secs % 60
	secs /= 60
	hr := secs % 24
	dy := secs / 24
	s := ""
	if dy > 0 {
		s = fmt.Sprintf("%d+", dy)
	}
	return s + fmt.Sprintf("%02d:%02d:%02d", hr, mi, se)
}

// locked reports whether another process holds a lock on the file (a
// sendmail delivering to that host with SingleThreadDelivery).
func locked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// walk calls visit for every status file below dir, in name order at
// each level, skipping dot names and anything that is neither a regular
// file nor a directory. comps is the path below dir.
func walk(dir string, comps []string, visit func(path string, comps []string)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(dir, name)
		c := append(append([]string(nil), comps...), name)
		switch {
		case e.IsDir():
			walk(path, c, visit)
		case e.Type().IsRegular():
			visit(path, c)
		}
	}
	return nil
}

// Purge is purgestat: it removes the status files and directories older
// than Timeout.hoststatus (see the package comment).
func (t *Table) Purge() error {
	if t.dir == "" {
		return nil
	}
	if _, err := os.Stat(t.dir); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	t.purge(t.dir, true)
	t.mu.Lock()
	t.mem = map[string]entry{}
	t.mu.Unlock()
	return nil
}

// purge removes what is old below and at path and reports whether
// something was left.
func (t *Table) purge(path string, top bool) (left bool) {
	fi, err := os.Lstat(path)
	if err != nil {
		return true
	}
	old := func(fi os.FileInfo) bool {
		return t.now().Unix()-fi.ModTime().Unix() > int64(t.expire.Seconds())
	}
	switch {
	case fi.IsDir():
		entries, err := os.ReadDir(path)
		if err != nil {
			return true
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				left = true
				continue
			}
			if t.purge(filepath.Join(path, e.Name()), false) {
				left = true
			}
		}
		if left || top || !strings.HasSuffix(path, ".") {
			return true
		}
		// Removing entries changed the directory: look at it again.
		if fi, err = os.Lstat(path); err != nil || !old(fi) {
			return true
		}
		return os.Remove(path) != nil
	case fi.Mode().IsRegular():
		// A locked file belongs to a connection that is open now
		// (SingleThreadDelivery): removing it would let a second
		// process lock a new file and connect too.
		if !old(fi) || locked(path) {
			return true
		}
		return os.Remove(path) != nil
	default:
		return true
	}
}
