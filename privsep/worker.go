//go:build linux

package privsep

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
	"github.com/peercred/peercred/privsep/confine"
	"golang.org/x/sys/unix"
)

// Worker is a worker's connection to its parent. Its methods are safe for
// concurrent use; many calls may be in flight at once.
//
// A lone Call reads its own reply (fastpath.go): the calling goroutine
// blocks in recvmsg(2), with no other goroutine in between.
// With several calls in flight, one caller at a time reads and hands each
// other reply to its caller; when it has its own, it hands reading to one of
// the callers still waiting. When no call is in flight the connection is
// parked, and a message from the parent (Stop, end of file) is read as it
// comes.
//
// Its file methods (Open, OpenFile, Stat, Mkdir, ...) mirror package os and
// are served by the parent, as the role's [Policy.Files] allow: see
// [Worker.OpenFile].
type Worker struct {
	role string
	args []string
	mc   *msgConn

	ctx    context.Context
	cancel context.CancelCauseFunc

	rd *reader // the turn to read mc (fastpath.go)

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]*call
	// Between calls the connection is parked at once, unless calls come
	// back to back: then lazily (reader.park), which saves two system
	// calls per call and delays the parent's Stop by at most two
	// workerSweepTicks.
	fast     bool
	idleFrom time.Time // when the last call handed reading to the parker
	err      error     // set when the connection is gone
	wake     int       // eventfd that interrupts the reader's poll; -1 once closed

	readDone chan struct{} // closed when the connection is gone
}

// handshake sends hello on c, if not nil, waits for the welcome (until ctx
// ends, and 30 seconds at most) and starts the reader. It closes c on
// error.
func handshake(ctx context.Context, c *peercred.Conn, role string, hello *wire.Msg) (*Worker, error) {
	// Until the welcome says otherwise, the protocol's defaults apply.
	mc, err := newMsgConn(c, wire.DefaultLimits)
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	if hello != nil {
		if err := mc.write(hello, nil); err != nil {
			mc.release()
			return nil, fmt.Errorf("hello: %w", err)
		}
	}
	m, err := mc.readBefore(ctx, time.Now().Add(30*time.Second))
	if err != nil {
		mc.release()
		if err == errCanceled {
			return nil, fmt.Errorf("welcome: %w", ctx.Err())
		}
		if isEOF(err) {
			return nil, fmt.Errorf("not admitted as %q: the parent closed the connection: %w", role, ErrParentGone)
		}
		return nil, fmt.Errorf("welcome: %w", err)
	}
	if m.Kind == wire.KindError {
		// The parent refused us, and says why.
		mc.release()
		return nil, fmt.Errorf("not admitted as %q: %w", role, &CallError{Op: "hello", Code: m.Code, Msg: string(m.Payload)})
	}
	if m.Kind != wire.KindWelcome || len(m.Payload) != 8 {
		m.closeFiles()
		mc.release()
		return nil, fmt.Errorf("welcome: got %v message with %d bytes: %w", m.Kind, len(m.Payload), ErrProtocol)
	}
	lim := wire.Limits{
		MaxPayload: int(binary.LittleEndian.Uint32(m.Payload[0:])),
		MaxFiles:   int(binary.LittleEndian.Uint32(m.Payload[4:])),
	}
	if err := lim.Validate(); err != nil {
		mc.release()
		return nil, fmt.Errorf("welcome: %w", err)
	}
	mc.lim = lim
	if err := mc.detach(); err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		mc.release()
		return nil, os.NewSyscallError("eventfd", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	w := &Worker{
		role:     role,
		mc:       mc,
		ctx:      ctx,
		cancel:   cancel,
		pending:  make(map[uint32]*call),
		wake:     wake,
		readDone: make(chan struct{}),
	}
	w.rd = &mc.rd
	w.rd.serve(w.watch, "parent", workerSweepTick, wire.KindReply, wire.KindError, wire.KindStop)
	w.mu.Lock()
	w.release()
	w.mu.Unlock()
	return w, nil
}

// Dial connects to a supervisor's named socket ([Supervisor.ListenUnix]) and
// asks to be admitted as role, with a zero [Dialer]: the server must run as
// this process's effective UID or as root. The supervisor identifies this
// process with SO_PEERCRED and admits it only if its Authorizer and the
// role's [Policy.Claim] do. Close the Worker when done.
func Dial(ctx context.Context, path, role string) (*Worker, error) {
	var d Dialer
	return d.Dial(ctx, path, role)
}

// Dial connects to the supervisor's named socket path (a file or "@name"),
// checks the server with d.Authorize, and asks to be admitted as role. ctx
// bounds the connection and the wait for the parent's answer (30 seconds at
// most); once Dial returns, it has no effect on the Worker.
func (d *Dialer) Dial(ctx context.Context, path, role string) (*Worker, error) {
	if !validName(role) {
		return nil, fmt.Errorf("privsep: dial: invalid role name %q", role)
	}
	auth := d.Authorize
	if auth == nil {
		auth = peercred.SameUserOrRoot()
	}
	c, err := peercred.DialNetwork(ctx, "unixpacket", path)
	if err != nil {
		return nil, fmt.Errorf("privsep: dial: %w", err)
	}
	cred := c.Cred()
	if err := auth(cred); err != nil {
		c.Close()
		return nil, fmt.Errorf("privsep: dial %s: server pid %d uid %d gid %d refused: %w", path, cred.PID, cred.UID, cred.GID, err)
	}
	w, err := handshake(ctx, c, role, &wire.Msg{Kind: wire.KindHello, Op: role})
	if err != nil {
		return nil, fmt.Errorf("privsep: dial %s: %w", path, err)
	}
	return w, nil
}

// Role returns the worker's role.
func (w *Worker) Role() string { return w.role }

// Args returns the Spec's Args.
func (w *Worker) Args() []string { return w.args }

// Context returns a context that ends when the parent asks the worker to
// stop or is gone.
func (w *Worker) Context() context.Context { return w.ctx }

// Close closes the connection to the parent; calls in flight fail.
func (w *Worker) Close() error {
	w.mc.close()
	<-w.readDone
	return nil
}

// Call asks the parent to perform op with payload and files, and returns its
// reply. The caller keeps files (they may be closed once Call returns) and
// owns the returned files. A refusal is a [*CallError] that matches
// [ErrDenied], [ErrUnknownOp] or [ErrBadRequest] with errors.Is.
func (w *Worker) Call(ctx context.Context, op string, payload []byte, files ...*os.File) ([]byte, []*os.File, error) {
	c := callPool.Get().(*call)
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		callPool.Put(c)
		return nil, nil, err
	}
	w.nextID++
	if w.nextID == 0 {
		w.nextID = 1
	}
	id := w.nextID
	w.pending[id] = c
	// Become the reader before the request goes, so that the reply
	// finds us reading rather than the parked connection.
	lead := w.rd.take()
	if lead {
		w.fast = !w.idleFrom.IsZero() && time.Since(w.idleFrom) < sweepTick
	}
	w.mu.Unlock()

	m := wire.Msg{Kind: wire.KindRequest, ID: id, Op: op, Payload: payload}
	if err := w.mc.write(&m, files); err != nil {
		if lead {
			w.withdraw(id, c)
		} else {
			// The turn to read may have been handed to us meanwhile:
			// abandon passes it on.
			w.abandon(id, c)
		}
		w.mu.Lock()
		if w.err != nil {
			err = w.err
		}
		w.mu.Unlock()
		return nil, nil, fmt.Errorf("privsep: %s: %w", op, err)
	}
	var r reply
	if !lead {
		select {
		case r = <-c.ch:
		case <-ctx.Done():
			w.abandon(id, c)
			return nil, nil, fmt.Errorf("privsep: %s: %w", op, context.Cause(ctx))
		}
		lead = r.lead
	}
	if lead {
		var ok bool
		if r, ok = w.lead(ctx, id, c); !ok {
			return nil, nil, fmt.Errorf("privsep: %s: %w", op, context.Cause(ctx))
		}
	}
	callPool.Put(c) // its channel is empty
	if r.err != nil {
		var ce *CallError
		if errors.As(r.err, &ce) {
			ce.Op = op
		}
	}
	return r.payload, r.files, r.err
}

