package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Locked is a job held with an exclusive flock on its qf: no other runner
// or process works on it until Unlock, Remove or Lose. Not safe for
// concurrent use by several goroutines.
type Locked struct {
	s   *Store
	dir *queueDir
	id  string
	f   *os.File // the open, locked qf
	job *Job
	// data are the df readers handed out by OpenData; they are closed
	// before the job is released (see Data).
	data []*Data
}

// Lock try-locks job id in queue directory dir (a path from Dirs or an
// index Entry) and reads it. It never waits: ErrLocked means another runner
// has it, ErrNotFound that it is gone (delivered meanwhile). A qf that
// cannot be read is renamed to Qf, logged, and reported with an error
// matching ErrCorrupt.
func (s *Store) Lock(dir, id string) (*Locked, error) {
	d, err := s.dir(dir)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(d.qf, "qf"+id)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return s.hold(d, id, f)
}

// Adopt is Lock for a job whose qf this process inherited open and locked
// (Locked.Detach in the parent, passed through exec.Cmd.ExtraFiles): it
// takes the job over without looking for it in the directory. f must be
// the current qf of job id in queue directory dir; it is closed on error.
func (s *Store) Adopt(dir, id string, f *os.File) (*Locked, error) {
	d, err := s.dir(dir)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s.hold(d, id, f)
}

// hold locks f, the open qf of job id in d (an flock already held through
// the same open file is kept), checks that it is still the job's qf and
// reads it. f is closed on error.
func (s *Store) hold(d *queueDir, id string, f *os.File) (*Locked, error) {
	if s.readOnly {
		// A held job may be lost, removed or rewritten.
		f.Close()
		return nil, ErrReadOnly
	}
	p := filepath.Join(d.qf, "qf"+id)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("queue: lock %s: %w", p, err)
	}
	// Between our open and our lock, the holder may have renamed a new
	// qf over this one and released the old: then we hold a dead file.
	var held, now unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &held); err != nil || held.Nlink == 0 {
		f.Close()
		return nil, ErrNotFound
	}
	if err := unix.Stat(p, &now); err != nil {
		f.Close()
		return nil, ErrNotFound
	}
	if held.Ino != now.Ino || held.Dev != now.Dev {
		f.Close()
		return nil, ErrLocked
	}
	// From the start whatever the file offset: an inherited descriptor
	// shares its offset with the parent's, which wrote the file.
	data, err := io.ReadAll(io.NewSectionReader(f, 0, held.Size+1))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("queue: read %s: %w", p, err)
	}
	l := &Locked{s: s, dir: d, id: id, f: f}
	if len(data) == 0 {
		// sendmail's readqf: an empty qf is junk; gone if also old.
		if time.Duration(s.now().Unix()-held.Ctim.Sec)*time.Second > 10*time.Minute {
			l.Remove()
			return nil, ErrNotFound
		}
		l.Unlock()
		return nil, ErrLocked
	}
	j, err := Parse(id, data)
	if err != nil {
		why := err.Error()
		if lerr := l.Lose(why); lerr != nil {
			return nil, fmt.Errorf("%w: %s: %s (and %v)", ErrCorrupt, p, why, lerr)
		}
		return nil, fmt.Errorf("%w: %s: %s", ErrCorrupt, p, why)
	}
	l.job = j
	return l, nil
}

// ID is the job's queue ID.
func (l *Locked) ID() string { return l.id }

// Dir is the job's queue directory.
func (l *Locked) Dir() string { return l.dir.path }

// Job is the control file as read when locking (or as last rewritten).
func (l *Locked) Job() *Job { return l.job }

// dataPath is the path of the job's df.
func (l *Locked) dataPath() string {
	dataDir := ""
	if l.job != nil {
		dataDir = l.job.DataDir
	}
	return l.s.dataPath(l.dir, dataDir, l.id)
}

// OpenData opens the df for reading. It reads only while the job is held:
// Unlock, Remove, Lose and Detach close it (see Data).
func (l *Locked) OpenData() (*Data, error) {
	if l.f == nil {
		return nil, ErrClosed
	}
	d, err := openData(l.dataPath())
	if err != nil {
		return nil, err
	}
	l.data = append(l.data, d)
	return d, nil
}

// release closes the job's df readers: from here on the job may be
// removed, and its df reused, by anyone.
func (l *Locked) release() {
	closeAll(l.data)
	l.data = nil
}

