//go:build dragonfly || freebsd || linux || netbsd || openbsd || solaris

package peercred

import (
	"os"

	"golang.org/x/sys/unix"
)

// sysSocketpair creates an AF_UNIX pair, close-on-exec from the start.
func sysSocketpair(sotype int) ([2]int, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, sotype|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fds, os.NewSyscallError("socketpair", err)
	}
	return fds, nil
}
