//go:build unix

package peercred

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// listenFile listens on the socket file path. When a mode or owner is asked
// for, the socket is bound in a fresh 0700 directory beside path, given its
// mode and owner there, and then hard-linked to path: link(2) never replaces
// an existing file, and nobody can reach the socket before it has its final
// permissions. It returns the listener and the FileInfo of the file it made.
func listenFile(ctx context.Context, network, path string, mode os.FileMode, uid, gid int) (*net.UnixListener, os.FileInfo, error) {
	stale, err := checkStale(ctx, network, path)
	if err != nil {
		return nil, nil, err
	}
	if mode&^os.ModePerm != 0 {
		return nil, nil, listenError(path, fmt.Errorf("mode %v has bits other than permissions", mode))
	}
	if uid <= 0 {
		uid = -1
	}
	if gid <= 0 {
		gid = -1
	}
	if mode == 0 && uid == -1 && gid == -1 {
		// Nothing to apply: bind in place, with the kernel's default mode.
		if stale != nil {
			if err := removeStale(path, stale); err != nil {
				return nil, nil, err
			}
		}
		return bindAt(ctx, network, path)
	}

	dir, err := os.MkdirTemp(filepath.Dir(path), ".pc")
	if err != nil {
		return nil, nil, listenError(path, fmt.Errorf("private directory for the socket: %w", err))
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "s")
	ul, fi, err := bindAt(ctx, network, tmp)
	if err != nil {
		return nil, nil, listenError(path, err)
	}
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		ul.Close()
		return nil, nil, listenError(path, err)
	}
	if uid != -1 || gid != -1 {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			return fail(err)
		}
	}
	if mode != 0 {
		if err := os.Chmod(tmp, mode); err != nil {
			return fail(err)
		}
	}
	if stale != nil {
		if err := removeStale(path, stale); err != nil {
			ul.Close()
			return nil, nil, err
		}
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Someone created the path since we looked.
			err = fmt.Errorf("%s appeared while listening: %w", path, syscall.EADDRINUSE)
		}
		return fail(err)
	}
	// The listener's own name is the temporary one; it is unlinked with
	// dir, and Close removes path itself.
	return ul, fi, nil
}

// bindAt listens on path, which must not exist, and stats what it made.
func bindAt(ctx context.Context, network, path string) (*net.UnixListener, os.FileInfo, error) {
	var nlc net.ListenConfig
	l, err := nlc.Listen(ctx, network, path)
	if err != nil {
		return nil, nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err != nil {
		ul.Close()
		return nil, nil, err
	}
	return ul, fi, nil
}

// checkStale looks at path. It returns nil when nothing is there, the file's
// FileInfo when it is a socket nobody accepts on, and an error when it is a
// live socket (EADDRINUSE), not a socket (EEXIST) or cannot be probed.
func checkStale(ctx context.Context, network, path string) (os.FileInfo, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, listenError(path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return nil, listenError(path, fmt.Errorf("%s exists and is not a socket (%v); not removing it: %w",
			path, fi.Mode().Type(), fs.ErrExist))
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, path)
	switch {
	case err == nil:
		c.Close()
		return nil, listenError(path, fmt.Errorf("%s is in use by a listening process: %w", path, syscall.EADDRINUSE))
	case errors.Is(err, syscall.ECONNREFUSED):
		return fi, nil // stale: the socket exists but nobody listens
	case errors.Is(err, syscall.ENOENT):
		return nil, nil // removed since we looked
	default:
		// EAGAIN (a full backlog), EACCES, EPROTOTYPE (a datagram or
		// seqpacket socket): something may be there; leave it.
		return nil, listenError(path, fmt.Errorf("cannot tell whether %s is in use: %w", path, err))
	}
}

// removeStale removes the stale socket at path if it is still the file that
// checkStale found.
func removeStale(path string, stale os.FileInfo) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return listenError(path, err)
	}
	if !os.SameFile(fi, stale) {
		return listenError(path, fmt.Errorf("%s was replaced while listening: %w", path, syscall.EADDRINUSE))
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return listenError(path, fmt.Errorf("remove stale socket: %w", err))
	}
	return nil
}
