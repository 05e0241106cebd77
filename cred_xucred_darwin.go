//go:build darwin

package peercred

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// checkUnix returns errNotUnix unless fd is an AF_UNIX socket. It must run
// before LOCAL_PEERCRED: SOL_LOCAL is 0, which on an IP socket is IPPROTO_IP,
// where the same option number is a different option that can succeed.
//
// Darwin allows system calls only through libc, which x/sys reaches only
// through Getsockname, so this decodes the whole address. Darwin reports an
// unbound AF_UNIX socket as a 16-byte address with sun_len set, which decodes.
func checkUnix(fd int) error {
	sa, err := unix.Getsockname(fd)
	if errors.Is(err, unix.ENOTSOCK) || errors.Is(err, unix.EAFNOSUPPORT) {
		return errNotUnix // not a socket, or a family x/sys does not decode
	}
	if err != nil {
		return os.NewSyscallError("getsockname", err)
	}
	if _, ok := sa.(*unix.SockaddrUnix); !ok {
		return errNotUnix
	}
	return nil
}

// xucredPID returns the peer's PID from getsockopt(SOL_LOCAL, LOCAL_PEERPID),
// or 0 when the peer has already disconnected. Unlike the xucred, which the
// kernel recorded at connect time, this is read now: it is the last process
// that used the peer's socket.
func xucredPID(fd int, _ *unix.Xucred) (int, error) {
	pid, err := unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID)
	if errors.Is(err, unix.ENOTCONN) {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("getsockopt LOCAL_PEERPID", err)
	}
	return pid, nil
}
