//go:build darwin || freebsd

package peercred

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// xucredVersion is XUCRED_VERSION from <sys/ucred.h>: the only layout of
// struct xucred this file reads.
const xucredVersion = 0

// peerCred reads the peer's credentials with
// getsockopt(SOL_LOCAL, LOCAL_PEERCRED), which fills a struct xucred.
//
// On these systems the xucred group list starts with the effective GID:
// GID is Groups[0], and Groups holds that GID followed by the supplementary
// groups, at most 16 (XU_NGROUPS) in all; a longer list is cut by the kernel.
// The PID comes from xucredPID (one per system).
func peerCred(fd int) (*Cred, error) {
	if err := checkUnix(fd); err != nil {
		return nil, err
	}
	x, err := unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.EINVAL) {
		// The socket has no peer credentials: a stream socket that is not
		// connected (ENOTCONN), or another type without them (EINVAL).
		return nil, errNoPeer
	}
	if err != nil {
		return nil, os.NewSyscallError("getsockopt LOCAL_PEERCRED", err)
	}
	if x.Version != xucredVersion {
		return nil, fmt.Errorf("LOCAL_PEERCRED: xucred version is %d, want %d", x.Version, xucredVersion)
	}
	// cr_groups[0] is the effective GID, so a valid answer has at least one.
	if x.Ngroups < 1 || int(x.Ngroups) > len(x.Groups) {
		return nil, fmt.Errorf("LOCAL_PEERCRED: xucred has %d groups, want 1 to %d", x.Ngroups, len(x.Groups))
	}
	pid, err := xucredPID(fd, x)
	if err != nil {
		return nil, err
	}
	return &Cred{
		PID:    pid,
		UID:    x.Uid,
		GID:    x.Groups[0],
		groups: &groupList{ids: slices.Clone(x.Groups[:x.Ngroups])},
	}, nil
}
