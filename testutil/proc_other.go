//go:build unix && !linux

package testutil

import (
	"errors"
	"fmt"
	"syscall"
)

// sysProcAttr returns the process attributes for opts. Namespaces exist only
// on Linux.
func sysProcAttr(opts *Options) (*syscall.SysProcAttr, error) {
	if opts.UserNS || opts.PIDNS {
		return nil, fmt.Errorf("user and PID namespaces: %w", errors.ErrUnsupported)
	}
	attr := &syscall.SysProcAttr{Setpgid: true}
	if opts.As != nil {
		groups := opts.As.Groups
		if groups == nil {
			groups = []uint32{}
		}
		attr.Credential = &syscall.Credential{Uid: opts.As.UID, Gid: opts.As.GID, Groups: groups}
	}
	return attr, nil
}

// waitExited cannot wait without reaping here; the caller reaps instead.
func waitExited(pid int) error { return errors.ErrUnsupported }
