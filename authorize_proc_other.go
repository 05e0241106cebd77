//go:build !linux

package peercred

import (
	"errors"
	"fmt"
	"runtime"
)

var errNoProc = fmt.Errorf("process lookups are not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)

func peerExe(pid int) (string, error)      { return "", errNoProc }
func descends(pid, root int) (bool, error) { return false, errNoProc }
func peerAlive(c *Cred) error              { return nil }
