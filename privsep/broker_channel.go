//go:build linux

package privsep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"

	"github.com/peercred/peercred/internal/scm"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// The broker's channel: a SOCK_SEQPACKET pair of its own between a worker
// and its session, on which both ends block in recvmsg(2), one call at a
// time, as Chromium's broker does. A broker call there costs about what a
// hand-written SCM_RIGHTS request does; on the worker's main connection it
// would pay for the goroutines that let many calls be in flight. The
// messages, the policy, the logging and the treatment of a protocol
// violation are those of the main connection; the channel ends with the
// session. A call made while the channel is busy goes over the main
// connection.

// opFileChannel asks for the broker's channel; allowed once, to a role
// with file rules.
const opFileChannel = "file.channel"

// fileChannel serves opFileChannel: it makes the pair, serves one end and
// returns the other.
func (ss *session) fileChannel(req *Request) ([]byte, []*os.File, error) {
	if len(req.Payload) != 0 || len(req.Files) != 0 {
		return nil, nil, fmt.Errorf("%w: %s takes no arguments", ErrBadRequest, req.Op)
	}
	if len(ss.policy.Files) == 0 {
		return nil, nil, fmt.Errorf("%w: role %q has no file rules", ErrDenied, ss.peer.Role)
	}
	if !ss.useOnce(opFileChannel) {
		return nil, nil, fmt.Errorf("%w: the file broker's channel was given already", ErrDenied)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	// The session is serving this request, so serve has not returned and
	// the supervisor's WaitGroup is above zero.
	ss.s.wg.Add(1)
	go ss.serveFileChannel(fds[0])
	return nil, []*os.File{os.NewFile(uintptr(fds[1]), "broker")}, nil
}

// serveFileChannel answers the broker calls on fd until the worker closes
// its end, breaks the protocol, or the session ends. It owns fd.
func (ss *session) serveFileChannel(fd int) {
	s := ss.s
	defer s.wg.Done()
	// The session's end wakes the recvmsg below; fd is closed only once
	// that cannot run any more.
	var mu sync.Mutex
	closed := false
	stop := context.AfterFunc(ss.ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !closed {
			unix.Shutdown(fd, unix.SHUT_RDWR)
		}
	})
	defer func() {
		stop()
		mu.Lock()
		closed = true
		unix.Close(fd)
		mu.Unlock()
	}()

	buf := make([]byte, s.lim.BufferSize())
	oob := make([]byte, scm.Space(4))
	var out []byte
	for {
		n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 && oobn == 0 {
			return // the worker closed its end, or the session ended
		}
		fds, _, perr := scm.Parse(oob[:oobn])
		scm.CloseAll(fds)
		var m wire.Msg
		switch {
		case flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
			err = violation("broker channel: message or control data truncated")
		case perr != nil || len(fds) > 0:
			err = violation("broker channel: %d descriptors (%v), want none", len(fds), perr)
		default:
			if m, err = wire.Decode(buf[:n], 0, s.lim); err != nil {
				err = violation("broker channel: %w", err)
			} else if m.Kind != wire.KindRequest || !isFileOp(m.Op) || m.Op == opFileChannel {
				err = violation("broker channel: %v message for %q", m.Kind, m.Op)
			}
		}
		if err != nil {
			s.log().Warn("privsep: protocol violation; worker disconnected",
				"role", ss.peer.Role, "pid", ss.peer.PID, "uid", ss.peer.UID, "err", err)
			if ss.kill != nil {
				ss.kill()
			}
			ss.end(fmt.Errorf("%w: %s disconnected: %w", ErrWorkerGone, ss.peer, err))
			return
		}
		// The payload aliases buf: the operations do not keep it.
		req := &Request{Peer: ss.peer, Op: m.Op, Payload: m.Payload}
		payload, files, err := ss.call(req)
		reply := ss.result(m.ID, req, payload, err)
		if reply.Kind == wire.KindReply {
			reply.NFiles = len(files)
		} else {
			closeAll(files)
			files = nil
		}
		out, err = wire.Append(out[:0], reply, s.lim)
		if err == nil {
			err = unix.Sendmsg(fd, out, scm.Rights(fileFDs(files)...), nil, 0)
		}
		closeAll(files)
		if err != nil {
			return
		}
	}
}

