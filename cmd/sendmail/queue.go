package main

import (
	"fmt"
	"os"

	"github.com/posthorn/posthorn/conf"

	"github.com/posthorn/posthorn/internal/sysexits"
	"github.com/posthorn/posthorn/queue"
)

// How a command uses the queue: openStore's modes.
const (
	storeRun    = iota // a queue run: the directory must exist
	storeCreate        // daemons: a missing directory is made
	storeSubmit        // a submission or its delivery child: as storeCreate, no clean-up scan
	storeList          // mailq: read only, nothing is created, recycled or removed
)

// openStore opens the queue directories for one of the modes above.
func (a *app) openStore(mode int) (*queue.Store, int) {
	dir := a.cfg.QueueDirectory
	create := mode == storeCreate || mode == storeSubmit
	if !create {
		if _, err := os.Stat(dir); err != nil && !hasGlob(dir) {
			fmt.Fprintf(a.stderr, "can not chdir(%s/): %s\n", dir, conf.ErrnoText(err))
			return nil, sysexits.Config
		}
	}
	st, err := queue.Open(queue.Options{
		Dirs:      []string{dir},
		Create:    create,
		NoCleanup: mode == storeSubmit,
		ReadOnly:  mode == storeList,
		Mode:      os.FileMode(a.cfg.QueueFileMode),
		Logger:    a.log,
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
	st, code := a.openStore(storeList)
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
