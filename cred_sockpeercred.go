//go:build openbsd

package peercred

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockpeercred mirrors OpenBSD's struct sockpeercred (<sys/socket.h>).
type sockpeercred struct {
	uid uint32 // uid_t
	gid uint32 // gid_t
	pid int32  // pid_t
}

// sockpeercred is 12 bytes and must fit in the buffer it is read into.
var (
	_ [unsafe.Sizeof(sockpeercred{}) - 12]byte
	_ [12 - unsafe.Sizeof(sockpeercred{})]byte
	_ [unix.SizeofICMPv6Filter - unsafe.Sizeof(sockpeercred{})]byte
)

// peerCred reads the peer's PID and effective IDs with
// getsockopt(SOL_SOCKET, SO_PEERCRED). OpenBSD does not report groups.
func peerCred(fd int) (*Cred, error) {
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if errors.Is(err, unix.ENOTSOCK) {
		return nil, errNotUnix
	}
	if err != nil {
		return nil, os.NewSyscallError("getsockopt SO_DOMAIN", err)
	}
	if dom != unix.AF_UNIX {
		return nil, errNotUnix
	}
	// OpenBSD allows system calls only through libc, and x/sys has no getter
	// for struct sockpeercred, so borrow the getter of a larger struct: the
	// kernel copies the 12 bytes of sockpeercred to the start of its buffer.
	buf, err := unix.GetsockoptICMPv6Filter(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if errors.Is(err, unix.ENOTCONN) {
		return nil, errNoPeer
	}
	if err != nil {
		return nil, os.NewSyscallError("getsockopt SO_PEERCRED", err)
	}
	pc := (*sockpeercred)(unsafe.Pointer(buf))
	// That getter hides the returned length. The kernel records the PID of a
	// user process, never 0, so a zero PID means nothing was copied: refuse it
	// rather than read the zeroed buffer as uid 0.
	if pc.pid <= 0 {
		return nil, fmt.Errorf("SO_PEERCRED: kernel reported pid %d", pc.pid)
	}
	return &Cred{PID: int(pc.pid), UID: pc.uid, GID: pc.gid}, nil
}
