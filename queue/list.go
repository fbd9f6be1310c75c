package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// ListOptions are the knobs of the mailq listing.
type ListOptions struct {
	Verbose     bool           // -v: priority column, "+" mark, controlling users
	Location    *time.Location // time zone of the Q-Time column (nil = time.Local)
	Now         time.Time      // for the "-" (too young) mark; zero = the store's clock
	MinQueueAge time.Duration  // MinQueueAge option, for the "-" mark
	MaxQueueRun int            // MaxQueueRun option: list at most this many per directory
	// ShouldQueue, when set, says whether the load is too high to run a
	// job now (the "X" mark).
	ShouldQueue func(priority int64, created time.Time) bool
	// Lost lists the Qf files (sendmail -qL -bp), marked "?".
	Lost bool
	// Quarantined lists only the jobs a mail filter quarantined
	// (mailq -qQ); without it every job is listed, quarantined ones
	// with their "QUARANTINE:" line.
	Quarantined bool
	// Filter is mailq's -qI/-qR/-qS limits: only the jobs it matches
	// are listed and counted, as sendmail's gatherq selects them.
	Filter Filter
}

// List writes sendmail's mailq / -bp listing of every queue directory to w
// and returns the number of jobs. A directory that cannot be read is shown
// as empty and its error returned (for stderr) after the whole listing. Each control file is read once (up to its
// headers) and probed with a shared flock; df sizes come from stat.
func (s *Store) List(w io.Writer, o ListOptions) (int, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	if o.Location == nil {
		o.Location = time.Local
	}
	if o.Now.IsZero() {
		o.Now = s.now()
	}
	letter := byte('q')
	if o.Lost {
		letter = 'Q'
	}
	total := 0
	var firstErr error
	for _, d := range s.dirs {
		entries, err := s.scan(d, letter, true, true, nil)
		if err != nil {
			// sendmail reports the directory as empty on stdout and the
			// error (gatherq: cannot open) on stderr: the caller's part.
			bw.WriteString(d.path + " is empty\n")
			if firstErr == nil {
				firstErr = fmt.Errorf("gatherq: cannot open %q: %w", d.path, err)
			}
			continue
		}
		entries = selected(entries, d.path, o)
		total += len(entries)
		writeQueue(bw, d.path, entries, o)
	}
	bw.WriteString("\t\tTotal requests: " + strconv.Itoa(total) + "\n")
	if err := bw.Flush(); err != nil {
		return total, err
	}
	return total, firstErr
}

