//go:build linux

package privsep

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
	"github.com/peercred/peercred/privsep/confine"
	"golang.org/x/sys/unix"
)

// Environment of a worker process, set by the parent.
const (
	envRole       = "PEERCRED_PRIVSEP_ROLE"
	envParent     = "PEERCRED_PRIVSEP_PARENT"     // the parent's PID, to detect a parent already gone
	envAllowRoot  = "PEERCRED_PRIVSEP_ALLOW_ROOT" // "1" when the spec allows root
	envArgs       = "PEERCRED_PRIVSEP_NARGS"      // number of Args at the end of os.Args
	envTraceback  = "PEERCRED_PRIVSEP_TRACEBACK"  // GOTRACEBACK after a secure exec (spawnids_linux.go)
	envKeepPrefix = "PEERCRED_PRIVSEP_KEEP_"      // Spec.Env again, past a secure exec's filter
	workerFD      = 3                             // the worker's end of the socket pair
)

// A worker is not dumpable (prctl PR_SET_DUMPABLE 0): another process of
// its UID can then neither ptrace(2) it, nor take its descriptors with
// pidfd_getfd(2), nor read its memory or /proc/PID/fd, environ, maps...
// (the kernel owns its /proc entries to root). A root parent's worker is
// exec'd not dumpable (spawnids_linux.go); any other, execve(2) made
// dumpable: it turns that off here, as this package initializes (before
// the packages that import privsep, though not necessarily before every
// other package of the program); Main does it again, first thing, and the
// parent checks it (doc.go: Workers under one UID).
func init() {
	if _, ok := os.LookupEnv(envRole); !ok {
		return
	}
	// Exec'd by a root parent with an effective GID other than its real
	// one, the spec's (spawnids_linux.go): all its GIDs the real one now,
	// in every thread. The parent checks all four at the hello.
	if r, e, s := unix.Getresgid(); e != r || s != r {
		if err := syscall.Setresgid(r, r, r); err != nil {
			initErr = fmt.Errorf("setresgid(%d, %d, %d): %w", r, r, r, err)
		}
	}
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0) // checked in runWorker
	// After such an exec, which is secure (AT_SECURE), the kernel cleared
	// the parent-death signal, and so did the change of GID: armed again
	// here, after both (for other workers it is set already); runWorker
	// then checks that the parent is still ours.
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0)
	// A secure exec also makes the Go runtime force GOTRACEBACK=none, for
	// setuid programs whose tracebacks would tell their callers too much;
	// a worker's stderr is its parent's choice.
	if tb, ok := os.LookupEnv(envTraceback); ok {
		debug.SetTraceback(tb)
		os.Unsetenv(envTraceback)
	}
	// And the C library of a cgo worker dropped the variables of Spec.Env
	// it deems unsafe for such a program (TMPDIR, TZDIR, ...): the parent
	// sent them twice.
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, envKeepPrefix) {
			os.Unsetenv(k)
			if name := k[len(envKeepPrefix):]; name != "" {
				if _, set := os.LookupEnv(name); !set {
					os.Setenv(name, v)
				}
			}
		}
	}
}

// initErr is why init could not set the worker's IDs; runWorker fails
// with it.
var initErr error

// Main runs the worker role when this process was started by
// [Supervisor.Spawn], and then exits the process with the role's status: it
// never returns in a worker. In any other process it returns at once. Call it
// first thing in main, after registering the roles. A worker is not
// dumpable from then on (the package doc: Workers under one UID).
func Main() {
	role, ok := os.LookupEnv(envRole)
	if !ok {
		return
	}
	os.Exit(runWorker(role))
}

