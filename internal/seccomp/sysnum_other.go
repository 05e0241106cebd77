//go:build linux && !amd64 && !arm64

package seccomp

// No table for this architecture: Assemble fails with errors.ErrUnsupported.
const (
	nativeArch = 0
	x32        = false
)

var sysnums = map[string]uint32{}
