package deliver

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// writeAsUser runs fn on the calling goroutine's OS thread, locked to it
// for the while, with that thread's filesystem identity set to uid:gid
// and CAP_SYS_RESOURCE dropped from its effective capabilities, so that
// root's write to a user's mailbox is held to the user's disk quota and
// may not use the blocks a filesystem keeps in reserve for root (ext4
// grants them to fsuid 0 or to CAP_SYS_RESOURCE). mail.local gets the
// same by switching its uid to the user before writing; posthorn cannot
// switch the uid of one goroutine, but the filesystem uid and the
// capabilities are per thread. Afterwards the thread gets its identity
// back and is checked before it is unlocked (a thread that kept the
// user's identity would then write queue files as that user: posthorn
// stops rather than go on). The descriptor written to was opened before,
// so the changed identity only decides who pays for the blocks. When
// posthorn is not root, or uid is 0 or negative, fn simply runs.
func writeAsUser(uid, gid int, fn func() error) error {
	if os.Geteuid() != 0 || uid <= 0 {
		return fn()
	}
	runtime.LockOSThread()
	saved, err := becomeFSUser(uid, gid)
	if err == nil {
		err = fn()
	}
	if rerr := saved.restore(); rerr != nil {
		// Never seen: setfsuid, setfsgid and capset back to what the
		// thread had cannot fail for root. The thread is never unlocked.
		panic("deliver: cannot give the writing thread its identity back: " + rerr.Error())
	}
	runtime.UnlockOSThread()
	return err
}

// threadID is what becomeFSUser changed on the calling thread.
type threadID struct {
	fsuid, fsgid int
	hdr          unix.CapUserHeader
	caps         [2]unix.CapUserData
	capsSet      bool
}

// becomeFSUser sets the calling thread's fsuid and fsgid and drops
// CAP_SYS_RESOURCE from its effective set (setfsuid and capset with pid 0
// affect only the calling thread). What it changed is in the threadID,
// also on error.
func becomeFSUser(uid, gid int) (*threadID, error) {
	t := &threadID{hdr: unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}}
	// Before setfsuid, which clears the file capabilities from the
	// effective set (setting fsuid 0 again brings them back).
	if err := unix.Capget(&t.hdr, &t.caps[0]); err != nil {
		return t, os.NewSyscallError("capget", err)
	}
	t.fsgid, _ = unix.SetfsgidRetGid(gid)
	t.fsuid, _ = unix.SetfsuidRetUid(uid)
	// setfsuid reports no errors; ask for the current values to check.
	if got, _ := unix.SetfsuidRetUid(-1); got != uid {
		return t, fmt.Errorf("setfsuid(%d) failed: fsuid is %d", uid, got)
	}
	if got, _ := unix.SetfsgidRetGid(-1); got != gid {
		return t, fmt.Errorf("setfsgid(%d) failed: fsgid is %d", gid, got)
	}
	hdr := t.hdr
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return t, os.NewSyscallError("capget", err)
	}
	const c = unix.CAP_SYS_RESOURCE
	data[c/32].Effective &^= 1 << (c % 32)
	t.capsSet = true // from here on, restore sets them back
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return t, os.NewSyscallError("capset", err)
	}
	return t, nil
}

// restore gives the thread its filesystem identity and capabilities back
// and checks them.
func (t *threadID) restore() error {
	unix.SetfsuidRetUid(t.fsuid)
	unix.SetfsgidRetGid(t.fsgid)
	if got, _ := unix.SetfsuidRetUid(-1); got != t.fsuid {
		return fmt.Errorf("fsuid is %d, want %d", got, t.fsuid)
	}
	if got, _ := unix.SetfsgidRetGid(-1); got != t.fsgid {
		return fmt.Errorf("fsgid is %d, want %d", got, t.fsgid)
	}
	if !t.capsSet {
		return nil
	}
	hdr := t.hdr
	if err := unix.Capset(&hdr, &t.caps[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	var now [2]unix.CapUserData
	if err := unix.Capget(&hdr, &now[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	if now != t.caps {
		return fmt.Errorf("capabilities %+v, want %+v", now, t.caps)
	}
	return nil
}
