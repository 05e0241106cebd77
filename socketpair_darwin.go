//go:build darwin

package peercred

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// sysSocketpair returns a connected pair of AF_UNIX sockets of type sotype,
// both close-on-exec. Darwin has no SOCK_CLOEXEC, so the pair is created and
// marked while holding syscall.ForkLock for writing, as the net package does:
// no concurrent fork/exec can inherit the descriptors in between. On error
// both descriptors are closed.
func sysSocketpair(sotype int) (fds [2]int, err error) {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	fds, err = unix.Socketpair(unix.AF_UNIX, sotype, 0)
	if err != nil {
		return [2]int{-1, -1}, os.NewSyscallError("socketpair", err)
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			unix.Close(fds[0])
			unix.Close(fds[1])
			return [2]int{-1, -1}, os.NewSyscallError("fcntl", err)
		}
	}
	return fds, nil
}
