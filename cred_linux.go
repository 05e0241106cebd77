package peercred

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// groupsOnDemand: the groups are read by their own call (SO_PEERGROUPS),
// which a Conn makes only when they are asked for: see [Cred.Groups].
const groupsOnDemand = true

// fillCred reads SO_PEERCRED of fd into c's PID, UID and GID, without
// allocating. Unless isUnix, it first checks that fd is an AF_UNIX socket.
func fillCred(fd int, c *Cred, isUnix bool) error {
	if !isUnix {
		if err := checkUnix(fd); err != nil {
			return err
		}
	}
	var uc unix.Ucred
	n := uint32(unix.SizeofUcred)
	if err := getsockopt(fd, unix.SO_PEERCRED, unsafe.Pointer(&uc), &n); err != nil {
		return os.NewSyscallError("getsockopt SO_PEERCRED", err)
	}
	// An unconnected socket "succeeds" with pid 0 and uid/gid -1: that is
	// the kernel saying it has no peer, never a credential.
	if n != unix.SizeofUcred || uc.Uid == ^uint32(0) || uc.Gid == ^uint32(0) {
		return errNoPeer
	}
	c.PID, c.UID, c.GID = int(uc.Pid), uc.Uid, uc.Gid
	return nil
}

// getsockopt is getsockopt(2) at SOL_SOCKET into p, without allocating.
// SO_PEERCRED and SO_PEERGROUPS copy what the kernel keeps with the socket
// and never wait, so it is a raw system call: it spares the scheduler's
// entry and exit, on every accept.
func getsockopt(fd, opt int, p unsafe.Pointer, n *uint32) error {
	_, _, e := unix.RawSyscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, uintptr(opt),
		uintptr(p), uintptr(unsafe.Pointer(n)), 0)
	if e != 0 {
		return e
	}
	return nil
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

// peerGroups appends the peer's groups (SO_PEERGROUPS, Linux 4.13+) to
// dst. The kernel answers ERANGE with the length it needs.
func peerGroups(fd int, dst []uint32) ([]uint32, error) {
	var small [32]uint32
	buf := small[:]
	for range 4 {
		n := uint32(len(buf) * 4)
		err := getsockopt(fd, unix.SO_PEERGROUPS, unsafe.Pointer(&buf[0]), &n)
		switch err {
		case nil:
			if dst == nil {
				dst = []uint32{} // known to be none: not nil, which means unknown
			}
			return append(dst, buf[:n/4]...), nil
		case unix.ERANGE:
			buf = make([]uint32, (n+3)/4)
		case unix.ENOPROTOOPT:
			return nil, nil // kernel older than 4.13: groups unknown
		default:
			return nil, os.NewSyscallError("getsockopt SO_PEERGROUPS", err)
		}
	}
	return nil, os.NewSyscallError("getsockopt SO_PEERGROUPS", syscall.ERANGE)
}
