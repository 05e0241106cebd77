package seccomp

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Install loads prog as a seccomp filter of the calling thread and, with
// SECCOMP_FILTER_FLAG_TSYNC, of every other thread of the process, in one
// step: the kernel refuses (and installs nothing) if a thread cannot take
// it. The calling thread must have no_new_privs set (or CAP_SYS_ADMIN); the
// kernel then sets it on the other threads too. A filter cannot be removed.
func Install(prog []Insn) error {
	if len(prog) == 0 || len(prog) > maxLen {
		return fmt.Errorf("seccomp: program of %d instructions", len(prog))
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(filter)
	if e != 0 {
		return os.NewSyscallError("seccomp(SECCOMP_SET_MODE_FILTER, TSYNC)", e)
	}
	if r != 0 {
		// TSYNC: the ID of a thread that could not be synchronized.
		return fmt.Errorf("seccomp: thread %d cannot take the filter: %w", r, errors.ErrUnsupported)
	}
	return nil
}
