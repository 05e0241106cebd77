//go:build !linux && !darwin && !freebsd && !openbsd && !netbsd

package peercred

import (
	"errors"
	"fmt"
	"runtime"
)

// peerCred reports that peercred cannot read peer credentials on this
// system. The error satisfies errors.Is(err, errors.ErrUnsupported).
func peerCred(fd int) (*Cred, error) {
	return nil, fmt.Errorf("peer credentials are not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
