package peercred

import (
	"encoding/binary"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// listeningAt reports whether a listening Unix-domain socket of our network
// namespace is bound to the file with device dev and inode ino (a stat(2)
// of a socket file), from the kernel's table of sockets: a NETLINK_SOCK_DIAG
// dump of the listening AF_UNIX sockets with UNIX_DIAG_VFS, the device and
// inode of the file each is bound to. Unlike a connect(2) to the file, it
// reaches no server, so a server that prints its clients does not see one.
//
// A true answer is exact: a socket holds the file it is bound to, whose
// inode number no other file can then take. A false answer is not "stale":
// a socket bound in another network namespace, where the file is shared
// through the file system, is not in our table. The caller probes with
// connect(2) then. The kernel reports the inode in 32 bits; two sockets
// whose inodes differ only above that would both read as in use.
func listeningAt(dev, ino uint64) (bool, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return false, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)

	// struct nlmsghdr, then struct unix_diag_req (linux/unix_diag.h):
	// family, protocol, 2 bytes of padding, states, ino, show, cookie[2].
	const reqLen = unix.SizeofNlMsghdr + 24
	const seq = 1
	var req [reqLen]byte
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], reqLen)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	req[16] = unix.AF_UNIX
	ne.PutUint32(req[20:], 1<<tcpListen)
	ne.PutUint32(req[28:], udiagShowVFS)
	if err := unix.Sendto(fd, req[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return false, os.NewSyscallError("sendto", err)
	}

	want := diagFile{ino: ino, major: unix.Major(dev), minor: unix.Minor(dev)}
	buf := make([]byte, 64<<10) // a dump's datagrams are at most 32 KiB
	for {
		n, from, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return false, os.NewSyscallError("recvfrom", err)
		}
		if sa, ok := from.(*unix.SockaddrNetlink); !ok || sa.Pid != 0 {
			continue // not from the kernel
		}
		if found, done, err := want.scan(buf[:n], seq); found || done || err != nil {
			return found, err
		}
	}
}

// diagFile is the socket file listeningAt looks for.
type diagFile struct {
	ino          uint64
	major, minor uint32
}

// scan reads one datagram of a sock_diag dump answering the request seq.
// found: a listening socket bound to the file is in it; done: the dump
// ended without one.
func (f diagFile) scan(b []byte, seq uint32) (found, done bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		// struct nlmsghdr: len, type, flags, seq, pid.
		if len(b) < unix.SizeofNlMsghdr {
			return false, false, fmt.Errorf("sock_diag: %d bytes left over after the last message", len(b))
		}
		l := int(ne.Uint32(b[0:]))
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return false, false, fmt.Errorf("sock_diag: message of %d bytes in %d", l, len(b))
		}
		typ, data := ne.Uint16(b[4:]), b[unix.SizeofNlMsghdr:l]
		mseq := ne.Uint32(b[8:])
		b = b[min(nlAlign(l), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_DONE:
			return false, true, nil
		case unix.NLMSG_ERROR:
			if len(data) >= 4 {
				if errno := -int32(ne.Uint32(data)); errno != 0 {
					return false, false, os.NewSyscallError("sock_diag", unix.Errno(errno))
				}
			}
			return false, false, fmt.Errorf("sock_diag: malformed error message")
		case unix.SOCK_DIAG_BY_FAMILY:
			vino, vdev, ok := diagVFS(data)
			if ok && uint64(vino) == f.ino&0xffffffff && vdev>>20 == f.major && vdev&0xfffff == f.minor {
				return true, false, nil
			}
		}
	}
	return false, false, nil
}

// nlAlign rounds a netlink length up to the 4-byte alignment of messages
// and attributes.
func nlAlign(n int) int { return (n + 3) &^ 3 }

// From linux/unix_diag.h and linux/tcp_states.h (not in x/sys/unix).
const (
	tcpListen    = 10  // TCP_LISTEN: sock_diag's state of a listening socket, Unix-domain ones too
	udiagShowVFS = 0x2 // UDIAG_SHOW_VFS: ask for UNIX_DIAG_VFS
	unixDiagVFS  = 1   // UNIX_DIAG_VFS: struct unix_diag_vfs { u32 ino; u32 dev; }
)

// diagVFS returns the UNIX_DIAG_VFS attribute of one sock_diag answer (a
// struct unix_diag_msg of 16 bytes, then attributes): the inode and the
// device, in the kernel's internal encoding (major << 20 | minor).
func diagVFS(b []byte) (ino, dev uint32, ok bool) {
	const msgLen = 16
	if len(b) < msgLen {
		return 0, 0, false
	}
	ne := binary.NativeEndian
	for b = b[msgLen:]; len(b) >= unix.SizeofNlAttr; {
		l := int(ne.Uint16(b[0:]))
		if l < unix.SizeofNlAttr || l > len(b) {
			return 0, 0, false
		}
		if ne.Uint16(b[2:]) == unixDiagVFS && l >= unix.SizeofNlAttr+8 {
			v := b[unix.SizeofNlAttr:]
			return ne.Uint32(v[0:]), ne.Uint32(v[4:]), true
		}
		b = b[min(nlAlign(l), len(b)):]
	}
	return 0, 0, false
}
