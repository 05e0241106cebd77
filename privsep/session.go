//go:build linux

// A session: the parent's side of one verified worker's connection (reading,
// dispatch, replies, the end).

package privsep

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peercred/peercred/internal/wire"
)

// A session logs its first refusalLogBurst failed or refused calls, then one
// in refusalLogEvery; so does a supervisor its refused named-socket peers.
const (
	refusalLogBurst = 20
	refusalLogEvery = 100
)

// logRefusal reports whether the nth refusal is logged.
func logRefusal(n uint64) bool { return n <= refusalLogBurst || n%refusalLogEvery == 0 }

// welcome is the message that admits a verified worker: it carries the
// limits both sides hold to.
func (s *Supervisor) welcome() *wire.Msg {
	p := make([]byte, 8)
	binary.LittleEndian.PutUint32(p[0:], uint32(s.lim.MaxPayload))
	binary.LittleEndian.PutUint32(p[4:], uint32(s.lim.MaxFiles))
	return &wire.Msg{Kind: wire.KindWelcome, Payload: p}
}

// session serves one verified worker connection.
type session struct {
	s      *Supervisor
	mc     *msgConn
	peer   *Peer
	policy Policy

	ctx    context.Context // ends when the session does
	cancel context.CancelCauseFunc

	sem chan struct{} // MaxInFlight

	refusals atomic.Uint64 // failed or refused calls, for log rate limiting

	rd     *reader        // the turn to read mc (fastpath.go)
	active sync.WaitGroup // the goroutines reading or running handlers

	// proc is the process's entry in the supervisor's onceTable, if the
	// role allows anything once; procErr says why there is none.
	proc    *onceProc
	procErr error

	kill func()        // kills a spawned worker; nil for named ones
	done chan struct{} // closed when the session has ended
}

// newSession registers a session; it fails once the supervisor is closing.
func (s *Supervisor) newSession(mc *msgConn, peer *Peer, kill func()) (*session, error) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	ss := &session{
		s:      s,
		mc:     mc,
		rd:     &mc.rd,
		peer:   peer,
		policy: s.policy(peer.Role),
		ctx:    ctx,
		cancel: cancel,
		sem:    make(chan struct{}, s.cfg.MaxInFlight),
		kill:   kill,
		done:   make(chan struct{}),
	}
	if ss.policy.hasOnce() {
		ss.proc, ss.procErr = s.once.attach(peer)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		if ss.proc != nil {
			s.once.detach(ss.proc)
		}
		cancel(ErrUnavailable)
		return nil, ErrUnavailable
	}
	s.conns[ss] = struct{}{}
	return ss, nil
}

// hotWait is how long a reader waits for the next message in recvmsg(2)
// (SO_RCVTIMEO), holding a thread, before it looks around: the session's
// reader then parks the connection, a worker's reader looks at its context.
const hotWait = 10 * time.Millisecond

// start serves the session until the connection ends; then the session
// cleans up after itself and closes done.
func (ss *session) start() {
	ss.s.wg.Add(1) // until finish
	ss.rd.serve(ss.wake, "worker", sweepTick, wire.KindRequest)
	ss.active.Add(1)
	go ss.read()
}

// wake is the parker's call: a message came while nobody read, or while
// the reader ran a handler.
func (ss *session) wake() {
	if ss.rd.woken() {
		ss.active.Add(1)
		go ss.read()
	}
}

// read is the session's reader (fastpath.go): it reads requests and runs
// each handler itself, until it parks the connection (nothing came for
// hotWait), another goroutine took the turn to read while a handler ran, or
// the connection ends. A protocol violation disconnects the worker, and
// kills it if it was spawned (finish).
//
// While the process has more session readers than Ps, a reader does not
// wait in recvmsg: it waits in Go's own poller (reader.pollRecv), holding
// no thread, as a Go server waits for its connections, and parks the
// connection if nothing came for hotWait. Readers blocked in recvmsg, more
// of them than Ps, kept Go's sysmon taking Ps back from them and handing
// them on, and parking at once cost a wake-up through the parker and a
// new goroutine for each request that found nobody reading: with eight
// workers calling at once on two cores (BenchmarkThroughput), waiting in
// Go's poller took their calls from 0.74 to 0.87 of the raw baseline's
// calls/s (BENCHMARKS.md). A reader waiting there still counts
// (sessionReaders) until nothing came for hotWait and it parks the
// connection: the process leaves this mode only once its workers have been
// idle that long, not at every lull.
func (ss *session) read() {
	sessionReaders.Add(1)
	defer sessionReaders.Add(-1)
	refused := false // the last park failed: wait in recvmsg meanwhile
	for {
		ss.rd.yield(fewReaders)
		few := refused || fewReaders()
		if few {
			ss.rd.unpoll(true) // not needed for hotWait: out of Go's poller
		}
		m, ok, err := ss.rd.receive(few)
		if err == nil && !ok && !few {
			m, ok, err = ss.rd.pollRecv()
		}
		if err == nil && !ok {
			ss.rd.unpoll(false)
			if ss.rd.park(false) {
				ss.active.Done()
				return
			}
			refused = true
			continue // the kernel refused (out of memory): read on
		}
		refused = false
		if err != nil {
			ss.finish(err)
			return
		}
		req := &Request{Peer: ss.peer, Op: m.Op, Payload: m.Payload, Files: m.Files}
		select {
		case ss.sem <- struct{}{}: // the usual case, without selectgo
		default:
			select {
			case ss.sem <- struct{}{}:
			case <-ss.ctx.Done():
				closeAll(req.Files)
				ss.finish(context.Cause(ss.ctx))
				return
			}
		}
		// Park the connection while the handler runs, should it take
		// long: a request that comes meanwhile then starts another
		// reader.
		ss.rd.busy()
		ss.handle(m.ID, req)
		<-ss.sem
		if !ss.rd.resume() {
			// Another goroutine reads now, or the session ends.
			ss.active.Done()
			return
		}
	}
}

