//go:build unix

// Package scm builds and parses the control messages of Unix-domain sockets
// (SCM_RIGHTS and friends). It is the one place in peercred that walks a
// control-message buffer, and it is written so that no descriptor the kernel
// installed can be lost: every parse returns all the descriptors it found,
// even when it also returns an error, so the caller can close them.
package scm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// MaxRights is the kernel's limit of descriptors in one SCM_RIGHTS message
// (SCM_MAX_FD on Linux).
const MaxRights = 253

// Space returns the buffer size needed to receive n descriptors.
func Space(n int) int { return unix.CmsgSpace(n * 4) }

// Rights returns an SCM_RIGHTS control message carrying fds.
func Rights(fds ...int) []byte { return unix.UnixRights(fds...) }

// AppendRights appends an SCM_RIGHTS control message carrying fds to dst,
// as Rights makes it; with room in dst, it allocates nothing.
func AppendRights(dst []byte, fds ...int) []byte {
	start := len(dst)
	n := unix.CmsgSpace(4 * len(fds))
	for range n {
		dst = append(dst, 0)
	}
	var h unix.Cmsghdr
	h.Level = unix.SOL_SOCKET
	h.Type = unix.SCM_RIGHTS
	h.SetLen(unix.CmsgLen(4 * len(fds)))
	copy(dst[start:], unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr))
	data := dst[start+unix.CmsgLen(0):]
	for i, fd := range fds {
		binary.NativeEndian.PutUint32(data[4*i:], uint32(int32(fd)))
	}
	return dst
}

// Message is one control message other than SCM_RIGHTS.
type Message struct {
	Level, Type int32
	Data        []byte // aliases the buffer passed to Parse
}

// Parse walks the control messages in oob, as returned by recvmsg(2). It
// returns every descriptor of every SCM_RIGHTS message and the other
// messages in order. On a malformed buffer it returns an error together with
// the descriptors found up to that point; the caller must close them.
func Parse(oob []byte) (fds []int, other []Message, err error) {
	hdrLen := unix.CmsgLen(0)
	for len(oob) > 0 {
		if len(oob) < hdrLen {
			return fds, other, fmt.Errorf("scm: %d trailing bytes, shorter than a header", len(oob))
		}
		// Copy the header out: oob need not be aligned.
		var h unix.Cmsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr), oob)
		l := int(h.Len)
		if uint64(h.Len) > uint64(len(oob)) || l < hdrLen {
			return fds, other, fmt.Errorf("scm: control message length %d out of range [%d, %d]", h.Len, hdrLen, len(oob))
		}
		data := oob[hdrLen:l]
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS {
			if len(data)%4 != 0 {
				return fds, other, fmt.Errorf("scm: SCM_RIGHTS payload of %d bytes", len(data))
			}
			for i := 0; i+4 <= len(data); i += 4 {
				fds = append(fds, int(int32(binary.NativeEndian.Uint32(data[i:]))))
			}
		} else {
			other = append(other, Message{Level: h.Level, Type: h.Type, Data: data})
		}
		next := unix.CmsgSpace(l - hdrLen)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return fds, other, nil
}

// CloseAll closes every descriptor in fds, ignoring errors.
func CloseAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// ErrTruncated reports a message whose control data did not fit: the kernel
// dropped descriptors (MSG_CTRUNC), because the buffer was too small or the
// receiver is at its RLIMIT_NOFILE.
var ErrTruncated = errors.New("control message truncated (MSG_CTRUNC): descriptors were dropped")

// WithFDs calls fn with the descriptors of files, in order, holding each
// through its RawConn.Control so that none can be closed (and its number
// reused) meanwhile, and without changing its blocking mode as File.Fd
// would.
func WithFDs(files []*os.File, fn func(fds []int) error) error {
	return withFDs(files, make([]int, 0, len(files)), fn)
}

func withFDs(files []*os.File, fds []int, fn func([]int) error) error {
	if len(files) == 0 {
		return fn(fds)
	}
	if files[0] == nil {
		return errors.New("nil *os.File among the descriptors to send")
	}
	rc, err := files[0].SyscallConn()
	if err != nil {
		return fmt.Errorf("%s: %w", files[0].Name(), err)
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		ferr = withFDs(files[1:], append(fds, int(fd)), fn)
	}); err != nil {
		return fmt.Errorf("%s: %w", files[0].Name(), err)
	}
	return ferr
}
