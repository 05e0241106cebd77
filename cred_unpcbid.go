//go:build netbsd

package peercred

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// localPeerEID is LOCAL_PEEREID from NetBSD's <sys/un.h>, read at level 0
// (SOL_LOCAL); x/sys defines neither.
const localPeerEID = 3

// unpcbid mirrors NetBSD's struct unpcbid (<sys/un.h>).
type unpcbid struct {
	pid  int32  // unp_pid
	euid uint32 // unp_euid
	egid uint32 // unp_egid
}

const sizeofUnpcbid = 12

var (
	_ [unsafe.Sizeof(unpcbid{}) - sizeofUnpcbid]byte
	_ [sizeofUnpcbid - unsafe.Sizeof(unpcbid{})]byte
)

// peerCred reads the peer's PID and effective IDs with
// getsockopt(0, LOCAL_PEEREID). NetBSD does not report groups.
func peerCred(fd int) (*Cred, error) {
	if err := checkUnix(fd); err != nil {
		return nil, err
	}
	var id unpcbid
	n := uint32(sizeofUnpcbid) // socklen_t
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), 0, localPeerEID,
		uintptr(unsafe.Pointer(&id)), uintptr(unsafe.Pointer(&n)), 0)
	switch errno {
	case 0:
	case unix.EINVAL, unix.ENOTCONN:
		// NetBSD answers EINVAL when it holds no IDs for the socket:
		// it is not connected.
		return nil, errNoPeer
	default:
		return nil, os.NewSyscallError("getsockopt LOCAL_PEEREID", errno)
	}
	if n != sizeofUnpcbid {
		return nil, fmt.Errorf("LOCAL_PEEREID: kernel returned %d bytes, want %d", n, sizeofUnpcbid)
	}
	pid := int(id.pid)
	if pid < 0 {
		pid = 0
	}
	return &Cred{PID: pid, UID: id.euid, GID: id.egid}, nil
}
