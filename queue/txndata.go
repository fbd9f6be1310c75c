package queue

import "io"

// FlushData writes out the buffered body, so that the df at DataPath can
// be read back before Commit (the mail filters get the body from it).
func (t *Txn) FlushData() error {
	if t.df == nil && t.err == nil {
		t.Write(nil)
	}
	if t.err == nil {
		t.err = t.dfw.Flush()
	}
	if t.err == nil {
		t.err = t.trimData()
	}
	return t.err
}

// ResetData empties the df, for a body a mail filter replaced.
func (t *Txn) ResetData() error {
	if err := t.FlushData(); err != nil {
		return err
	}
	if err := t.df.Truncate(0); err != nil {
		t.err = err
		return err
	}
	if _, err := t.df.Seek(0, io.SeekStart); err != nil {
		t.err = err
		return err
	}
	t.dfw.Reset(t.df)
	t.size, t.dfStale = 0, 0
	return nil
}
