package queue

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// commitReq is one qf waiting to become durable: its df and tf are
// written; the committer syncs them, renames tf to qf, syncs again and then
// answers on done.
type commitReq struct {
	dir   *queueDir
	tf    *os.File // the locked tf, written
	df    *os.File // the df, written (nil when already durable, on rewrites)
	tfp   string
	qfp   string
	done  chan error
	renam bool // renamed; waiting for the second sync
	keep  bool // a rewrite: never take the renamed qf back
	// spares are the pools the tf or df was taken from. Their directories
	// must be durable without those names before the qf name is, or a
	// crash could leave one inode named both as a spare and as a job.
	// syncfs covers them; the per-file modes fsync them before renaming.
	spares []*pool
}

// committer runs the group commit in two stages that overlap. The data
// stage takes every request written since its last round, makes their df
// and tf durable with one syncfs(2) per file system (SyncBatch; in
// SyncFiles the writers have fsynced their own files already), and renames
// each tf to qf. The directory stage takes every request renamed since its
// last round, fsyncs each directory once, and answers. While one batch's
// renames are being synced, the next batch's data is.
type committer struct {
	mode SyncMode

	mu      sync.Mutex
	dataC   *sync.Cond
	dirC    *sync.Cond
	waiting []*commitReq // written, not yet synced
	renamed []*commitReq // renamed, rename not yet synced
	busy    bool         // the data stage holds a batch
	closed  bool
	wg      sync.WaitGroup
}

func newCommitter(mode SyncMode) *committer {
	c := &committer{mode: mode}
	c.dataC = sync.NewCond(&c.mu)
	c.dirC = sync.NewCond(&c.mu)
	c.wg.Add(2)
	go c.dataStage()
	go c.dirStage()
	return c
}

// submit hands r to the committer and waits for the answer.
func (c *committer) submit(r *commitReq) error {
	if err := c.presync(r); err != nil {
		return err
	}
	if c.mode == SyncEach {
		return c.each(r)
	}
	r.done = make(chan error, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.waiting = append(c.waiting, r)
	c.dataC.Signal()
	c.mu.Unlock()
	return <-r.done
}

// presync makes r's files durable in the caller's goroutine when the mode
// syncs files one by one, so that many writers' fsyncs overlap instead of
// waiting for a batch; the df and the tf are synced concurrently.
func (c *committer) presync(r *commitReq) error {
	if c.mode != SyncFiles && c.mode != SyncEach {
		return nil
	}
	var dferr error
	var wg sync.WaitGroup
	if r.df != nil {
		wg.Add(1)
		go func() { defer wg.Done(); dferr = r.df.Sync() }()
	}
	err := r.tf.Sync()
	wg.Wait()
	if err == nil {
		err = dferr
	}
	return err
}

// each finishes one request alone: rename and directory fsync.
func (c *committer) each(r *commitReq) error {
	if err := syncPools([]*commitReq{r}); err != nil {
		return err
	}
	if err := os.Rename(r.tfp, r.qfp); err != nil {
		return err
	}
	r.renam = true
	err := r.dir.qfFd.Sync()
	if err == nil && r.dir.dfFd != r.dir.qfFd {
		err = r.dir.dfFd.Sync()
	}
	if err != nil && !r.keep {
		os.Remove(r.qfp)
	}
	return err
}

func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.dataC.Broadcast()
	c.dirC.Broadcast()
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *committer) dataStage() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		for len(c.waiting) == 0 && !c.closed {
			c.dataC.Wait()
		}
		if len(c.waiting) == 0 {
			c.mu.Unlock()
			return
		}
		batch := c.waiting
		c.waiting = nil
		c.busy = true
		c.mu.Unlock()

		var err error
		switch c.mode {
		case SyncBatch:
			err = syncfsAll(batch)
		case SyncFiles:
			err = syncPools(batch)
		}
		var next []*commitReq
		for _, r := range batch {
			if err != nil {
				r.done <- err
				continue
			}
			if rerr := os.Rename(r.tfp, r.qfp); rerr != nil {
				r.done <- rerr
				continue
			}
			r.renam = true
			if c.mode == SyncNone {
				r.done <- nil
				continue
			}
			next = append(next, r)
		}
		c.mu.Lock()
		c.renamed = append(c.renamed, next...)
		c.busy = false
		c.dirC.Signal()
		c.mu.Unlock()
	}
}

