//go:build !linux

package peercred

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// attest is Cred.Attest where processes cannot be attested.
func attest(c *Cred, opts AttestOptions) (*Process, error) {
	return nil, fmt.Errorf("process attestation is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// attestPidFD is AttestPidFD where processes cannot be attested.
func attestPidFD(f *os.File, opts AttestOptions) (*Process, error) {
	return nil, fmt.Errorf("process attestation is not supported on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}
