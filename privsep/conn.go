//go:build linux

package privsep

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/scm"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// msgConn carries wire messages over one SOCK_SEQPACKET connection: one
// message per datagram, descriptors attached. After the handshake the
// socket is outside Go's poller (fastpath.go): the reader waits in recv
// itself, or parks the connection: rd, the one way in which it is read. One
// goroutine reads at a time; writes may come from any number (the kernel
// keeps each datagram whole).
//
// The receive buffer, large enough for the biggest message, is taken from a
// pool for each read: an idle connection holds none.
type msgConn struct {
	// During the handshake (until detach): the connection in Go's poller.
	hs  *peercred.Conn
	hrc syscall.RawConn

	sk  sock
	key uint32  // in the parker
	rd  reader  // the turn to read, from detach on (fastpath.go)
	np  netpoll // the holder's: the connection in Go's poller, if it is (reader.pollRecv)
	lim wire.Limits
	wto time.Duration // write timeout; 0: writeTimeout

	rpool *sync.Pool    // bufPool for lim, from detach on (lim is final then)
	wpool sync.Pool     // *[]byte encode buffers
	sent  atomic.Uint64 // messages sent: progress, for the write timeout
}

// bufPools holds receive buffers by size.
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

// oobSize is the control buffer for lim: room for one more descriptor than
// allowed, so that too many arrive as a count we can refuse rather than only
// MSG_CTRUNC, and for SCM_CREDENTIALS.
func oobSize(lim wire.Limits) int {
	return scm.Space(lim.MaxFiles+1) + unix.CmsgSpace(unix.SizeofUcred)
}

// newMsgConn takes c over. Until detach, the connection stays in Go's
// poller for the handshake: a handshake waits for a process to start, and a
// thread blocked in poll(2) meanwhile only makes the start slower. Only
// readBefore, write, setPassCred and release may be used until then. On
// error c is closed.
func newMsgConn(c *peercred.Conn, lim wire.Limits) (*msgConn, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		c.Close()
		return nil, err
	}
	mc := &msgConn{hs: c, hrc: rc, lim: lim}
	mc.sk.fd, mc.sk.gone = -1, true // until detach
	return mc, nil
}

// detach moves the connection to the hot path once the handshake is done:
// its descriptor leaves Go's poller (the connection lives on in a
// duplicate) and is registered, disarmed, with the parker. On error the
// connection is closed.
func (mc *msgConn) detach() error {
	c := mc.hs
	mc.hs, mc.hrc = nil, nil
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(cfd uintptr) {
		fd, derr = unix.FcntlInt(cfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return err
	}
	if derr != nil {
		return os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr)
	}
	// The file description is ours alone now: blocking mode, so that a
	// reader waits in recvmsg itself (one system call, not poll and
	// recvmsg), for at most hotWait at a time. Whatever must not wait
	// says MSG_DONTWAIT.
	tv := unix.NsecToTimeval(hotWait.Nanoseconds())
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("fcntl", err)
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
	}
	mc.rd.mc = mc
	if err = parking.add(&mc.rd, fd); err != nil {
		unix.Close(fd)
		return err
	}
	mc.sk.fd, mc.sk.refs, mc.sk.gone = fd, 1, false
	mc.rpool = bufPool(mc.lim.BufferSize() + oobSize(mc.lim))
	return nil
}

// recv reads one message; ok is false if none is there. If wait is true it
// waits for one, up to hotWait (the socket's SO_RCVTIMEO), in recvmsg
// itself. Every descriptor that arrived is either in the message or closed.
// The payload is the message's own. io.EOF means the peer closed the
// connection; a *protocolError means it broke the protocol.
func (mc *msgConn) recv(wait bool) (m inMsg, ok bool, err error) {
	fd, err := mc.sk.get()
	if err != nil {
		return m, true, err
	}
	defer mc.sk.put()
	return mc.recvFD(fd, wait)
}

func (mc *msgConn) recvFD(fd int, wait bool) (m inMsg, ok bool, err error) {
	size := mc.lim.BufferSize()
	pool := mc.rpool
	if pool == nil { // in the handshake
		pool = bufPool(size + oobSize(mc.lim))
	}
	bp := pool.Get().(*[]byte)
	buf, oob := (*bp)[:size], (*bp)[size:]
	n, oobn, flags, e := recvmsg(fd, buf, oob, wait)
	if e == unix.EAGAIN {
		pool.Put(bp)
		return m, false, nil
	}
	if e != nil {
		err = os.NewSyscallError("recvmsg", e)
		n, oobn, flags = 0, 0, 0
	}
	m, err = mc.decode(buf[:n], oob[:oobn], flags, err)
	pool.Put(bp)
	return m, true, err
}

// recvmsg is one recvmsg(2) with MSG_CMSG_CLOEXEC, and MSG_DONTWAIT unless
// wait, retried on EINTR; it allocates nothing.
func recvmsg(fd int, buf, oob []byte, wait bool) (n, oobn, flags int, err error) {
	how := uintptr(unix.MSG_CMSG_CLOEXEC | unix.MSG_DONTWAIT)
	if wait {
		how = unix.MSG_CMSG_CLOEXEC
	}
	var iov unix.Iovec
	iov.Base = &buf[0]
	iov.SetLen(len(buf))
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	msg.Control = &oob[0]
	msg.SetControllen(len(oob))
	for {
		r, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), how)
		switch e {
		case 0:
			return int(r), int(msg.Controllen), int(msg.Flags), nil
		case unix.EINTR:
			continue
		}
		return 0, 0, 0, e
	}
}

// errCanceled is readBefore's error when its context ended.
var errCanceled = errors.New("canceled")

