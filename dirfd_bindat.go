//go:build freebsd

package peercred

import (
	"context"
	"fmt"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FreeBSD binds and connects relative to a directory descriptor with
// bindat(2) and connectat(2) (since 10.0): nobody can redirect them.

// maxBindName is the longest name bindIn binds in place: bindat takes the
// name alone, so any that checkPathLen lets through.
const maxBindName = len(unix.RawSockaddrUnix{}.Path) - 1

// bindIn listens on name in the directory dir; nothing may exist there.
func bindIn(ctx context.Context, network string, dir int, dirPath, name string) (*net.UnixListener, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fd, err := socketAt(unix.SYS_BINDAT, network, dir, name)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Addr: &net.UnixAddr{Name: dirPath + name, Net: network}, Err: err}
	}
	if err := unix.Listen(fd, listenBacklog()); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("listen", err)
	}
	f := os.NewFile(uintptr(fd), dirPath+name)
	l, err := net.FileListener(f) // a duplicate of fd, in the runtime's poller
	f.Close()
	if err != nil {
		return nil, err
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("bindat: %T is not a Unix listener", l)
	}
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// probeIn connects to name in the directory dir and hangs up: nil means a
// process accepts connections there. The socket is non-blocking: a
// connection that cannot complete at once (EAGAIN, a full backlog) is an
// error, which Listen reads as "cannot tell", never as stale.
func probeIn(ctx context.Context, network string, dir int, _, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fd, err := socketAt(unix.SYS_CONNECTAT, network, dir, name)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// socketAt makes a close-on-exec, non-blocking socket of network and calls
// bindat or connectat (call) with it on name in dir. It returns the socket,
// which the caller closes, or closes it itself on error.
func socketAt(call uintptr, network string, dir int, name string) (int, error) {
	typ := unix.SOCK_STREAM
	if network == "unixpacket" {
		typ = unix.SOCK_SEQPACKET
	}
	var sa unix.RawSockaddrUnix
	if len(name) == 0 || len(name) >= len(sa.Path) {
		return -1, fmt.Errorf("socket name %q: %w (at most %d bytes)", name, unix.ENAMETOOLONG, len(sa.Path)-1)
	}
	sa.Len = uint8(3 + len(name)) // Len, Family, the name and its NUL
	sa.Family = unix.AF_UNIX
	for i := 0; i < len(name); i++ {
		sa.Path[i] = int8(name[i])
	}
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	_, _, errno := unix.Syscall6(call, uintptr(dir), uintptr(fd), uintptr(unsafe.Pointer(&sa)), uintptr(sa.Len), 0, 0)
	if errno != 0 {
		unix.Close(fd)
		op := "bindat"
		if call == unix.SYS_CONNECTAT {
			op = "connectat"
		}
		return -1, os.NewSyscallError(op, errno)
	}
	return fd, nil
}

// listenBacklog is the backlog Go's net package uses on FreeBSD.
func listenBacklog() int {
	n, err := unix.SysctlUint32("kern.ipc.soacceptqueue")
	if n == 0 || err != nil {
		return unix.SOMAXCONN
	}
	if n > 1<<16-1 {
		n = 1<<16 - 1
	}
	return int(n)
}
