//go:build !unix || aix

package peercred

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

// MaxFiles is the largest number of descriptors [Conn.ReadWithFiles] takes
// from one message.
const MaxFiles = 16

var errNoFDPassing = fmt.Errorf("peercred: socket pairs and descriptor passing are not supported on %s: %w",
	runtime.GOOS, errors.ErrUnsupported)

// Socketpair is not supported on this system.
func Socketpair(sotype int) (local *Conn, remote *os.File, err error) {
	return nil, nil, errNoFDPassing
}

// WriteWithFiles is not supported on this system.
func (c *Conn) WriteWithFiles(b []byte, files ...*os.File) (int, error) {
	return 0, errNoFDPassing
}

// ReadWithFiles is not supported on this system.
func (c *Conn) ReadWithFiles(b []byte) (n int, files []*os.File, err error) {
	return 0, nil, errNoFDPassing
}