// result logs a call and returns its reply, as session.handle does for the
// main connection.
func (ss *session) result(id uint32, req *Request, payload []byte, err error) *wire.Msg {
	s := ss.s
	if err == nil {
		if l := s.log(); l.Enabled(ss.ctx, slog.LevelDebug) {
			l.Debug("privsep: call", "role", ss.peer.Role, "pid", ss.peer.PID, "uid", ss.peer.UID, "op", req.Op)
		}
		return &wire.Msg{Kind: wire.KindReply, ID: id, Payload: payload}
	}
	code, level, msg := wire.CodeFailed, slog.LevelInfo, "privsep: call failed"
	switch {
	case errors.Is(err, ErrDenied):
		code, level, msg = wire.CodeDenied, slog.LevelWarn, "privsep: call refused"
	case errors.Is(err, ErrUnknownOp):
		code, level, msg = wire.CodeUnknownOp, slog.LevelWarn, "privsep: call refused"
	case errors.Is(err, ErrBadRequest):
		code, level, msg = wire.CodeBadRequest, slog.LevelWarn, "privsep: call refused"
	case errors.Is(err, ErrUnavailable):
		code = wire.CodeUnavailable
	}
	s.log().Log(ss.ctx, level, msg, "role", ss.peer.Role, "pid", ss.peer.PID, "uid", ss.peer.UID,
		"op", req.Op, "reason", err.Error())
	return &wire.Msg{Kind: wire.KindError, ID: id, Code: code, Payload: errPayload(err, s.lim)}
}

func fileFDs(files []*os.File) []int {
	if len(files) == 0 {
		return nil
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	return fds
}

// brokerChannel is the worker's end of the broker's channel.
type brokerChannel struct {
	once sync.Once
	f    *os.File // nil: no channel, use the main connection
	mu   sync.Mutex
	lim  wire.Limits
	id   uint32
	wbuf []byte
	rbuf []byte
	oob  []byte
}

// brokerChan returns the worker's broker channel, asking the parent for it
// the first time; nil if the parent gave none.
func (w *Worker) brokerChan() *brokerChannel {
	ch := &w.broker
	ch.once.Do(func() {
		_, files, err := w.Call(w.ctx, opFileChannel, nil)
		if err != nil || len(files) != 1 {
			closeAll(files)
			return
		}
		ch.f = files[0]
		ch.f.Fd() // blocking mode: calls block in the kernel, not the poller
		ch.lim = w.mc.lim
		ch.rbuf = make([]byte, ch.lim.BufferSize())
		ch.oob = make([]byte, scm.Space(ch.lim.MaxFiles+1))
	})
	if ch.f == nil {
		return nil
	}
	return ch
}

// call makes one call on the channel; the caller holds ch.mu. Like
// Worker.Call, it returns the reply's payload (a copy) and files, or a
// *CallError.
func (ch *brokerChannel) call(op string, payload []byte) ([]byte, []*os.File, error) {
	ch.id++
	if ch.id == 0 {
		ch.id = 1
	}
	m := wire.Msg{Kind: wire.KindRequest, ID: ch.id, Op: op, Payload: payload}
	b, err := wire.Append(ch.wbuf[:0], &m, ch.lim)
	if err != nil {
		return nil, nil, fmt.Errorf("privsep: %s: %w", op, err)
	}
	ch.wbuf = b
	fd := int(ch.f.Fd())
	for {
		if _, err = unix.Write(fd, b); err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("privsep: %s: %w: %w", op, ErrParentGone, err)
	}
	var n, oobn, flags int
	for {
		if n, oobn, flags, _, err = unix.Recvmsg(fd, ch.rbuf, ch.oob, unix.MSG_CMSG_CLOEXEC); err != unix.EINTR {
			break
		}
	}
	if err != nil || n == 0 {
		return nil, nil, fmt.Errorf("privsep: %s: %w (%v)", op, ErrParentGone, err)
	}
	fds, _, perr := scm.Parse(ch.oob[:oobn])
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		files[i] = os.NewFile(uintptr(fd), "received")
	}
	fail := func(err error) ([]byte, []*os.File, error) {
		closeAll(files)
		return nil, nil, fmt.Errorf("privsep: %s: %w: %w", op, ErrProtocol, err)
	}
	if perr != nil || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return fail(fmt.Errorf("reply truncated or malformed control data (%v)", perr))
	}
	r, err := wire.Decode(ch.rbuf[:n], len(fds), ch.lim)
	if err != nil {
		return fail(err)
	}
	if r.ID != ch.id {
		return fail(fmt.Errorf("reply to call %d, want %d", r.ID, ch.id))
	}
	switch r.Kind {
	case wire.KindReply:
		return append([]byte(nil), r.Payload...), files, nil
	case wire.KindError:
		closeAll(files)
		return nil, nil, &CallError{Op: op, Code: r.Code, Msg: string(r.Payload)}
	}
	return fail(fmt.Errorf("%v message on the broker channel", r.Kind))
}
