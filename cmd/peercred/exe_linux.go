package main

import (
	"errors"
	"os"
	"strconv"

	"github.com/peercred/peercred"
	"golang.org/x/sys/unix"
)

// peerExe returns the executable of c's peer from /proc/PID/exe, or "" when
// it cannot be read (the peer is in another PID namespace, has exited, or
// belongs to another user and we are not root).
//
// A PID can be reused once its process has exited, so the link alone could
// name another program. With a pidfd for the peer (Linux 6.5+), the answer is
// kept only if the peer is still alive after the link was read: while it
// lives, its PID is its own. Older kernels get the link as read.
func peerExe(c *peercred.Conn) string {
	pid := c.Cred().PID
	if pid <= 0 {
		return ""
	}
	pidfd, err := c.PidFD()
	if err != nil {
		if !errors.Is(err, errors.ErrUnsupported) {
			return "" // the peer has exited: its PID may be another's now
		}
		pidfd = nil // a kernel before 6.5
	}
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		if pidfd != nil {
			pidfd.Close()
		}
		return ""
	}
	if pidfd != nil {
		defer pidfd.Close()
		if !alive(pidfd) {
			return ""
		}
	}
	return exe
}

// alive reports whether the process of pidfd has not exited.
func alive(pidfd *os.File) bool {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.PidfdSendSignal(int(fd), 0, nil, 0)
	}); err != nil {
		return false
	}
	return serr == nil
}
