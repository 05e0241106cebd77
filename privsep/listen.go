//go:build linux

package privsep

import (
	"fmt"
	"net"
	"os"

	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// listen serves the built-in "listen" operation.
func (ss *session) listen(req *Request) ([]byte, []*os.File, int, error) {
	network, address, err := wire.DecodeListen(req.Payload)
	if err != nil {
		return nil, nil, -1, fmt.Errorf("%w: listen: %w", ErrBadRequest, err)
	}
	for i, r := range ss.policy.Listen {
		if r.Network != network || r.Address != address {
			continue
		}
		if r.Once {
			if why := ss.takeOnce(onceKey(policyListen, i)); why != "" {
				return nil, nil, -1, fmt.Errorf("%w: listen %q %q: %s", ErrDenied, network, address, why)
			}
		}
		f, err := listenFile(network, address)
		if err != nil {
			return nil, nil, -1, err
		}
		return nil, []*os.File{f}, -1, nil
	}
	return nil, nil, -1, fmt.Errorf("%w: listen %q %q: no rule of role %q allows it", ErrDenied, network, address, ss.peer.Role)
}

// listenFile listens on network and address and returns the socket as a
// file (a close-on-exec duplicate; the listener itself is closed). A Unix
// socket is bound but not listened on: the kernel records a Unix server's
// credentials at listen(2), so the worker listens itself ([Worker.Listen])
// and its clients see the worker, not this parent.
func listenFile(network, address string) (*os.File, error) {
	switch network {
	case "unix":
		return bindUnix(unix.SOCK_STREAM, network, address)
	case "unixpacket":
		return bindUnix(unix.SOCK_SEQPACKET, network, address)
	}
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	type filer interface{ File() (*os.File, error) }
	fl, ok := l.(filer)
	if !ok {
		return nil, fmt.Errorf("listen %s %s: %T has no descriptor", network, address, l)
	}
	if ul, ok := l.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false) // the worker serves on it now
	}
	return fl.File()
}

// bindUnix makes a close-on-exec Unix socket of type typ bound to address
// (a path, or "@name" for an abstract one), not listening.
func bindUnix(typ int, network, address string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: os.NewSyscallError("socket", err)}
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: address}); err != nil {
		unix.Close(fd)
		return nil, &net.OpError{Op: "listen", Net: network, Addr: &net.UnixAddr{Name: address, Net: network}, Err: os.NewSyscallError("bind", err)}
	}
	return os.NewFile(uintptr(fd), address), nil
}
