package main

import (
	"fmt"
	"os"
	"slices"
	"syscall"

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
	if os.Getuid() != 0 && a.cfg.Privacy("restrictmailq") && !inQueueGroup(a.cfg.QueueDirectory) {
		fmt.Fprintln(a.stderr, "You are not permitted to see the queue")
		return sysexits.NoPerm
	}
	filter, err := a.queueFilter()
	if err != nil {
		fmt.Fprintln(a.stderr, err)
		return sysexits.Usage
	}
	st, code := a.openStore(storeList)
	if st == nil {
		return code
	}
	defer st.Close()
	_, err = st.List(a.stdout, queue.ListOptions{Verbose: a.inv.Verbose, MinQueueAge: a.cfg.MinQueueAge,
		Quarantined: a.inv.QueueQuarantined, Lost: a.inv.QueueLost, Filter: filter})
	if err != nil {
		return sysexits.OSErr
	}
	return sysexits.OK
}

// ownsQueue is sendmail's restrictqrun exception: a user may run a queue
// directory that is their own.
func ownsQueue(dir string) bool {
	var st syscall.Stat_t
	return !hasGlob(dir) && syscall.Stat(dir, &st) == nil && int(st.Uid) == os.Getuid()
}

// inQueueGroup is sendmail's restrictmailq rule: only members of the
// queue directory's group (its real or a supplementary group) may list it.
func inQueueGroup(dir string) bool {
	var st syscall.Stat_t
	if hasGlob(dir) || syscall.Stat(dir, &st) != nil {
		return false
	}
	if int(st.Gid) == os.Getgid() {
		return true
	}
	groups, _ := os.Getgroups()
	return slices.Contains(groups, int(st.Gid))
}
