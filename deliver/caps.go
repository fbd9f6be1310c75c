package deliver

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// writeAsUser runs fn on an OS thread of its own whose filesystem identity
// is uid:gid and whose effective capabilities lack CAP_SYS_RESOURCE, so
// that root's write to a user's mailbox is held to the user's disk quota
// and may not use the blocks a filesystem keeps in reserve for root
// (ext4 grants them to fsuid 0 or to CAP_SYS_RESOURCE). mail.local gets the
// same by switching its uid to the user before writing; posthorn cannot
// switch the uid of one goroutine, but the filesystem uid and the
// capabilities are per thread. The thread is discarded afterwards: the
// goroutine ends without unlocking it, so the runtime terminates it instead
// of reusing it. The descriptor written to was opened before, so the
// changed identity only decides who pays for the blocks. When posthorn is
// not root, or uid is 0 or negative, fn simply runs.
func writeAsUser(uid, gid int, fn func() error) error {
	if os.Geteuid() != 0 || uid <= 0 {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		if err := becomeFSUser(uid, gid); err != nil {
			done <- err
			return
		}
		done <- fn()
	}()
	return <-done
}

// becomeFSUser sets the calling thread's fsuid and fsgid and drops
// CAP_SYS_RESOURCE from its effective set (setfsuid and capset with pid 0
// affect only the calling thread).
func becomeFSUser(uid, gid int) error {
	unix.Setfsgid(gid)
	unix.Setfsuid(uid)
	// setfsuid reports no errors; ask for the current values to check.
	if got, _ := unix.SetfsuidRetUid(-1); got != uid {
		return fmt.Errorf("setfsuid(%d) failed: fsuid is %d", uid, got)
	}
	if got, _ := unix.SetfsgidRetGid(-1); got != gid {
		return fmt.Errorf("setfsgid(%d) failed: fsgid is %d", gid, got)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	const c = unix.CAP_SYS_RESOURCE
	data[c/32].Effective &^= 1 << (c % 32)
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	return nil
}
