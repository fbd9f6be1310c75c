package queue

import (
	"fmt"
	"os"
	"path/filepath"
)

// BeginID is Begin with an ID the caller obtained earlier from NewID: the
// SMTP server names the transaction at MAIL (the ID appears in its replies
// and in the Received header) but creates files only once DATA comes.
// The ID must not be in use by a tf, qf or Qf in the chosen directory.
func (s *Store) BeginID(id string) (*Txn, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	d := s.dirs[int(s.next.Add(1)-1)%len(s.dirs)]
	tf, spare, stale, err := s.create(d, "tf"+id)
	if err != nil {
		return nil, fmt.Errorf("queue: cannot reserve queue ID %s: %w", id, err)
	}
	if exists(filepath.Join(d.qf, "qf"+id)) || exists(filepath.Join(d.qf, "Qf"+id)) {
		os.Remove(tf.Name())
		tf.Close()
		return nil, fmt.Errorf("queue: queue ID %s is already in use", id)
	}
	return &Txn{s: s, dir: d, id: id, tf: tf, tfSpare: spare, tfStale: stale}, nil
}
