package main

import (
	"fmt"
	"os"

	"github.com/posthorn/posthorn/conf"

	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// openStore opens the queue directories. create makes a missing directory
// (daemons and submissions); listing never creates anything.
func (a *app) openStore(create bool) (*queue.Store, int) {
	dir := a.cfg.QueueDirectory
	if !create {
		if _, err := os.Stat(dir); err != nil && !hasGlob(dir) {
			fmt.Fprintf(a.stderr, "can not chdir(%s/): %s\n", dir, conf.ErrnoText(err))
			return nil, sysexits.Config
		}
	}
	st, err := queue.Open(queue.Options{
		Dirs:   []string{dir},
		Create: create,
		Mode:   os.FileMode(a.cfg.QueueFileMode),
		Logger: a.log,
	})
	if err != nil {
		fmt.Fprintf(a.stderr, "can not chdir(%s/): %s\n", dir, conf.ErrnoText(err))
		return nil, sysexits.Config
	}
	return st, sysexits.OK
}

func hasGlob(p string) bool {
	for _, c := range p {
		if c == '*' || c == '?' || c == '[' {
			return true
		}
	}
	return false
}

// printQueue is -bp / mailq.
func (a *app) printQueue() int {
	st, code := a.openStore(false)
	if st == nil {
		return code
	}
	defer st.Close()
	_, err := st.List(a.stdout, queue.ListOptions{Verbose: a.inv.Verbose, MinQueueAge: a.cfg.MinQueueAge})
	if err != nil {
		return sysexits.OSErr
	}
	return sysexits.OK
}