func (c *committer) dirStage() {
	defer c.wg.Done()
	for {
		c.mu.Lock()
		for len(c.renamed) == 0 && !(c.closed && len(c.waiting) == 0 && !c.busy) {
			c.dirC.Wait()
		}
		if len(c.renamed) == 0 {
			c.mu.Unlock()
			return
		}
		batch := c.renamed
		c.renamed = nil
		c.mu.Unlock()

		// One fsync per directory: the qf directory for the renames, and
		// a separate df directory for the df entries.
		done := map[*os.File]error{}
		for _, r := range batch {
			for _, f := range []*os.File{r.dir.qfFd, r.dir.dfFd} {
				if _, ok := done[f]; !ok {
					done[f] = f.Sync()
				}
			}
		}
		for _, r := range batch {
			err := done[r.dir.qfFd]
			if err == nil {
				err = done[r.dir.dfFd]
			}
			if err != nil && !r.keep {
				// Not known to be durable: take the job back so that
				// the refusal the caller gives is the truth.
				os.Remove(r.qfp)
			}
			r.done <- err
		}
	}
}

// syncPools fsyncs, once each, the spare pools the batch took files from.
func syncPools(batch []*commitReq) error {
	var done map[*pool]bool
	for _, r := range batch {
		for _, p := range r.spares {
			if done[p] {
				continue
			}
			if done == nil {
				done = map[*pool]bool{}
			}
			done[p] = true
			if err := p.dir.Sync(); err != nil {
				return fmt.Errorf("queue: fsync %s: %w", p.path, err)
			}
		}
	}
	return nil
}

// syncfsAll makes all data written to the file systems of a batch durable,
// one syncfs per file system.
func syncfsAll(batch []*commitReq) error {
	done := map[uint64]bool{}
	for _, r := range batch {
		if done[r.dir.fsid] {
			continue
		}
		done[r.dir.fsid] = true
		if err := unix.Syncfs(int(r.dir.qfFd.Fd())); err != nil {
			return fmt.Errorf("queue: syncfs %s: %w", r.dir.path, err)
		}
	}
	return nil
}

// Txn is a job being enqueued. Begin reserves its queue ID by creating the
// locked tf; the body is written with Write; Commit writes the control file
// and returns once the job is durable. Until then nothing of it is visible
// to queue runners or mailq.
type Txn struct {
	s    *Store
	dir  *queueDir
	id   string
	tf   *os.File
	df   *os.File
	dfw  *bufio.Writer
	size int64
	done bool
	err  error
	// The df / tf was a spare: the commit must make the pool's loss of
	// it durable (see commitReq.spares). A spare still holds this many
	// bytes of its old contents, cut off once the new ones are written.
	dfSpare, tfSpare bool
	dfStale, tfStale int64
}

// Begin starts a new job in one of the store's directories (round robin)
// and reserves a queue ID for it. Call it at MAIL FROM: the ID goes into the
// Received and Message-Id headers.
func (s *Store) Begin() (*Txn, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	d := s.dirs[int(s.next.Add(1)-1)%len(s.dirs)]
	for attempt := 0; attempt < 100; attempt++ {
		id := s.ids.Next()
		tf, spare, stale, err := s.create(d, "tf"+id)
		if errors.Is(err, os.ErrExist) {
			continue // a tf of another process or a leftover: not ours
		}
		if err != nil {
			return nil, err
		}
		// An ID used before (same pid after a restart, same second) must
		// not overwrite the job that has it.
		if exists(filepath.Join(d.qf, "qf"+id)) || exists(filepath.Join(d.qf, "Qf"+id)) {
			os.Remove(tf.Name())
			tf.Close()
			continue
		}
		return &Txn{s: s, dir: d, id: id, tf: tf, tfSpare: spare, tfStale: stale}, nil
	}
	return nil, errors.New("queue: cannot find an unused queue ID")
}

// create makes a new locked file in d's qf directory that must not exist
// yet: a spare from the pool when there is one, else a new file.
// spare says which; stale is the length of a spare's old contents (see
// pool.take).
func (s *Store) create(d *queueDir, name string) (f *os.File, spare bool, stale int64, err error) {
	f, stale, err = d.qfPool.take(d.qf, name, true)
	if !errors.Is(err, errNoSpare) {
		return f, err == nil, stale, err // a spare, or the name exists
	}
	p := filepath.Join(d.qf, name)
	f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, s.mode)
	if err != nil {
		return nil, false, 0, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		os.Remove(p)
		f.Close()
		return nil, false, 0, fmt.Errorf("queue: cannot lock %s: %w", p, err)
	}
	if s.gid >= 0 {
		f.Chown(-1, s.gid) // best effort: the setgid directory may do it
	}
	return f, false, 0, nil
}

// ID is the job's queue ID.
func (t *Txn) ID() string { return t.id }

// Dir is the queue directory the job goes to.
func (t *Txn) Dir() string { return t.dir.path }

// Size is the number of body bytes written so far.
func (t *Txn) Size() int64 { return t.size }

