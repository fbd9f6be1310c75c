package queue

import (
	"os"

	"golang.org/x/sys/unix"
)

// Space is the free space of the queue's file system, in its blocks.
type Space struct {
	Dir       string // the queue directory the figures are for
	Avail     int64  // blocks available to unprivileged users (statfs f_bavail)
	BlockSize int64  // bytes per block
}

// Fits reports whether a message of size bytes (0 when not known yet) can
// be queued while minBlocks blocks stay free: sendmail's pickqdir rule,
// size rounded up to whole blocks, plus MinFreeBlocks, at most Avail.
func (sp Space) Fits(size, minBlocks int64) bool {
	var needed int64
	if size > 0 && sp.BlockSize > 0 {
		needed = (size + sp.BlockSize - 1) / sp.BlockSize
	}
	if minBlocks > 0 {
		needed += minBlocks
	}
	return needed <= sp.Avail
}

// FreeSpace returns the space for new jobs: of the file systems holding
// the store's data (df) directories, the one with the most bytes
// available. Queue directories on one file system count once.
func (s *Store) FreeSpace() (Space, error) {
	var best Space
	var firstErr error
	found := false
	for _, d := range s.dirs {
		var st unix.Statfs_t
		if err := unix.Fstatfs(int(d.dfFd.Fd()), &st); err != nil {
			if firstErr == nil {
				firstErr = &os.PathError{Op: "statfs", Path: d.df, Err: err}
			}
			continue
		}
		bsize := st.Frsize // the unit of the block counts
		if bsize <= 0 {
			bsize = st.Bsize
		}
		sp := Space{Dir: d.path, Avail: int64(st.Bavail), BlockSize: bsize}
		if !found || sp.Avail*sp.BlockSize > best.Avail*best.BlockSize {
			best, found = sp, true
		}
	}
	if !found {
		return Space{}, firstErr
	}
	return best, nil
}
