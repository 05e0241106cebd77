//go:build linux

package peercred

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// dirOpenFlags opens the directories openDir walks: O_PATH needs only search
// permission, as path resolution does.
const dirOpenFlags = unix.O_PATH

// procAddr is the address through which bind(2) and connect(2) reach name in
// the directory dir: /proc/self/fd/N/name. The kernel resolves
// /proc/self/fd/N to the very directory the descriptor holds, whatever has
// become of its path since, so nobody can redirect these calls. The address
// the kernel records for the socket (what getsockname and a client's
// getpeername report) is this one; Listener.Addr, and Conn's LocalAddr and
// RemoteAddr, report the caller's path.
// It needs /proc mounted (procError says so when it is not).
func procAddr(dir int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dir) + "/" + name
}

// maxBindName is the longest name bindIn binds in place: procAddr with the
// largest descriptor number must fit in sun_path (107 bytes and a NUL).
// Listen binds a longer name in a private directory, as "s", and links it.
const maxBindName = 107 - len("/proc/self/fd/2147483647/")

// bindIn listens on name in the directory dir; nothing may exist there.
func bindIn(ctx context.Context, network string, dir int, _, name string) (*net.UnixListener, error) {
	var nlc net.ListenConfig
	l, err := nlc.Listen(ctx, network, procAddr(dir, name))
	if err != nil {
		return nil, procError(err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// probeIn connects to name in the directory dir and hangs up: nil means a
// process accepts connections there. connect(2) follows a symlink in the
// last component, and the owner of the directory may swap the socket for
// one between our look and the connect (to make root connect to a socket
// it could not reach itself): so the name is opened first, without
// following it (O_PATH|O_NOFOLLOW), it must be a socket, and the connection
// goes through that descriptor, /proc/self/fd/N.
func probeIn(ctx context.Context, network string, dir int, _, name string) error {
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("openat", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return os.NewSyscallError("fstat", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s is no longer a socket but %s", name, fileType(modeType(st.Mode)))
	}
	// A hard link to a socket elsewhere (where fs.protected_hardlinks is
	// off, anyone may link to a socket it cannot reach) is no stale socket
	// of ours: leave it alone.
	if st.Nlink != 1 {
		return fmt.Errorf("%s has %d links: cannot tell whose socket it is", name, st.Nlink)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, "/proc/self/fd/"+strconv.Itoa(fd))
	if err != nil {
		return procError(err)
	}
	return c.Close()
}

// procError explains an error of bind or connect through procAddr.
func procError(err error) error {
	if errors.Is(err, unix.ENOENT) {
		if _, serr := os.Stat("/proc/self/fd"); serr != nil {
			return fmt.Errorf("%w (sockets are bound and probed through /proc/self/fd, and it is missing: is /proc mounted?)", err)
		}
	}
	return err
}

// readSymlink reads the symlink name in dir and says who owns it. ok is
// false when name is not a symlink. The link is opened first and both
// answers come from that one descriptor, so they describe the same link.
func readSymlink(dir int, name string) (target string, owner uint32, ok bool, err error) {
	fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", 0, false, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return "", 0, false, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return "", 0, false, nil
	}
	target, err = readlinkAt(fd, "")
	return target, st.Uid, err == nil, err
}
