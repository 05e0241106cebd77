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
	var pidfd int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		pidfd, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD)
	}); err != nil {
		return nil, fmt.Errorf("peercred: pidfd: %w", err)
	}
	switch {
	case serr == unix.ENOPROTOOPT:
		return nil, fmt.Errorf("peercred: pidfd: SO_PEERPIDFD needs Linux 6.5 or later: %w",
			errors.Join(errors.ErrUnsupported, os.NewSyscallError("getsockopt SO_PEERPIDFD", serr)))
	case serr != nil:
		return nil, fmt.Errorf("peercred: pidfd: %w", os.NewSyscallError("getsockopt SO_PEERPIDFD", serr))
	}
	// The kernel always creates pidfds close-on-exec (TestPidFD pins it).
	return os.NewFile(uintptr(pidfd), "pidfd"), nil
}
