//go:build !linux

package peercred

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// PidFD returns a pidfd for the peer process (Linux 6.5+, SO_PEERPIDFD).
// On other systems it returns an error that satisfies
// errors.Is(err, errors.ErrUnsupported).
func (c *Conn) PidFD() (*os.File, error) {
	return nil, fmt.Errorf("peercred: pidfd: pidfds are not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