// sessionReaders counts the goroutines in session.read, in the process.
var sessionReaders atomic.Int32

// fewReaders reports whether the process has no more session readers than
// Ps, so that one that yields gets a P back at once (reader.yield).
func fewReaders() bool { return sessionReaders.Load() <= numProcs.Load() }

// numProcs is runtime.GOMAXPROCS(0), which takes the scheduler's lock:
// fewReaders is asked for every request, so readers refresh it in yield,
// once every yieldEvery (GOMAXPROCS can change while a program runs).
var numProcs atomic.Int32

func init() { numProcs.Store(int32(runtime.GOMAXPROCS(0))) }

// finish ends the session, on the reader that found the connection's end
// or err: it fails the calls in flight fast with the cause, waits for their
// handlers, and lets the connection go.
func (ss *session) finish(err error) {
	ss.rd.close()
	s := ss.s
	var cause error
	var pe *protocolError
	switch {
	case errors.As(err, &pe):
		cause = ss.disconnect("privsep: protocol violation; worker disconnected", err,
			fmt.Errorf("%w: %s disconnected: %w", ErrWorkerGone, ss.peer, err))
	case isEOF(err):
		cause = fmt.Errorf("%w: %s closed its connection", ErrWorkerGone, ss.peer)
		if ss.kill != nil {
			// A spawned worker's socket closes as it exits: give the
			// supervising goroutine a moment to end the session with
			// the exit status, a better cause.
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-ss.ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	case ss.ctx.Err() != nil:
		cause = context.Cause(ss.ctx)
	default:
		cause = fmt.Errorf("%w: %s: read: %w", ErrWorkerGone, ss.peer, err)
	}
	ss.cancel(cause)
	ss.mc.close()
	ss.active.Done()
	ss.active.Wait()
	ss.mc.release()
	if ss.proc != nil {
		s.once.detach(ss.proc)
	}
	if ss.peer.Named && ss.peer.PidFD != nil {
		ss.peer.PidFD.Close() // admit's; a spawned worker's is its Process's
	}
	if ss.peer.Named {
		s.releaseNamed(ss.peer.UID)
	}
	s.mu.Lock()
	delete(s.conns, ss)
	s.mu.Unlock()
	close(ss.done)
	s.wg.Done()
}

// abandon undoes newSession for a session that was never started: no
// reader will finish it. The connection stays the caller's to release.
func (ss *session) abandon(cause error) {
	ss.cancel(cause)
	s := ss.s
	if ss.proc != nil {
		s.once.detach(ss.proc)
	}
	s.mu.Lock()
	delete(s.conns, ss)
	s.mu.Unlock()
}

// disconnect is what a worker that breaks the protocol gets (a message the
// receive path refused, replies it does not read): the one place that
// says so in the log, kills a spawned worker, and ends the session with
// cause, which it returns. Whatever the worker sent has been closed by then
// (reader.receive).
func (ss *session) disconnect(msg string, err, cause error) error {
	ss.s.log().Warn(msg, "role", ss.peer.Role, "pid", ss.peer.PID, "uid", ss.peer.UID, "err", err)
	if ss.kill != nil {
		ss.kill()
	}
	ss.end(cause)
	return cause
}

// end closes the session's connection with cause; its reader then finishes
// it.
func (ss *session) end(cause error) {
	ss.cancel(cause)
	ss.mc.close()
}

// handle runs one request and sends its reply.
func (ss *session) handle(id uint32, req *Request) {
	s := ss.s
	defer closeAll(req.Files)
	payload, files, fd, err := ss.call(req)
	if err != nil {
		closeAll(files) // a handler that fails gives nothing back
		closeFD(fd)
		code := wire.CodeFailed
		level := slog.LevelInfo
		switch {
		case errors.Is(err, ErrDenied):
			code, level = wire.CodeDenied, slog.LevelWarn
		case errors.Is(err, ErrUnknownOp):
			code, level = wire.CodeUnknownOp, slog.LevelWarn
		case errors.Is(err, ErrBadRequest):
			code, level = wire.CodeBadRequest, slog.LevelWarn
		case errors.Is(err, ErrUnavailable):
			code = wire.CodeUnavailable
		}
		msg := "privsep: call refused"
		if level != slog.LevelWarn {
			msg = "privsep: call failed"
		}
		if n := ss.refusals.Add(1); logRefusal(n) {
			// A worker that hammers refused calls must not flood the
			// log: the first few are logged, then one in a hundred.
			s.log().Log(ss.ctx, level, msg, "role", ss.peer.Role, "pid", ss.peer.PID, "uid", ss.peer.UID,
				"op", req.Op, "reason", err.Error(), "count", n)
		}
		ss.reply(&wire.Msg{Kind: wire.KindError, ID: id, Code: code, Payload: errPayload(err, s.lim)}, nil)
		return
	}
	if l := s.log(); l.Enabled(ss.ctx, slog.LevelDebug) { // no arguments boxed when off
		l.Debug("privsep: call", "role", ss.peer.Role, "pid", ss.peer.PID, "uid", ss.peer.UID, "op", req.Op)
	}
	if fd >= 0 {
		ss.replyFD(&wire.Msg{Kind: wire.KindReply, ID: id, Payload: payload}, fd)
		return
	}
	ss.reply(&wire.Msg{Kind: wire.KindReply, ID: id, Payload: payload}, files)
}

// reply sends m with files and closes the files.
func (ss *session) reply(m *wire.Msg, files []*os.File) {
	defer closeAll(files)
	ss.sent(m, ss.mc.write(m, files))
}

// replyFD sends m with the descriptor fd (a built-in operation's, which
// needs no *os.File) and closes fd.
func (ss *session) replyFD(m *wire.Msg, fd int) {
	defer closeFD(fd)
	ss.sent(m, ss.mc.writeFD(m, fd))
}

// sent handles the outcome of sending the reply m.
func (ss *session) sent(m *wire.Msg, err error) {
	if err != nil && ss.ctx.Err() == nil {
		ss.s.log().Warn("privsep: reply not sent", "role", ss.peer.Role, "pid", ss.peer.PID, "op", m.Kind, "err", err)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// The worker does not read its replies: fail closed.
			ss.disconnect("privsep: worker does not read its replies; disconnected", err,
				fmt.Errorf("%w: %s does not read its replies", ErrWorkerGone, ss.peer))
			return
		}
		if m.Kind == wire.KindReply && !isEOF(err) {
			// The reply itself could not be encoded (too large):
			// tell the worker instead of leaving its call hanging.
			ss.mc.write(&wire.Msg{Kind: wire.KindError, ID: m.ID, Code: wire.CodeFailed,
				Payload: errPayload(err, ss.s.lim)}, nil)
		}
	}
}

