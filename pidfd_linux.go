package peercred

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// PidFD returns a pidfd (pidfd_open(2) semantics) for the peer process, taken
// from the socket with SO_PEERPIDFD (Linux 6.5+). The kernel resolves it from
// the process it recorded at connect time, so unlike a PID it cannot refer to
// a later process that reused the number: use it with pidfd_send_signal(2),
// waitid(P_PIDFD) or poll(2) to act on exactly the peer. The descriptor is
// close-on-exec; the caller owns the file and must close it.
//
// It fails with an error satisfying errors.Is(err, errors.ErrUnsupported) on
// kernels before 6.5, and with ESRCH when the peer has already exited.
//
// Never emulate this with pidfd_open(c.Cred().PID): by the time it runs, that
// PID may belong to another process.
func (c *Conn) PidFD() (*os.File, error) {
	rc, err := c.UnixConn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peercred: pidfd: %w", err)
	}
	pidfd := -1
	var serr error
	if err := rc.Control(func(fd uintptr) { pidfd, serr = peerPidFD(int(fd)) }); err != nil {
		return nil, fmt.Errorf("peercred: pidfd: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("peercred: pidfd: %w", serr)
	}
	// The kernel always creates pidfds close-on-exec (TestPidFD pins it).
	return os.NewFile(uintptr(pidfd), "pidfd"), nil
}

// peerPidFD returns a pidfd for the peer of the socket fd (SO_PEERPIDFD),
// with an error that satisfies errors.Is(err, errors.ErrUnsupported) before
// Linux 6.5.
func peerPidFD(fd int) (int, error) {
	pidfd, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	switch {
	case err == unix.ENOPROTOOPT:
		return -1, fmt.Errorf("SO_PEERPIDFD needs Linux 6.5 or later: %w",
			errors.Join(errors.ErrUnsupported, os.NewSyscallError("getsockopt SO_PEERPIDFD", err)))
	case err != nil:
		return -1, os.NewSyscallError("getsockopt SO_PEERPIDFD", err)
	}
	return pidfd, nil
}
