//go:build linux && !(386 || arm)

package privsep

import "golang.org/x/sys/unix"

const (
	sysSetresgid = unix.SYS_SETRESGID
	sysSetgroups = unix.SYS_SETGROUPS
)
