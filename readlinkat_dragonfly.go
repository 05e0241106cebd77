package peercred

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// readlinkat is readlinkat(2), which golang.org/x/sys/unix lacks on
// DragonFly BSD.
func readlinkat(dir int, name string, buf []byte) (int, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	var b unsafe.Pointer
	if len(buf) > 0 {
		b = unsafe.Pointer(&buf[0])
	}
	n, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dir), uintptr(unsafe.Pointer(p)), uintptr(b), uintptr(len(buf)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}
