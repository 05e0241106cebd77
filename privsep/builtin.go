//go:build linux

package privsep

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// Open flags a worker may use without a rule allowing more: they change
// nothing about what the descriptor can do.
const harmlessFlags = syscall.O_CLOEXEC | syscall.O_NOFOLLOW | syscall.O_NONBLOCK | syscall.O_NOCTTY | syscall.O_LARGEFILE

// open serves the built-in "open" operation.
func (ss *session) open(req *Request) ([]byte, []*os.File, error) {
	path, flag, err := wire.DecodeOpen(req.Payload)
	if err != nil || len(req.Files) != 0 {
		return nil, nil, fmt.Errorf("%w: open: %v", ErrBadRequest, err)
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return nil, nil, fmt.Errorf("%w: open %q: path must be absolute and clean", ErrDenied, path)
	}
	for i, r := range ss.policy.Open {
		rel, ok := r.match(path)
		if !ok {
			continue
		}
		if !flagsAllowed(flag, r.Flags) {
			return nil, nil, fmt.Errorf("%w: open %q: flags %#x not allowed (rule allows %#x)", ErrDenied, path, flag, r.Flags)
		}
		if r.Once {
			if why := ss.takeOnce(fmt.Sprintf("open:%d", i)); why != "" {
				return nil, nil, fmt.Errorf("%w: open %q: %s", ErrDenied, path, why)
			}
		}
		f, err := openBeneath(r, rel, flag)
		if err != nil {
			return nil, nil, err
		}
		return nil, []*os.File{f}, nil
	}
	return nil, nil, fmt.Errorf("%w: open %q: no rule of role %q allows it", ErrDenied, path, ss.peer.Role)
}

// match reports whether path falls under r, and the path to open relative
// to the directory the rule is resolved in.
func (r *OpenRule) match(path string) (rel string, ok bool) {
	if !r.Beneath {
		return filepath.Base(r.Path), path == r.Path
	}
	if path == r.Path {
		return ".", true
	}
	rel, ok = strings.CutPrefix(path, strings.TrimSuffix(r.Path, "/")+"/")
	return rel, ok && rel != ""
}

// openBeneath opens rel inside the rule's directory (for a file rule, its
// parent) with os.Root, which refuses ".." and symbolic links that lead out.
func openBeneath(r OpenRule, rel string, flag int) (*os.File, error) {
	dir := r.Path
	if !r.Beneath {
		dir = filepath.Dir(r.Path)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", filepath.Join(dir, rel), err)
	}
	defer root.Close()
	// O_NONBLOCK so that a FIFO (or device) the worker planted cannot
	// hang the parent in open(2); O_NOCTTY so that a terminal cannot
	// become ours. Only regular files are handed out.
	name := filepath.Join(dir, rel)
	f, err := root.OpenFile(rel, flag|syscall.O_CLOEXEC|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open %q: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: open %q: not a regular file (%v)", ErrDenied, name, fi.Mode().Type())
	}
	if flag&syscall.O_NONBLOCK == 0 {
		f.Fd() // puts the descriptor back in blocking mode, as asked
	}
	return f, nil
}

// flagsAllowed reports whether the open flags asked for are within allowed.
func flagsAllowed(flag, allowed int) bool {
	switch flag & syscall.O_ACCMODE {
	case syscall.O_RDONLY:
	case syscall.O_WRONLY:
		if a := allowed & syscall.O_ACCMODE; a != syscall.O_WRONLY && a != syscall.O_RDWR {
			return false
		}
	case syscall.O_RDWR:
		if allowed&syscall.O_ACCMODE != syscall.O_RDWR {
			return false
		}
	default:
		return false
	}
	extra := flag &^ syscall.O_ACCMODE &^ harmlessFlags
	return extra&^allowed == 0
}

// listen serves the built-in "listen" operation.
func (ss *session) listen(req *Request) ([]byte, []*os.File, error) {
	network, address, err := wire.DecodeListen(req.Payload)
	if err != nil || len(req.Files) != 0 {
		return nil, nil, fmt.Errorf("%w: listen: %v", ErrBadRequest, err)
	}
	for i, r := range ss.policy.Listen {
		if r.Network != network || r.Address != address {
			continue
		}
		if r.Once {
			if why := ss.takeOnce(fmt.Sprintf("listen:%d", i)); why != "" {
				return nil, nil, fmt.Errorf("%w: listen %q %q: %s", ErrDenied, network, address, why)
			}
		}
		f, err := listenFile(network, address)
		if err != nil {
			return nil, nil, err
		}
		return nil, []*os.File{f}, nil
	}
	return nil, nil, fmt.Errorf("%w: listen %q %q: no rule of role %q allows it", ErrDenied, network, address, ss.peer.Role)
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