// Detach gives the job up without unlocking it: the returned qf stays
// locked while any copy of it is open, so that a process started with it
// (exec.Cmd.ExtraFiles) takes the job over with Store.Adopt and no queue
// run can pick it up in between. The caller closes its copy once the
// child has started (or failed to start: then the job simply waits for
// the next queue run).
func (l *Locked) Detach() (*os.File, error) {
	if l.f == nil {
		return nil, ErrClosed
	}
	l.release()
	f := l.f
	l.f = nil
	return f, nil
}

// Rewrite replaces the control file with j after a delivery attempt
// (recipients delivered or bounced are left out of j, K/N/P/M/F updated by
// the caller). The new file is written as a locked tf, made durable and
// renamed over the qf, so the job is locked and complete at every moment.
// The I line is set from the df, as sendmail does on rewrites.
func (l *Locked) Rewrite(j *Job) error {
	if l.f == nil {
		return ErrClosed
	}
	j.ID = l.id
	var st unix.Stat_t
	if unix.Stat(l.s.dataPath(l.dir, j.DataDir, l.id), &st) == nil {
		j.DataInode = fmt.Sprintf("%d/%d/%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	}
	tfp := filepath.Join(l.dir.qf, "tf"+l.id)
	var tf *os.File
	var spare bool
	var stale int64
	for attempt := 0; ; attempt++ {
		var err error
		tf, spare, stale, err = l.s.create(l.dir, "tf"+l.id)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || attempt >= 50 {
			return fmt.Errorf("queue: cannot create %s: %w", tfp, err)
		}
		// A tf of this ID: left by a crash (unlocked: remove it) or an
		// enqueuer that drew the same ID and is about to drop it.
		if old, oerr := os.Open(tfp); oerr == nil {
			if unix.Flock(int(old.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
				os.Remove(tfp)
			}
			old.Close()
		}
		time.Sleep(10 * time.Millisecond)
	}
	qf := Marshal(j)
	_, err := tf.Write(qf)
	if err == nil {
		err = trim(tf, stale, int64(len(qf)))
	}
	if err != nil {
		os.Remove(tfp)
		tf.Close()
		return err
	}
	r := &commitReq{dir: l.dir, tf: tf, tfp: tfp, qfp: filepath.Join(l.dir.qf, "qf"+l.id), keep: true}
	if spare {
		r.spares = []*pool{l.dir.qfPool}
	}
	if err := l.s.commit.submit(r); err != nil {
		if !r.renam {
			os.Remove(tfp)
			tf.Close()
			return err
		}
		// Renamed but maybe not durable: the new file is the job now.
		l.f.Close()
		l.f, l.job = tf, j
		return err
	}
	l.f.Close() // the old, now unlinked qf; the lock lives on in tf
	l.f, l.job = tf, j
	return nil
}

// Remove deletes a finished job: the qf first (from then on the job does
// not exist), then the df. Both go to the spare pool when it has room,
// emptied, to be reused for another job, so what OpenData returned is
// closed first (waiting for reads in progress). It releases the lock.
func (l *Locked) Remove() error {
	if l.f == nil {
		return ErrClosed
	}
	l.release()
	dataDir := ""
	if l.job != nil {
		dataDir = l.job.DataDir
	}
	// The qf name goes first, in one rename or unlink: from then on the
	// job does not exist. The lock we hold keeps takers off the file
	// until it is empty.
	d := l.dir
	err := d.qfPool.put(l.f, d.qf, "qf"+l.id)
	var derr error
	if dd, ok := l.s.byPath[dataDir]; dataDir == "" || ok {
		if ok {
			d = dd
		}
		derr = d.dfPool.putPath(d.df, "df"+l.id)
	} else {
		derr = os.Remove(l.s.dataPath(l.dir, dataDir, l.id))
	}
	if derr != nil && !errors.Is(derr, os.ErrNotExist) && err == nil {
		err = derr
	}
	l.f.Close()
	l.f = nil
	return err
}

// Lose renames the qf to Qf so that no runner tries it again, logs why,
// and releases the lock. The df stays for the admin.
func (l *Locked) Lose(why string) error {
	if l.f == nil {
		return ErrClosed
	}
	l.release()
	p := filepath.Join(l.dir.qf, "qf"+l.id)
	q := filepath.Join(l.dir.qf, "Qf"+l.id)
	err := os.Rename(p, q)
	l.s.log.Errf(l.id, "Losing %s: %s", p, why)
	l.f.Close()
	l.f = nil
	return err
}

// Unlock releases the job without changing it.
func (l *Locked) Unlock() error {
	if l.f == nil {
		return nil
	}
	l.release()
	err := l.f.Close()
	l.f = nil
	return err
}
