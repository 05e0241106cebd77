package testutil

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysProcAttr returns the process attributes for opts on Linux.
//
// os/exec's child does, in order: setpgid, (waits for the parent to write
// uid_map, setgroups and gid_map when a user namespace is new), setgroups,
// setgid, setuid, chdir, PR_SET_PDEATHSIG, exec. The parent-death signal is
// set after the IDs change because changing them clears it.
func sysProcAttr(opts *Options) (*syscall.SysProcAttr, error) {
	attr := &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if opts.As != nil {
		groups := opts.As.Groups
		if groups == nil {
			groups = []uint32{} // setgroups(0, NULL): no supplementary groups
		}
		attr.Credential = &syscall.Credential{Uid: opts.As.UID, Gid: opts.As.GID, Groups: groups}
	}
	if opts.PIDNS {
		attr.Cloneflags |= syscall.CLONE_NEWPID
	}
	if opts.UserNS {
		if opts.As != nil && len(opts.As.Groups) > 0 {
			return nil, errors.New("Options.As.Groups with UserNS: only the UID and GID are mapped into the namespace")
		}
		uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
		if opts.As != nil {
			uid, gid = opts.As.UID, opts.As.GID
		}
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(uid), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(gid), Size: 1}}
		// A fresh namespace gives the child all capabilities inside but
		// leaves its kernel IDs alone (they read as the overflow ID inside).
		// setuid(0)/setgid(0) inside make the kernel IDs the mapped ones.
		//
		// Only a writer with CAP_SETGID over the parent namespace may write
		// gid_map while setgroups is allowed; anyone else must deny it first.
		// os/exec then skips setgroups for an empty group list, and the child
		// keeps the test's groups.
		attr.GidMappingsEnableSetgroups = os.Geteuid() == 0
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}}
	}
	return attr, nil
}

// waitExited blocks until the process pid has exited, leaving it unreaped: a
// zombie keeps its PID, so the process group can still be signalled safely.
func waitExited(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}
