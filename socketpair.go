//go:build unix && !aix

package peercred

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/peercred/peercred/internal/scm"
	"golang.org/x/sys/unix"
)

// MaxFiles is the largest number of descriptors [Conn.ReadWithFiles] takes
// from one message. A message carrying more is truncated by the kernel: the
// descriptors that arrived are closed and an error is returned.
const MaxFiles = 16

// Socketpair creates a connected pair of Unix-domain sockets of type sotype
// (syscall.SOCK_STREAM, SOCK_SEQPACKET or SOCK_DGRAM), both close-on-exec.
// local is ready to use in this process; remote is an *os.File in blocking
// mode, ready for [os/exec.Cmd.ExtraFiles] (the child then finds it at
// descriptor 3 + its index). The caller owns both and closes remote once the
// child has started.
//
// The kernel records the credentials of the process that calls socketpair(2)
// on both ends, at that moment. [Get] on either end therefore reports this
// process, even after remote was handed to a child that runs as another user:
// a socket pair proves nothing about who holds the other end. To learn who a
// child is, have it send SCM_CREDENTIALS after it has dropped privileges (the
// kernel checks those), or have it connect to a listening socket itself.
func Socketpair(sotype int) (local *Conn, remote *os.File, err error) {
	switch sotype {
	case syscall.SOCK_STREAM, syscall.SOCK_SEQPACKET, syscall.SOCK_DGRAM:
	default:
		return nil, nil, fmt.Errorf("peercred: socketpair: unsupported socket type %d", sotype)
	}
	fds, err := sysSocketpair(sotype)
	if err != nil {
		return nil, nil, fmt.Errorf("peercred: socketpair: %w", err)
	}
	remote = os.NewFile(uintptr(fds[1]), "socketpair")
	lf := os.NewFile(uintptr(fds[0]), "socketpair")
	local, err = FileConn(lf) // dups the descriptor (close-on-exec) into the poller
	lf.Close()
	if err != nil {
		remote.Close()
		return nil, nil, fmt.Errorf("peercred: socketpair: %w", err)
	}
	return local, remote, nil
}

// WriteWithFiles sends b and, in the same message, the descriptors of files
// (SCM_RIGHTS). The receiver gets its own descriptors for the same open
// files; the caller keeps files and may close them once WriteWithFiles has
// returned. b must not be empty when files are sent: on a stream socket the
// descriptors travel with the first byte.
func (c *Conn) WriteWithFiles(b []byte, files ...*os.File) (int, error) {
	if len(files) == 0 {
		return c.UnixConn.Write(b)
	}
	if len(b) == 0 {
		return 0, errors.New("peercred: write with files: descriptors need at least one byte of data")
	}
	if len(files) > scm.MaxRights {
		return 0, fmt.Errorf("peercred: write with files: %d descriptors, the kernel takes at most %d", len(files), scm.MaxRights)
	}
	var n int
	var werr error
	if err := scm.WithFDs(files, func(fds []int) error {
		n, _, werr = c.UnixConn.WriteMsgUnix(b, scm.Rights(fds...), nil)
		return nil
	}); err != nil {
		return 0, fmt.Errorf("peercred: write with files: %w", err)
	}
	return n, werr
}

// ReadWithFiles reads one message into b, with the descriptors sent along
// with it (at most [MaxFiles]), received close-on-exec (MSG_CMSG_CLOEXEC).
// The caller owns the returned files. If the control data was truncated
// (MSG_CTRUNC: too many descriptors, or this process is at its
// RLIMIT_NOFILE) or cannot be parsed, or the message itself was longer than
// b (MSG_TRUNC, on datagram and seqpacket sockets), every descriptor that did
// arrive is closed and an error returned.
func (c *Conn) ReadWithFiles(b []byte) (n int, files []*os.File, err error) {
	oob := make([]byte, scm.Space(MaxFiles))
	n, oobn, flags, _, err := c.UnixConn.ReadMsgUnix(b, oob)
	fds, other, perr := scm.Parse(oob[:oobn])
	switch {
	case err != nil:
	case flags&unix.MSG_CTRUNC != 0:
		err = scm.ErrTruncated
	case flags&unix.MSG_TRUNC != 0:
		// A datagram or seqpacket message longer than b: the rest is lost.
		err = fmt.Errorf("message truncated (MSG_TRUNC): longer than the %d-byte buffer", len(b))
	case perr != nil:
		err = perr
	case len(other) > 0:
		err = fmt.Errorf("unexpected control message (level %d, type %d)", other[0].Level, other[0].Type)
	}
	if err != nil {
		scm.CloseAll(fds)
		if len(fds) > 0 || oobn > 0 {
			err = fmt.Errorf("peercred: read with files: %w", err)
		}
		return n, nil, err
	}
	if len(fds) > 0 {
		files = make([]*os.File, len(fds))
		for i, fd := range fds {
			files[i] = os.NewFile(uintptr(fd), "received")
		}
	}
	return n, files, nil
}
