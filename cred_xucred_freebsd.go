//go:build freebsd

package peercred

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// xucred mirrors FreeBSD's struct xucred (<sys/ucred.h>) with the union that
// follows cr_groups, which x/sys declares as a blank pointer:
//
//	union {
//		void	*_cr_unused1;	/* before FreeBSD 13 */
//		pid_t	cr_pid;
//	};
//
// cr_pid is the union's first bytes on any byte order.
type xucred struct {
	version uint32
	uid     uint32
	ngroups int16
	groups  [16]uint32
	_       [0]uintptr // the union is pointer-aligned
	pid     int32
}

// The mirror must have x/sys's size (88 bytes on 64-bit, 80 on 32-bit) and
// put the groups where x/sys does.
var (
	_ [unsafe.Sizeof(xucred{}) - unix.SizeofXucred]byte
	_ [unix.SizeofXucred - unsafe.Sizeof(xucred{})]byte
	_ [unsafe.Offsetof(xucred{}.groups) - unsafe.Offsetof(unix.Xucred{}.Groups)]byte
	_ [unsafe.Offsetof(unix.Xucred{}.Groups) - unsafe.Offsetof(xucred{}.groups)]byte
)

// xucredPID returns cr_pid from x, the PID the kernel recorded with the
// credentials (FreeBSD 13 and later), or 0 if the kernel left it unset.
func xucredPID(_ int, x *unix.Xucred) (int, error) {
	pid := (*xucred)(unsafe.Pointer(x)).pid
	if pid < 0 {
		pid = 0
	}
	return int(pid), nil
}
