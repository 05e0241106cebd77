//go:build linux

package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/scm"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// msgConn carries wire messages over one SOCK_SEQPACKET connection: one
// message per datagram, descriptors attached. Reads are done by one goroutine
// at a time; writes may come from any number (the kernel keeps each datagram
// whole).
//
// The receive buffer, large enough for the biggest message, is taken from a
// pool only while a datagram is being read, not while the reader waits: an
// idle worker costs the parent no buffer.
type msgConn struct {
	c   *peercred.Conn
	rc  syscall.RawConn
	lim wire.Limits
	wto time.Duration // write timeout; 0: writeTimeout

	// Reader state: one read at a time. readFn is bound once, so that
	// RawConn.Read costs no closure allocation.
	readFn func(fd uintptr) bool
	rbuf   *[]byte
	oob    []byte
	rn     int
	roobn  int
	rflags int
	rerr   error

	wpool sync.Pool // *[]byte encode buffers
}

// bufPools holds receive buffers by size (one size per wire.Limits).
var bufPools sync.Map // int -> *sync.Pool of *[]byte

func bufPool(size int) *sync.Pool {
	if p, ok := bufPools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := bufPools.LoadOrStore(size, &sync.Pool{New: func() any {
		b := make([]byte, size)
		return &b
	}})
	return p.(*sync.Pool)
}

func newMsgConn(c *peercred.Conn, lim wire.Limits) (*msgConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	mc := &msgConn{
		c:   c,
		rc:  rc,
		lim: lim,
		// Room for one more descriptor than allowed, so that too many
		// arrive as a count we can refuse rather than only MSG_CTRUNC,
		// and for SCM_CREDENTIALS.
		oob: make([]byte, scm.Space(lim.MaxFiles+1)+unix.CmsgSpace(unix.SizeofUcred)),
	}
	mc.readFn = mc.recv
	return mc, nil
}

// recv is the RawConn.Read callback: one recvmsg(2), false to wait for the
// socket to become readable.
func (mc *msgConn) recv(fd uintptr) bool {
	if mc.rbuf == nil {
		mc.rbuf = bufPool(mc.lim.BufferSize()).Get().(*[]byte)
	}
	buf := *mc.rbuf
	var iov unix.Iovec
	iov.Base = &buf[0]
	iov.SetLen(len(buf))
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	msg.Control = &mc.oob[0]
	msg.SetControllen(len(mc.oob))
	for {
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
		switch e {
		case 0:
			mc.rn, mc.roobn, mc.rflags, mc.rerr = int(n), int(msg.Controllen), int(msg.Flags), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			// Nothing yet: hold no buffer while waiting.
			bufPool(mc.lim.BufferSize()).Put(mc.rbuf)
			mc.rbuf = nil
			return false
		default:
			mc.rn, mc.roobn, mc.rflags, mc.rerr = 0, 0, 0, os.NewSyscallError("recvmsg", e)
			return true
		}
	}
}

// inMsg is a decoded message with what came with it. Payload aliases the
// connection's read buffer until the next read.
type inMsg struct {
	wire.Msg
	Files []*os.File
	Cred  *unix.Ucred // SCM_CREDENTIALS, when SO_PASSCRED is on
}

// closeFiles closes the descriptors of m.
func (m *inMsg) closeFiles() {
	for _, f := range m.Files {
		if f != nil {
			f.Close()
		}
	}
	m.Files = nil
}

// protocolError is a violation by the peer: the connection must be dropped.
type protocolError struct{ err error }

func (e *protocolError) Error() string { return e.err.Error() }
func (e *protocolError) Unwrap() []error {
	return []error{ErrProtocol, e.err}
}

func violation(format string, args ...any) error {
	return &protocolError{fmt.Errorf(format, args...)}
}