// Write appends body bytes to the df file.
func (t *Txn) Write(p []byte) (int, error) {
	if t.err != nil {
		return 0, t.err
	}
	if t.done {
		return 0, ErrClosed
	}
	if t.df == nil {
		df, err := t.createData()
		if err != nil {
			t.err = err
			return 0, err
		}
		t.dfw = dataWriters.Get().(*bufio.Writer)
		t.df = df
		t.dfw.Reset(df)
	}
	n, err := t.dfw.Write(p)
	t.size += int64(n)
	if err != nil {
		t.err = err
	}
	return n, err
}

// trimData cuts the df to the body written so far when it was a spare
// with longer old contents.
func (t *Txn) trimData() error {
	if err := trim(t.df, t.dfStale, t.size); err != nil {
		return err
	}
	t.dfStale = 0
	return nil
}

// dataWriters are the df buffers, reused from job to job (a new 64 KiB
// buffer per message was most of what an enqueue allocated).
var dataWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// releaseWriter gives the df buffer back; the Txn writes no more.
func (t *Txn) releaseWriter() {
	if t.dfw != nil {
		t.dfw.Reset(nil)
		dataWriters.Put(t.dfw)
		t.dfw = nil
	}
}

// createData makes the df: a spare when the pool has one, else a new file.
// A df of this ID left by a crash is overwritten, as sendmail does.
func (t *Txn) createData() (*os.File, error) {
	d := t.dir
	df, stale, err := d.dfPool.take(d.df, "df"+t.id, false)
	if err == nil {
		t.dfSpare, t.dfStale = true, stale
		return df, nil
	}
	df, err = os.OpenFile(t.s.dataPath(d, "", t.id), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, t.s.mode)
	if err != nil {
		return nil, err
	}
	if t.s.gid >= 0 {
		df.Chown(-1, t.s.gid)
	}
	return df, nil
}

// Commit writes j (its ID is set to the transaction's) as the control file
// and returns when df and qf are durable. On error nothing is queued.
func (t *Txn) Commit(j *Job) error {
	f, err := t.commit(j)
	if f != nil {
		f.Close()
	}
	return err
}

// CommitLocked is Commit, but the new job stays locked for the caller, who
// delivers it at once (background delivery) and then rewrites, removes or
// unlocks it; a queue run cannot pick it up meanwhile.
func (t *Txn) CommitLocked(j *Job) (*Locked, error) {
	f, err := t.commit(j)
	if err != nil {
		return nil, err
	}
	return &Locked{s: t.s, dir: t.dir, id: t.id, f: f, job: j}, nil
}

func (t *Txn) commit(j *Job) (*os.File, error) {
	if t.done {
		return nil, ErrClosed
	}
	if t.df == nil && t.err == nil {
		t.Write(nil) // an empty body still has a df
	}
	if t.err == nil {
		t.err = t.dfw.Flush()
	}
	if t.err == nil {
		t.err = t.trimData()
	}
	t.releaseWriter() // the Txn ends here, one way or the other
	if t.err != nil {
		err := t.err
		t.Abort()
		return nil, err
	}
	j.ID = t.id
	qf := Marshal(j)
	if _, err := t.tf.Write(qf); err != nil {
		t.Abort()
		return nil, err
	}
	if err := trim(t.tf, t.tfStale, int64(len(qf))); err != nil {
		t.Abort()
		return nil, err
	}
	r := &commitReq{dir: t.dir, tf: t.tf, df: t.df, tfp: t.tf.Name(),
		qfp: filepath.Join(t.dir.qf, "qf"+t.id)}
	if t.tfSpare {
		r.spares = append(r.spares, t.dir.qfPool)
	}
	if t.dfSpare {
		r.spares = append(r.spares, t.dir.dfPool)
	}
	err := t.s.commit.submit(r)
	t.df.Close()
	t.done = true
	if err != nil {
		if !r.renam {
			os.Remove(r.tfp)
		}
		os.Remove(t.s.dataPath(t.dir, "", t.id))
		t.tf.Close()
		return nil, err
	}
	return t.tf, nil
}

// Abort drops the job: tf and df go back to the spare pool (or are
// removed), the tf first. It is safe after Commit.
func (t *Txn) Abort() error {
	if t.done {
		return nil
	}
	t.done = true
	t.releaseWriter()
	d := t.dir
	d.qfPool.put(t.tf, d.qf, filepath.Base(t.tf.Name()))
	if t.df != nil {
		d.dfPool.put(t.df, d.df, "df"+t.id)
		t.df.Close()
	}
	return t.tf.Close()
}

// Enqueue queues a whole message: Begin, the body, Commit. j.ID is set.
func (s *Store) Enqueue(j *Job, body io.Reader) error {
	t, err := s.Begin()
	if err != nil {
		return err
	}
	if _, err := io.Copy(t, body); err != nil {
		t.Abort()
		return err
	}
	return t.Commit(j)
}
