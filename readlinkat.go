//go:build unix && !dragonfly && !solaris && !aix

package peercred

import "golang.org/x/sys/unix"

// readlinkat is readlinkat(2).
func readlinkat(dir int, name string, buf []byte) (int, error) {
	return unix.Readlinkat(dir, name, buf)
}
