//go:build !linux

package peercred

import (
	"errors"
	"fmt"
	"runtime"
)

// activate reports that socket activation, a Linux protocol, is not
// supported here. It leaves the environment and the descriptors alone.
func (lc *ListenConfig) activate(first, want int) ([]activatedListener, error) {
	return nil, activationError(fmt.Errorf("not supported on %s: %w (%w)", runtime.GOOS, errors.ErrUnsupported, ErrNotActivated))
}
