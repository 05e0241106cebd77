//go:build !linux

package peercred

import (
	"errors"
	"fmt"
	"runtime"
)

var errNoProc = fmt.Errorf("process lookups are not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func checkExecutable(c *Cred, allowed []string, anyNS bool) error {
	return fmt.Errorf("pid %d: executable unknown: %w: %w", c.PID, errNoProc, ErrUnauthorized)
}

func checkDescendant(c *Cred, root int) error {
	return fmt.Errorf("pid %d: process tree unknown: %w: %w", c.PID, errNoProc, ErrUnauthorized)
}