// finish ends the connection, on the reader that found its end or err:
// every pending call fails and the worker's context ends.
func (w *Worker) finish(err error) {
	if isEOF(err) {
		err = ErrParentGone
	} else {
		err = fmt.Errorf("%w: %w", ErrParentGone, err)
	}
	w.mu.Lock()
	w.err = err
	pending := w.pending
	w.pending = map[uint32]*call{}
	unix.Close(w.wake)
	w.wake = -1
	w.mu.Unlock()
	for _, c := range pending {
		c.ch <- reply{err: err} // the reader is us: no turn to read is in any channel
	}
	w.cancel(err)
	w.mc.release()
	close(w.readDone)
}

// Listen asks the parent for a listening socket on network and address, as
// the role's [ListenRule]s allow: a worker can serve on port 80 without ever
// being root. A TCP socket comes listening. A Unix one ("unix",
// "unixpacket") comes bound, and the worker calls listen(2) on it, so that
// its clients' kernel reports the worker (PID, UID, groups) as the server,
// not the parent; a worker confined with [confine.PromiseInet] may not call
// listen(2), and gets an error instead.
func (w *Worker) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	_, files, err := w.Call(ctx, wire.OpListen, wire.AppendListen(nil, network, address))
	if err != nil {
		return nil, err
	}
	if len(files) != 1 {
		closeAll(files)
		return nil, fmt.Errorf("privsep: listen %s %s: parent sent %d descriptors, want 1: %w", network, address, len(files), ErrProtocol)
	}
	if network == "unix" || network == "unixpacket" {
		// The parent bound it; listening here makes this process the
		// server its clients' kernel reports (SO_PEERCRED is taken at
		// listen(2)), not the parent.
		if err := listenUnix(files[0]); err != nil {
			files[0].Close()
			return nil, fmt.Errorf("privsep: listen %s %s: %w", network, address, err)
		}
	}
	l, err := net.FileListener(files[0])
	files[0].Close()
	if err != nil {
		return nil, fmt.Errorf("privsep: listen %s %s: %w", network, address, err)
	}
	return l, nil
}

// listenUnix calls listen(2) on the bound Unix socket f. A worker confined
// with the inet promise may not (its filter refuses listen, see
// internal/sandbox/seccomp_linux.go): the error says so.
func listenUnix(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	if err := rc.Control(func(fd uintptr) { lerr = unix.Listen(int(fd), unix.SOMAXCONN) }); err != nil {
		return err
	}
	if errors.Is(lerr, unix.EPERM) {
		return fmt.Errorf("listen(2) refused (a worker confined with the %q promise may not listen, even on a Unix socket): %w", confine.PromiseInet, lerr)
	}
	return os.NewSyscallError("listen", lerr)
}
