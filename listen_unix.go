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

	"golang.org/x/sys/unix"
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

	pd, err := newPrivateDir(filepath.Dir(path))
	if err != nil {
		return nil, nil, listenError(path, fmt.Errorf("private directory for the socket: %w", err))
	}
	defer pd.remove()
	// bind(2) takes a path; if someone swapped the directory under that
	// name since we opened it, the socket lands in theirs, and the checks
	// below, made through our descriptor of our directory, fail.
	ul, _, err := bindAt(ctx, network, filepath.Join(pd.path, "s"))
	if err != nil {
		return nil, nil, listenError(path, err)
	}
	fail := func(err error) (*net.UnixListener, os.FileInfo, error) {
		ul.Close()
		return nil, nil, listenError(path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pd.fd, "s", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fail(fmt.Errorf("the socket is not in the private directory %s (replaced?): %v", pd.path, err))
	}
	// Every change goes through the directory's descriptor: nobody else
	// can write in it, so "s" is our socket, whatever happens to paths.
	if uid != -1 || gid != -1 {
		if err := unix.Fchownat(pd.fd, "s", uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fail(os.NewSyscallError("fchownat", err))
		}
	}
	if mode != 0 {
		if err := unix.Fchmodat(pd.fd, "s", uint32(mode.Perm()), 0); err != nil {
			return fail(os.NewSyscallError("fchmodat", err))
		}
	}
	if stale != nil {
		if err := removeStale(path, stale); err != nil {
			ul.Close()
			return nil, nil, err
		}
	}
	if err := unix.Linkat(pd.fd, "s", unix.AT_FDCWD, path, 0); err != nil {
		if err == unix.EEXIST {
			// Someone created the path since we looked.
			return fail(fmt.Errorf("%s appeared while listening: %w", path, syscall.EADDRINUSE))
		}
		return fail(&os.LinkError{Op: "link", Old: filepath.Join(pd.path, "s"), New: path, Err: err})
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	if st2, ok := fi.Sys().(*syscall.Stat_t); !ok || uint64(st2.Ino) != uint64(st.Ino) || uint64(st2.Dev) != uint64(st.Dev) {
		// Not ours after all: leave what is there alone.
		return fail(fmt.Errorf("%s was replaced while listening: %w", path, syscall.EADDRINUSE))
	}
	// The listener's own name is the temporary one; it is unlinked with
	// the private directory, and Close removes path itself.
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

// privateDir is a fresh 0700 directory of ours, held open so that later
// operations do not depend on what its path resolves to.
type privateDir struct {
	path string
	fd   int
	st   unix.Stat_t
}

// newPrivateDir makes a private directory in parent and checks, through
// its descriptor, that it is ours and closed to others.
func newPrivateDir(parent string) (*privateDir, error) {
	path, err := os.MkdirTemp(parent, ".pc")
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(path)
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	pd := &privateDir{path: path, fd: fd}
	if err := unix.Fstat(fd, &pd.st); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fstat", err)
	}
	if int(pd.st.Uid) != os.Geteuid() || pd.st.Mode&0o077 != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a private directory of ours (uid %d, mode %#o)", path, pd.st.Uid, pd.st.Mode&0o7777)
	}
	return pd, nil
}

// remove empties and removes the directory, by path only if the path
// still names it.
func (pd *privateDir) remove() {
	unix.Unlinkat(pd.fd, "s", 0)
	var st unix.Stat_t
	if unix.Lstat(pd.path, &st) == nil && st.Dev == pd.st.Dev && st.Ino == pd.st.Ino {
		unix.Rmdir(pd.path)
	}
	unix.Close(pd.fd)
}