// runWorker is the worker's life: checks, hello, role, exit status.
func runWorker(role string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "privsep: %s worker (pid %d): %s\n", role, os.Getpid(), fmt.Sprintf(format, args...))
		return 2
	}
	// Not dumpable, before anything else: see init. Nothing after this
	// in Main makes it dumpable again (only execve(2) and changes of
	// credentials do); the parent checks it from /proc before the hello
	// is answered.
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fail("prctl(PR_SET_DUMPABLE, 0): %v", err)
	}
	if initErr != nil {
		return fail("%v", initErr)
	}
	parent, _ := strconv.Atoi(os.Getenv(envParent))
	allowRoot := os.Getenv(envAllowRoot) == "1"
	nargs, _ := strconv.Atoi(os.Getenv(envArgs))
	for _, k := range []string{envRole, envParent, envAllowRoot, envArgs} {
		os.Unsetenv(k) // not for the role's own children
	}

	// Descriptors the parent inherited without close-on-exec would come
	// along through exec. The parent marks them close-on-exec before it
	// spawns; close any that still got here, before anything else. Only
	// 0-2 and our socket are meant for us. (In a chroot without /proc this
	// second line of defence is skipped.)
	closeInherited(workerFD)
	// The parent spawns from a thread with no_new_privs set, so every
	// thread of ours has it already; set it on this one regardless.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("prctl(PR_SET_NO_NEW_PRIVS): %v", err)
	}
	if !allowRoot && (os.Getuid() == 0 || os.Geteuid() == 0 || os.Getgid() == 0 || os.Getegid() == 0) {
		return fail("refusing to run as root (uid %d euid %d gid %d egid %d): the spec does not allow it",
			os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid())
	}
	// The parent-death signal is armed only from the moment of exec (or
	// init's, after a secure exec): a parent that died before then left
	// us orphaned already. In a new PID namespace our parent is outside
	// it and getppid says 0.
	if ppid := os.Getppid(); parent != 0 && ppid != 0 && ppid != parent {
		return fail("parent %d is gone (parent is now %d)", parent, ppid)
	}

	rolesMu.Lock()
	fn := roles[role]
	rolesMu.Unlock()
	if fn == nil {
		return fail("role %q is not registered in this binary", role)
	}

	// Confinement (confine_linux.go), before the hello, which carries
	// the report of it; if it failed, the report says why and the parent
	// refuses the worker.
	confinement, cerr := confineSelf()
	if cerr != nil {
		fail("%v", cerr)
	}

	f := os.NewFile(workerFD, "privsep")
	boot, err := peercred.FileConn(f)
	f.Close()
	if err != nil {
		return fail("socket to the parent: %v", err)
	}
	c, err := sendHello(boot, &wire.Msg{Kind: wire.KindHello, Op: role, Payload: confinement})
	if err != nil {
		return fail("%v", err)
	}
	w, err := handshake(context.Background(), c, role, nil)
	if err != nil {
		return fail("%v", err)
	}
	if nargs > 0 && nargs < len(os.Args) {
		w.args = os.Args[len(os.Args)-nargs:]
	}
	roleDone := make(chan struct{})
	go func() {
		// EOF on the socket means the parent is gone (normally the
		// parent-death signal has killed us already). Give the role a
		// moment to notice its context, then go.
		select {
		case <-w.readDone:
		case <-roleDone:
			return
		}
		t := time.NewTimer(500 * time.Millisecond)
		select {
		case <-t.C:
			fmt.Fprintf(os.Stderr, "privsep: %s worker (pid %d): parent gone, exiting\n", role, os.Getpid())
			os.Exit(1)
		case <-roleDone:
		}
	}()
	err = fn(w.ctx, w)
	close(roleDone)
	w.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "privsep: %s worker (pid %d): %v\n", role, os.Getpid(), err)
		return 1
	}
	return 0
}

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
	// calls per call and delays the parent's Stop by at most a sweepTick
	// or two.
	fast     bool
	idleFrom time.Time // when the last call handed reading to the parker
	err      error     // set when the connection is gone
	wake     int       // eventfd that interrupts the reader's poll; -1 once closed

	readDone chan struct{} // closed when the connection is gone
}

// sendHello sends a spawned worker's hello on boot, the connection it was
// started with, together with one end of a new socket pair, and returns the
// other end: the parent serves the worker on that pair from then on, and
// drops boot. Another process of the worker's UID may have copied boot in
// the moment after execve, before the worker became not dumpable; none can
// have the new pair. It closes boot.
func sendHello(boot *peercred.Conn, hello *wire.Msg) (*peercred.Conn, error) {
	local, remote, err := peercred.Socketpair(syscall.SOCK_SEQPACKET)
	if err != nil {
		boot.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	defer remote.Close()
	mc, err := newMsgConn(boot, wire.DefaultLimits)
	if err != nil {
		local.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	err = mc.write(hello, []*os.File{remote})
	mc.release()
	if err != nil {
		local.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	return local, nil
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
	w.rd.serve(w.watch, "parent", wire.KindReply, wire.KindError, wire.KindStop)
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

// closeInherited closes every descriptor above keep that is not
// close-on-exec. The Go runtime's own descriptors are all close-on-exec, so
// they stay.
func closeInherited(keep int) {
	forInherited(keep, func(fd int) { unix.Close(fd) })
}

// markInherited makes every descriptor above keep close-on-exec: the
// parent's guard against passing what it inherited to its workers.
func markInherited(keep int) {
	forInherited(keep, func(fd int) { unix.CloseOnExec(fd) })
}

// forInherited calls fn for each open descriptor above keep that is not
// close-on-exec, as /proc/self/fd lists them.
func forInherited(keep int, fn func(fd int)) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= keep {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			fn(fd)
		}
	}
}