// read receives and decodes one message. Every descriptor that arrived is
// either in the returned message or closed. The payload is the message's
// own. io.EOF means the peer closed the connection; a *protocolError means it
// broke the protocol.
func (mc *msgConn) read() (inMsg, error) {
	err := mc.rc.Read(mc.readFn)
	if err == nil {
		err = mc.rerr
	}
	defer func() {
		if mc.rbuf != nil {
			bufPool(mc.lim.BufferSize()).Put(mc.rbuf)
			mc.rbuf = nil
		}
	}()
	n, oobn, flags := mc.rn, mc.roobn, mc.rflags
	if err != nil {
		n, oobn, flags = 0, 0, 0
	}
	fds, other, perr := scm.Parse(mc.oob[:oobn])
	fail := func(err error) (inMsg, error) {
		scm.CloseAll(fds)
		return inMsg{}, err
	}
	switch {
	case err != nil:
		return fail(err)
	case n == 0 && oobn == 0:
		// A SOCK_SEQPACKET read of 0 bytes is the peer's close: every
		// message of ours is at least a header long.
		return fail(io.EOF)
	case flags&unix.MSG_TRUNC != 0:
		return fail(violation("message larger than %d bytes: %w", mc.lim.BufferSize()-1, wire.ErrTooLarge))
	case flags&unix.MSG_CTRUNC != 0:
		return fail(violation("control data truncated: more than %d descriptors", mc.lim.MaxFiles))
	case perr != nil:
		return fail(violation("control data: %v", perr))
	}
	var m inMsg
	for _, o := range other {
		if o.Level == unix.SOL_SOCKET && o.Type == unix.SCM_CREDENTIALS && len(o.Data) >= unix.SizeofUcred && m.Cred == nil {
			m.Cred = &unix.Ucred{
				Pid: int32(binary.NativeEndian.Uint32(o.Data[0:])),
				Uid: binary.NativeEndian.Uint32(o.Data[4:]),
				Gid: binary.NativeEndian.Uint32(o.Data[8:]),
			}
			continue
		}
		return fail(violation("unexpected control message (level %d, type %d)", o.Level, o.Type))
	}
	if len(fds) > mc.lim.MaxFiles {
		return fail(violation("%d descriptors in one message, limit %d", len(fds), mc.lim.MaxFiles))
	}
	msg, err := wire.Decode((*mc.rbuf)[:n], len(fds), mc.lim)
	if err != nil {
		return fail(violation("%w", err))
	}
	if len(msg.Payload) > 0 {
		msg.Payload = append([]byte(nil), msg.Payload...) // the buffer goes back to the pool
	}
	m.Msg = msg
	if len(fds) > 0 {
		m.Files = make([]*os.File, len(fds))
		for i, fd := range fds {
			m.Files[i] = os.NewFile(uintptr(fd), "received")
		}
	}
	return m, nil
}

// write encodes and sends m with files. It does not close files.
func (mc *msgConn) write(m *wire.Msg, files []*os.File) error {
	bp, _ := mc.wpool.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 256)
		bp = &b
	}
	defer func() {
		if cap(*bp) <= 64<<10 {
			mc.wpool.Put(bp)
		}
	}()
	m.NFiles = len(files)
	b, err := wire.Append((*bp)[:0], m, mc.lim)
	*bp = b[:0]
	if err != nil {
		return err
	}
	// A peer that stops reading fills its socket buffer and would block
	// the writer for good: every write has a deadline. Concurrent writers
	// each push it forward, so it fires only when no write has gone
	// through for writeTimeout.
	wto := mc.wto
	if wto <= 0 {
		wto = writeTimeout
	}
	mc.c.SetWriteDeadline(time.Now().Add(wto))
	if len(files) == 0 {
		_, err = mc.c.Write(b)
	} else {
		_, err = mc.c.WriteWithFiles(b, files...)
	}
	return err
}

// writeTimeout bounds how long a message may wait for the peer to make room,
// unless Config.WriteTimeout says otherwise.
var writeTimeout = 5 * time.Second

// setPassCred turns SO_PASSCRED on or off. It is on only while the parent
// waits for a spawned worker's hello: on a socket that sends while it is on
// and unbound, the kernel would autobind it to an abstract name.
func (mc *msgConn) setPassCred(on bool) error {
	rc, err := mc.c.SyscallConn()
	if err != nil {
		return err
	}
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, v)
	}); err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt SO_PASSCRED", serr)
}

func (mc *msgConn) close() error { return mc.c.Close() }

// closeAll closes every non-nil file.
func closeAll(files []*os.File) {
	for _, f := range files {
		if f != nil {
			f.Close()
		}
	}
}

// isEOF reports whether err is the peer closing the connection.
func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, os.ErrClosed) || errors.Is(err, net.ErrClosed)
}
