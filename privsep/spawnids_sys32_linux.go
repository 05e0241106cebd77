//go:build linux && (386 || arm)

package privsep

import "golang.org/x/sys/unix"

// The 32-bit IDs: SYS_SETRESGID and SYS_SETGROUPS take 16-bit ones here.
const (
	sysSetresgid = unix.SYS_SETRESGID32
	sysSetgroups = unix.SYS_SETGROUPS32
)
