package peercred

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// activate takes the descriptors the activator passed to this process,
// numbered from first on, checks them, and wraps each in a Listener. want is
// the number of descriptors the caller takes, or 0 for any number.
func (lc *ListenConfig) activate(first, want int) ([]activatedListener, error) {
	env := takeActivationEnv()
	n, err := env.count(os.Getpid())
	if err != nil {
		return nil, activationError(err)
	}
	// The descriptors are ours from here on: none may reach a child, and
	// none stays open when we return an error.
	taken, err := cloexecFDs(first, n)
	fail := func(err error) ([]activatedListener, error) {
		closeFDs(first, taken)
		return nil, activationError(err)
	}
	if err != nil {
		return fail(err)
	}
	names, err := env.fdNames(first, n)
	if err != nil {
		return fail(err)
	}
	if want > 0 && n != want {
		return fail(fmt.Errorf("%s=%d, but ActivationListener takes exactly one socket: use ActivationListeners", envListenFDs, n))
	}
	network, err := lc.network()
	if err != nil {
		return fail(err)
	}
	sotype := unix.SOCK_STREAM
	if network == "unixpacket" {
		sotype = unix.SOCK_SEQPACKET
	}
	for i := range n {
		if err := checkListening(first+i, sotype, network); err != nil {
			return fail(fmt.Errorf("fd %d (%q): %w", first+i, names[i], err))
		}
	}

	ls := make([]activatedListener, 0, n)
	for i := range n {
		fd := first + i
		f := os.NewFile(uintptr(fd), names[i])
		nl, err := net.FileListener(f) // a close-on-exec duplicate
		f.Close()
		if err == nil {
			if ul, ok := nl.(*net.UnixListener); ok {
				ls = append(ls, activatedListener{name: names[i], l: lc.NewListener(ul)})
				continue
			}
			nl.Close()
			err = fmt.Errorf("%T is not a Unix listener", nl)
		}
		for _, a := range ls {
			a.l.Close()
		}
		closeFDs(fd+1, n-i-1)
		return nil, activationError(fmt.Errorf("fd %d (%q): %w", fd, names[i], err))
	}
	return ls, nil
}

// cloexecFDs marks the n descriptors from first on close-on-exec. It stops at
// the first that is not open, and returns how many it marked.
func cloexecFDs(first, n int) (int, error) {
	for i := range n {
		if _, err := unix.FcntlInt(uintptr(first+i), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
			return i, fmt.Errorf("fd %d of %s=%d: %w", first+i, envListenFDs, n, os.NewSyscallError("fcntl", err))
		}
	}
	return n, nil
}

// closeFDs closes the sockets among the n descriptors from first on. A
// LISTEN_FDS that claims more than systemd passed would otherwise make us
// close descriptors the program opened itself; those are never sockets
// from systemd, so non-sockets are left alone (they were only marked
// close-on-exec).
func closeFDs(first, n int) {
	for fd := first; fd < first+n; fd++ {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFSOCK {
			unix.Close(fd)
		}
	}
}

// checkListening returns an error that says what fd is unless it is a
// listening AF_UNIX socket of type sotype.
func checkListening(fd, sotype int, network string) error {
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err == unix.ENOTSOCK {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return errors.New("not a socket")
		}
		return fmt.Errorf("not a socket but %s", fileType(modeType(st.Mode)))
	}
	if err != nil {
		return os.NewSyscallError("getsockopt SO_DOMAIN", err)
	}
	if domain != unix.AF_UNIX {
		return fmt.Errorf("%s socket, not a Unix-domain (AF_UNIX) one", familyName(domain))
	}
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return os.NewSyscallError("getsockopt SO_TYPE", err)
	}
	if typ != sotype {
		return fmt.Errorf("%s socket, want %s one (ListenConfig.Network %q)", typeName(typ), typeName(sotype), network)
	}
	acc, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	if err != nil {
		return os.NewSyscallError("getsockopt SO_ACCEPTCONN", err)
	}
	if acc == 0 {
		return errors.New("socket is not listening (a service with Accept=yes is passed a connection, not a listener)")
	}
	return nil
}

func familyName(domain int) string {
	switch domain {
	case unix.AF_INET:
		return "an AF_INET (IPv4)"
	case unix.AF_INET6:
		return "an AF_INET6 (IPv6)"
	case unix.AF_NETLINK:
		return "an AF_NETLINK"
	case unix.AF_VSOCK:
		return "an AF_VSOCK"
	}
	return fmt.Sprintf("an address family %d", domain)
}

func typeName(sotype int) string {
	switch sotype {
	case unix.SOCK_STREAM:
		return "a SOCK_STREAM"
	case unix.SOCK_DGRAM:
		return "a SOCK_DGRAM"
	case unix.SOCK_SEQPACKET:
		return "a SOCK_SEQPACKET"
	}
	return fmt.Sprintf("a type %d", sotype)
}