// call checks policy and runs the operation. Its answer is payload with
// files, or, from a built-in operation, with the descriptor fd (-1: none).
func (ss *session) call(req *Request) (payload []byte, files []*os.File, fd int, err error) {
	fd = -1
	defer func() {
		if r := recover(); r != nil {
			ss.s.log().Error("privsep: handler panicked", "op", req.Op, "panic", r, "stack", string(debug.Stack()))
			closeAll(files)
			closeFD(fd)
			payload, files, fd, err = nil, nil, -1, fmt.Errorf("handler for %s panicked", req.Op)
		}
	}()
	if b, ok := builtins[req.Op]; ok { // ops.go
		if len(req.Files) != 0 && !b.files {
			return nil, nil, -1, fmt.Errorf("%w: %s: %d descriptors sent with it", ErrBadRequest, req.Op, len(req.Files))
		}
		payload, files, fd, err = b.serve(ss, req)
		return payload, files, fd, err
	}
	var h handlerFunc
	if m := ss.s.handlers.Load(); m != nil {
		h = (*m)[req.Op]
	}
	if h == nil {
		return nil, nil, -1, fmt.Errorf("%w %q", ErrUnknownOp, req.Op)
	}
	rule, ok := ss.policy.Ops[req.Op]
	if !ok {
		return nil, nil, -1, fmt.Errorf("%w: role %q may not call %q", ErrDenied, ss.peer.Role, req.Op)
	}
	if rule.Once {
		if why := ss.takeOnce("op:" + req.Op); why != "" {
			return nil, nil, -1, fmt.Errorf("%w: %q: %s", ErrDenied, req.Op, why)
		}
	}
	payload, files, err = h(ss.ctx, req)
	return payload, files, -1, err
}

// errPayload is the error text sent to a worker, cut to the payload limit.
func errPayload(err error, lim wire.Limits) []byte {
	b := []byte(err.Error())
	if len(b) > lim.MaxPayload {
		b = b[:lim.MaxPayload]
	}
	return b
}
