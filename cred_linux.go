package peercred

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// peerCred reads SO_PEERCRED and SO_PEERGROUPS of fd.
func peerCred(fd int) (*Cred, error) {
	if err := checkUnix(fd); err != nil {
		return nil, err
	}
	uc, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return nil, os.NewSyscallError("getsockopt SO_PEERCRED", err)
	}
	// An unconnected socket "succeeds" with pid 0 and uid/gid -1: that is
	// the kernel saying it has no peer, never a credential.
	if uc.Uid == ^uint32(0) || uc.Gid == ^uint32(0) {
		return nil, errNoPeer
	}
	groups, err := peerGroups(fd)
	if err != nil {
		return nil, err
	}
	return &Cred{PID: int(uc.Pid), UID: uc.Uid, GID: uc.Gid, Groups: groups}, nil
}

// checkUnix returns errNotUnix unless fd is an AF_UNIX socket.
func checkUnix(fd int) error {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		if err == unix.ENOTSOCK {
			return errNotUnix
		}
		return os.NewSyscallError("getsockopt SO_DOMAIN", err)
	}
	if domain != unix.AF_UNIX {
		return errNotUnix
	}
	return nil
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13+). The kernel answers ERANGE
// with the length it needs; the list may grow between calls only if the
// peer's credentials were replaced, which they are not, so one retry with
// the reported size suffices (we allow a few).
func peerGroups(fd int) ([]uint32, error) {
	var small [32]uint32
	buf := small[:]
	for range 4 {
		n := uint32(len(buf) * 4)
		var p unsafe.Pointer
		if len(buf) > 0 {
			p = unsafe.Pointer(&buf[0])
		}
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(p), uintptr(unsafe.Pointer(&n)), 0)
		switch e {
		case 0:
			groups := make([]uint32, n/4)
			copy(groups, buf)
			return groups, nil
		case unix.ERANGE:
			buf = make([]uint32, (n+3)/4)
		case unix.ENOPROTOOPT:
			return nil, nil // kernel older than 4.13: groups unknown
		default:
			return nil, os.NewSyscallError("getsockopt SO_PEERGROUPS", e)
		}
	}
	return nil, os.NewSyscallError("getsockopt SO_PEERGROUPS", syscall.ERANGE)
}
