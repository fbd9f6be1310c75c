package queue

// DataPath is the df file of a job being enqueued. Acceptance reads it
// back to clone a message for an owner- list, which gets its own job (and
// data file) with the list owner as envelope sender, as sendmail does.
func (t *Txn) DataPath() string { return t.s.dataPath(t.dir, "", t.id) }