// selected keeps the entries the listing shows: with -qQ only the
// quarantined jobs, with -qI/-qR/-qS only those the limits match. Once
// there is a selection, a job whose qf could not be read has nothing to
// match and is left out.
func selected(entries []scanned, dir string, o ListOptions) []scanned {
	if !o.Quarantined && o.Filter.Empty() {
		return entries
	}
	out := entries[:0]
	for _, e := range entries {
		if e.job == nil || (o.Quarantined && e.job.Quarantine == "") {
			continue
		}
		if !o.Filter.Empty() {
			if entry := EntryOf(dir, e.job); !o.Filter.Match(&entry) {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

// priority for sorting: a job whose P line could not be read sorts last,
// as sendmail treats jobs still being created.
func (e *scanned) priority() int64 {
	if e.job == nil || e.job.seen&seenBit('P') == 0 {
		return 0x7fffffff
	}
	return e.job.Priority
}

func writeQueue(w *bufio.Writer, path string, entries []scanned, o ListOptions) {
	if len(entries) == 0 {
		w.WriteString(path + " is empty\n")
		return
	}
	sort.Slice(entries, func(a, b int) bool {
		pa, pb := entries[a].priority(), entries[b].priority()
		if pa != pb {
			return pa < pb
		}
		return entries[a].id < entries[b].id
	})
	n := len(entries)
	w.WriteString("\t\t" + path + " (" + strconv.Itoa(n) + " request")
	if n != 1 {
		w.WriteByte('s')
	}
	if o.MaxQueueRun > 0 && n > o.MaxQueueRun {
		w.WriteString(", only " + strconv.Itoa(o.MaxQueueRun) + " printed")
		entries = entries[:o.MaxQueueRun]
	}
	if o.Verbose {
		w.WriteString(")\n-----Q-ID----- --Size-- -Priority- ---Q-Time--- --------Sender/Recipient--------\n")
	} else {
		w.WriteString(")\n-----Q-ID----- --Size-- -----Q-Time----- ------------Sender/Recipient-----------\n")
	}
	sched := Schedule{MinQueueAge: o.MinQueueAge}
	for i := range entries {
		writeEntry(w, &entries[i], o, sched)
	}
}

func writeEntry(w *bufio.Writer, e *scanned, o ListOptions, sched Schedule) {
	pad(w, e.id, 13)
	if e.openErr != nil {
		switch {
		case errors.Is(e.openErr, unix.ENOENT):
			w.WriteString(" (job completed)\n")
		case errors.Is(e.openErr, unix.EPERM):
			w.WriteString(" (permission denied)\n")
		default:
			w.WriteString(" (" + capitalError(e.openErr) + ")\n")
		}
		return
	}
	j := e.job
	switch {
	case e.locked:
		w.WriteByte('*')
	case o.Lost:
		w.WriteByte('?')
	case sched.TooYoung(AttemptOf(j), o.Now):
		w.WriteByte('-')
	case o.ShouldQueue != nil && o.ShouldQueue(j.Priority, j.Created):
		w.WriteByte('X')
	default:
		w.WriteByte(' ')
	}
	statmsg := j.Message
	if j.seen&seenBit('S') != 0 {
		created := time.Unix(epoch(j.Created), 0).In(o.Location)
		if o.Verbose {
			pad(w, strconv.FormatInt(e.dfSize, 10), 8)
			w.WriteByte(' ')
			pad(w, strconv.FormatInt(j.Priority, 10), 10)
			if j.HasFlag(FlagWarned) {
				w.WriteByte('+')
			} else {
				w.WriteByte(' ')
			}
			w.WriteString(created.Format("Jan _2 15:04") + " ")
			prtstr(w, j.Sender, 78)
		} else {
			pad(w, strconv.FormatInt(e.dfSize, 10), 8)
			w.WriteString(" " + created.Format("Mon Jan _2 15:04") + " ")
			prtstr(w, j.Sender, 39)
		}
		limit := 60
		if o.Verbose {
			limit = 100
		}
		if j.Quarantine != "" {
			w.WriteString("\n     QUARANTINE: " + trunc(j.Quarantine, limit))
		}
		if statmsg != "" || j.BodyType != "" {
			w.WriteString("\n    ")
			pad(w, trunc(j.BodyType, 10), 10)
			if statmsg != "" {
				w.WriteString("   (" + trunc(statmsg, limit) + ")")
			}
			statmsg = ""
		}
	}
	ctl := ""
	for i := range j.Recipients {
		r := &j.Recipients[i]
		if r.Ctl != ctl {
			ctl = r.Ctl
			if o.Verbose {
				w.WriteString("\n\t\t\t\t\t\t(---" + trunc(r.Ctl, 64) + "---)")
			}
		}
		if r.Message != "" {
			statmsg = r.Message
		}
		if o.Verbose {
			w.WriteString("\n\t\t\t\t\t\t")
			prtstr(w, r.Addr, 71)
			if statmsg != "" {
				w.WriteString("\n\t\t (" + trunc(statmsg, 100) + ")")
				statmsg = ""
			}
		} else {
			w.WriteString("\n\t\t\t\t\t ")
			prtstr(w, r.Addr, 38)
		}
	}
	if j.seen&seenBit('T') == 0 || epoch(j.Created) == 0 {
		w.WriteString(" (no control file)")
	}
	w.WriteByte('\n')
}

// pad writes s right-aligned in width columns (printf "%*s").
func pad(w *bufio.Writer, s string, width int) {
	for i := len(s); i < width; i++ {
		w.WriteByte(' ')
	}
	w.WriteString(s)
}

// trunc is printf's "%.*s": at most n bytes.
func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// prtstr writes at most ml columns of s as sendmail's mailq does:
// backslashes doubled, unprintable bytes as \ooo.
func prtstr(w *bufio.Writer, s string, ml int) {
	for i := 0; i < len(s) && ml > 0; i++ {
		ml--
		c := s[i]
		switch {
		case c == '\\':
			if ml > 0 {
				ml--
				w.WriteString(`\\`)
			}
		case c >= 0x20 && c < 0x7f:
			w.WriteByte(c)
		default:
			ml -= 3
			if ml > 0 {
				w.WriteByte('\\')
				w.WriteByte('0' + c>>6)
				w.WriteByte('0' + (c>>3)&7)
				w.WriteByte('0' + c&7)
			}
		}
	}
}

// capitalError renders an errno as strerror does ("Permission denied").
func capitalError(err error) string {
	var en unix.Errno
	if errors.As(err, &en) {
		s := en.Error()
		if s != "" && s[0] >= 'a' && s[0] <= 'z' {
			return string(s[0]-'a'+'A') + s[1:]
		}
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
