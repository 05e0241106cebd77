//go:build freebsd || netbsd

package peercred

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// checkUnix returns errNotUnix unless fd is an AF_UNIX socket. The socket
// options read after it live at level 0 (SOL_LOCAL), which on an IP socket
// is IPPROTO_IP, where the same option numbers mean something else.
//
// It calls getsockname(2) directly, as x/sys does on these systems, and reads
// only the address family: x/sys's Getsockname also decodes the address and
// fails with EINVAL on an AF_UNIX address whose sun_len it finds too short.
func checkUnix(fd int) error {
	var rsa unix.RawSockaddrAny
	n := uint32(unix.SizeofSockaddrAny) // socklen_t
	_, _, errno := unix.RawSyscall(unix.SYS_GETSOCKNAME, uintptr(fd),
		uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n)))
	if errno == unix.ENOTSOCK {
		return errNotUnix
	}
	if errno != 0 {
		return os.NewSyscallError("getsockname", errno)
	}
	if rsa.Addr.Family != unix.AF_UNIX {
		return errNotUnix
	}
	return nil
}