// readBefore reads one message during the handshake, waiting until
// deadline (zero: no limit) or until ctx ends.
func (mc *msgConn) readBefore(ctx context.Context, deadline time.Time) (inMsg, error) {
	mc.hs.SetReadDeadline(deadline)
	defer mc.hs.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { mc.hs.SetReadDeadline(time.Now()) })
	defer stop()
	var m inMsg
	var rerr error
	err := mc.hrc.Read(func(fd uintptr) bool {
		var ok bool
		m, ok, rerr = mc.recvFD(int(fd), false)
		return ok
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		m.closeFiles()
		if ctx.Err() != nil {
			return inMsg{}, errCanceled
		}
		return inMsg{}, err
	}
	return m, nil
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

// decode decodes the datagram in buf with its control data oob, as recvmsg
// left them, closing every descriptor on error. The payload is copied out.
func (mc *msgConn) decode(buf, oob []byte, flags int, err error) (inMsg, error) {
	fds, other, perr := scm.Parse(oob)
	fail := func(err error) (inMsg, error) {
		scm.CloseAll(fds)
		return inMsg{}, err
	}
	switch {
	case err != nil:
		return fail(err)
	case len(buf) == 0 && len(oob) == 0:
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
	msg, err := wire.Decode(buf, len(fds), mc.lim)
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
	if mc.hs != nil {
		// The handshake's hello, or the parent's refusal of it.
		mc.hs.SetWriteDeadline(time.Now().Add(mc.sendTimeout()))
		_, err := mc.hs.WriteWithFiles(b, files...)
		return err
	}
	if len(files) == 0 {
		return mc.send(b, nil)
	}
	return scm.WithFDs(files, func(fds []int) error {
		return mc.send(b, scm.Rights(fds...))
	})
}

// writeFD is write with the one descriptor fd, which needs no *os.File (a
// built-in operation's). It does not close fd.
func (mc *msgConn) writeFD(m *wire.Msg, fd int) error {
	if mc.hs != nil {
		return errors.New("writeFD during the handshake")
	}
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
	m.NFiles = 1
	b, err := wire.Append((*bp)[:0], m, mc.lim)
	*bp = b[:0]
	if err != nil {
		return err
	}
	var oob [32]byte // an SCM_RIGHTS message of one descriptor: 24 bytes
	return mc.send(b, scm.AppendRights(oob[:0], fd))
}

// writeNow sends m if the socket has room for it now, and otherwise does
// not wait: for a message the peer may miss, such as Stop to a peer whose
// session ends anyway.
func (mc *msgConn) writeNow(m *wire.Msg) error {
	b, err := wire.Append(nil, m, mc.lim)
	if err != nil {
		return err
	}
	fd, err := mc.sk.get()
	if err != nil {
		return err
	}
	defer mc.sk.put()
	for {
		err := unix.Sendmsg(fd, b, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if err != unix.EINTR {
			return os.NewSyscallError("sendmsg", err)
		}
	}
}

// send is one sendmsg(2). A peer that stops reading fills its socket
// buffer: then the sender waits in Go's poller (a blocked sender holds no
// thread, however many there are), and fails with os.ErrDeadlineExceeded
// once no message has gone through on the connection for the write
// timeout.
func (mc *msgConn) send(b, oob []byte) error {
	fd, err := mc.sk.get()
	if err != nil {
		return err
	}
	defer mc.sk.put()
	var deadline time.Time
	var seen uint64
	for {
		err := unix.Sendmsg(fd, b, oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch err {
		case nil:
			mc.sent.Add(1)
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
		default:
			return os.NewSyscallError("sendmsg", err)
		}
		wto := mc.sendTimeout()
		if n := mc.sent.Load(); deadline.IsZero() || n != seen {
			seen, deadline = n, time.Now().Add(wto) // progress: wait on
		} else if !time.Now().Before(deadline) {
			return os.ErrDeadlineExceeded
		}
		if err := mc.awaitWritable(fd, deadline); err != nil && err != context.DeadlineExceeded {
			return err
		}
	}
}

// awaitWritable waits until fd can take a message, or deadline. The
// descriptor itself is in the parker already: a duplicate waits.
func (mc *msgConn) awaitWritable(fd int, deadline time.Time) error {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	defer unix.Close(dup)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	return parking.await(ctx, dup, unix.EPOLLOUT)
}

// writeTimeout bounds how long a message may wait for the peer to make room,
// unless Config.WriteTimeout says otherwise.
var writeTimeout = 5 * time.Second

func (mc *msgConn) sendTimeout() time.Duration {
	if mc.wto > 0 {
		return mc.wto
	}
	return writeTimeout
}

// setPassCred turns SO_PASSCRED on or off. It is on only while the parent
// waits for a spawned worker's hello: on a socket that sends while it is on
// and unbound, the kernel would autobind it to an abstract name.
func (mc *msgConn) setPassCred(on bool) error {
	v := 0
	if on {
		v = 1
	}
	var serr error
	if err := mc.hrc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, v)
	}); err != nil {
		return err
	}
	return os.NewSyscallError("setsockopt SO_PASSCRED", serr)
}

// close shuts the connection down: the reader wakes and reads end of file,
// as does the peer. The descriptor stays until release.
func (mc *msgConn) close() { mc.sk.shutdown() }

// release takes the connection out of the parker and lets go of it: the
// descriptor is closed once no system call is using it.
func (mc *msgConn) release() {
	if mc.hs != nil {
		mc.hs.Close() // in the handshake
		return
	}
	if fd, err := mc.sk.get(); err == nil {
		parking.remove(fd, mc.key)
		mc.sk.put()
	}
	mc.np.close()
	mc.sk.release()
}

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
