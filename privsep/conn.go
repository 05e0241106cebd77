//go:build linux

package privsep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/scm"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// msgConn carries wire messages over one SOCK_SEQPACKET connection: one
// message per datagram, descriptors attached. Reads are done by one goroutine
// at a time; writes may come from any number (the kernel keeps each datagram
// whole).
type msgConn struct {
	c   *peercred.Conn
	lim wire.Limits

	rbuf []byte // the reader's buffer; message payloads alias it
	oob  []byte

	wpool sync.Pool // *[]byte encode buffers
}

func newMsgConn(c *peercred.Conn, lim wire.Limits) *msgConn {
	return &msgConn{
		c:    c,
		lim:  lim,
		rbuf: make([]byte, lim.BufferSize()),
		// Room for one more descriptor than allowed, so that too many
		// arrive as a count we can refuse rather than only MSG_CTRUNC,
		// and for SCM_CREDENTIALS.
		oob: make([]byte, scm.Space(lim.MaxFiles+1)+unix.CmsgSpace(unix.SizeofUcred)),
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
// either in the returned message or closed. io.EOF means the peer closed the
// connection; a *protocolError means it broke the protocol.
func (mc *msgConn) read() (inMsg, error) {
	n, oobn, flags, _, err := mc.c.ReadMsgUnix(mc.rbuf, mc.oob)
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
		return fail(violation("message larger than %d bytes: %w", len(mc.rbuf)-1, wire.ErrTooLarge))
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
	msg, err := wire.Decode(mc.rbuf[:n], len(fds), mc.lim)
	if err != nil {
		return fail(violation("%w", err))
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
	if len(files) == 0 {
		_, err = mc.c.Write(b)
	} else {
		_, err = mc.c.WriteWithFiles(b, files...)
	}
	return err
}

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
	return errors.Is(err, io.EOF) || errors.Is(err, unix.ECONNRESET) || errors.Is(err, os.ErrClosed)
}
