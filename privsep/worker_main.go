//go:build linux

// A spawned worker's start-up: from exec to its role (init, Main), and the hello.

package privsep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
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
	workerExit(runWorker(role))
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
