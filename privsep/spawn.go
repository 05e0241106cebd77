//go:build linux

package privsep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/forkthread"
	"github.com/peercred/peercred/internal/proc"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// spawner is one OS thread, locked for the supervisor's life, that forks
// every worker (a forkthread.Thread). Two per-thread facts make it
// necessary: the parent-death signal fires when the thread that forked the
// child exits (and Go retires threads), and no_new_privs, set on this
// thread only, is inherited by the children it forks and kept across exec.
type spawner struct {
	th  *forkthread.Thread
	err error // from starting the thread; every spawn fails with it

	// broken says why the thread cannot spawn any more: it could not
	// take back its own IDs after a spawn (spawnIDs). Only the thread
	// reads and writes it.
	broken error
}

func newSpawner() *spawner {
	th, err := forkthread.New(forkthread.Options{NoNewPrivs: true})
	return &spawner{th: th, err: err}
}

// start runs cmd.Start on the spawner thread, which holds ids, if not nil,
// for the length of it.
func (sp *spawner) start(cmd *exec.Cmd, ids *spawnIDs) error {
	if sp.err != nil {
		return sp.err
	}
	return sp.th.Do(func() error { return sp.startOnThread(cmd, ids) })
}

func (sp *spawner) startOnThread(cmd *exec.Cmd, ids *spawnIDs) error {
	if sp.broken != nil {
		return sp.broken
	}
	if ids == nil {
		return cmd.Start()
	}
	leave, err := ids.enter()
	if err != nil {
		if errors.Is(err, errThreadIDs) {
			sp.broken = err
		}
		return err
	}
	err = cmd.Start()
	if lerr := leave(); lerr != nil {
		sp.broken = fmt.Errorf("%w: %w", errThreadIDs, lerr)
		if err == nil {
			// The worker is started and fine; the next spawns fail.
			return nil
		}
	}
	return err
}

// stop ends the thread, with the IDs and no_new_privs it has. Workers it
// forked get their parent-death signal, so call it only once they are gone.
func (sp *spawner) stop() {
	if sp.th != nil {
		sp.th.Close()
	}
}

// Process is a supervised worker. With a restart policy it outlives the
// worker processes it starts one after another; PID reports the current one.
type Process struct {
	s    *Supervisor
	spec Spec

	mu       sync.Mutex
	cur      *incarnation // nil from the moment its exit is noticed until the next one is verified
	restarts int
	stopping bool          // Stop or Shutdown: no more restarts
	ended    bool          // the last incarnation ended and none follows
	again    bool          // Restart asked between workers: start the next one whatever the policy
	wake     chan struct{} // interrupts a restart delay
	err      error         // why the last incarnation ended
	done     chan struct{} // closed when no incarnation will follow
	changed  chan struct{} // closed and replaced when cur or startErr changes
	startErr error         // why the last start failed, until the next one begins
}

// incarnation is one worker process.
type incarnation struct {
	cmd   *exec.Cmd
	pidfd *os.File
	sess  *session
	start time.Time
	exit  chan struct{} // closed when reaped
	err   error         // exit status, valid after exit

	forceRestart bool // Restart asked for a new process; guarded by Process.mu
}

// Role returns the worker's role.
func (p *Process) Role() string { return p.spec.Role }

// PID returns the PID of the current worker process, or 0 between restarts
// and after the end. It is never the PID of a process already reaped: a
// worker's PID is withdrawn as soon as its exit is noticed, before it is
// reaped, and so before Restart returns. The worker may still exit at any
// moment after PID returns: [Process.Signal] reaches the worker through its
// pidfd, never a later process that reuses the PID. [Process.Ready] waits
// for a PID to come back.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.cmd.Process.Pid
}

// Ready waits until a worker process is current: one that passed
// verification and is served. It returns nil at once if there is one; else
// it waits for the start under way, or the next one the restart policy or
// [Process.Restart] begins. If the last start failed, and no other has
// begun since, it returns that error (wrapping its cause, such as
// [ErrVerify]); the restart policy may still try again after its delay. It
// returns an error wrapping [ErrWorkerGone] if no worker will follow, and
// ctx's cause when ctx ends first.
func (p *Process) Ready(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.cur != nil && !p.stopping {
			return nil
		}
		if p.startErr != nil {
			return fmt.Errorf("privsep: %s worker not ready: %w", p.spec.Role, p.startErr)
		}
		changed := p.changed
		p.mu.Unlock()
		var err error
		select {
		case <-changed:
		case <-p.done:
			err = fmt.Errorf("privsep: %s worker not ready: %w: no worker will follow", p.spec.Role, ErrWorkerGone)
		case <-ctx.Done():
			err = fmt.Errorf("privsep: %s worker not ready: %w", p.spec.Role, context.Cause(ctx))
		}
		p.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// setCurrent makes inc, verified, the current worker process, or withdraws
// the current one (nil). Called with p.mu held.
func (p *Process) setCurrent(inc *incarnation) {
	p.cur = inc
	if inc != nil {
		p.again = false
		p.startErr = nil
	}
	p.notify()
}

// notify wakes Ready. Called with p.mu held.
func (p *Process) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Restarts returns how many times the worker was started again.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Done is closed when the worker has exited for good: it was stopped, the
// supervisor shut down, or it exited and its policy does not restart it.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns why the last worker process ended (nil for status 0), once
// Done is closed.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to the current worker process through its pidfd.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur == nil {
		return os.ErrProcessDone
	}
	return cur.signal(sig)
}

func (inc *incarnation) signal(sig syscall.Signal) error {
	select {
	case <-inc.exit:
		return os.ErrProcessDone
	default:
	}
	// cmd.Process signals through the pidfd Go keeps for it: it cannot
	// reach a later process that reused the PID.
	return inc.cmd.Process.Signal(sig)
}

// Stop asks the worker to stop (its context ends), waits for it until ctx
// ends, then kills it. The worker is not restarted.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	cur := p.cur
	p.mu.Unlock()
	p.interrupt()
	if cur != nil {
		cur.stop(ctx)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart stops the current worker process (gracefully, then by force when
// ctx ends) and starts a new one at once, whatever the restart policy. It
// returns once the old process is gone (PID no longer reports it); the new
// one is then starting: [Process.Ready] waits until it is verified.
func (p *Process) Restart(ctx context.Context) error {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return fmt.Errorf("privsep: restart %s worker: %w", p.spec.Role, ErrUnavailable)
	}
	if p.ended {
		p.mu.Unlock()
		return fmt.Errorf("privsep: restart %s worker: %w: it exited and its policy did not restart it", p.spec.Role, ErrWorkerGone)
	}
	cur := p.cur
	if cur != nil {
		cur.forceRestart = true
	} else {
		p.again = true
		p.startErr = nil // a start begins now, unless one is under way
	}
	p.mu.Unlock()
	if cur == nil {
		p.interrupt() // between restarts: start the next one now
		return nil
	}
	// The supervising goroutine sees the exit and starts a new one.
	cur.stop(ctx)
	return nil
}

// waitExit waits for the worker to exit, without reaping it: through its
// pidfd in the parker, so that cmd.Wait then reaps at once (waiting in
// waitid(2) from the start would hold a thread, and its stacks, for the
// worker's whole life). Without a pidfd, it waits in waitid(2) with WNOWAIT.
// Until the worker is reaped its PID cannot name another process.
func (inc *incarnation) waitExit() {
	if inc.pidfd != nil {
		if rc, err := inc.pidfd.SyscallConn(); err == nil {
			var aerr error
			err = rc.Control(func(fd uintptr) {
				aerr = parking.await(context.Background(), int(fd), unix.EPOLLIN)
			})
			if err == nil && aerr == nil {
				return
			}
		}
	}
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, inc.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
}

// stop asks for a graceful stop, then kills when ctx ends.
func (inc *incarnation) stop(ctx context.Context) {
	// Best effort, and never longer than ctx: a worker that does not read
	// gets killed below all the same.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		inc.sess.mc.write(&wire.Msg{Kind: wire.KindStop}, nil)
	}()
	select {
	case <-sent:
	case <-ctx.Done():
	case <-inc.exit:
	}
	select {
	case <-inc.exit:
	case <-ctx.Done():
		inc.signal(syscall.SIGKILL)
		<-inc.exit
	}
}

func (p *Process) interrupt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// Spawn starts a worker as spec says and returns once it is verified and
// serving. With a restart policy, the Process keeps starting new workers as
// their predecessors exit, until stopped.
//
// Before each start, descriptors this process holds without close-on-exec
// (inherited from a shell or a service manager) are marked close-on-exec for
// good, so that no worker receives them: a program that relies on passing
// such descriptors to other children must pass them explicitly.
func (s *Supervisor) Spawn(ctx context.Context, spec Spec) (*Process, error) {
	if s.err != nil {
		return nil, fmt.Errorf("privsep: spawn: %w", s.err)
	}
	if err := checkSpec(&spec); err != nil {
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, ErrUnavailable)
	}
	if s.spawner == nil {
		s.spawner = newSpawner()
	}
	p := &Process{s: s, spec: spec, done: make(chan struct{}), changed: make(chan struct{})}
	s.procs[p] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()

	inc, err := s.start(ctx, &spec, p)
	if err != nil {
		s.mu.Lock()
		delete(s.procs, p)
		s.mu.Unlock()
		close(p.done)
		s.wg.Done()
		return nil, err
	}
	p.mu.Lock()
	p.setCurrent(inc)
	stopping := p.stopping
	p.mu.Unlock()
	go p.supervise(inc)
	if stopping {
		// Shutdown began while we were starting it: it never serves.
		inc.signal(syscall.SIGKILL)
		<-p.done
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, ErrUnavailable)
	}
	return p, nil
}

// checkSpec validates spec and fills in defaults.
func checkSpec(spec *Spec) error {
	if !validName(spec.Role) {
		return fmt.Errorf("invalid role name %q", spec.Role)
	}
	if !spec.AllowRoot && (spec.UID == 0 || spec.GID == 0 || slices.Contains(spec.Groups, 0)) {
		return fmt.Errorf("uid %d gid %d groups %v would leave the worker root or in group 0; set AllowRoot to mean it",
			spec.UID, spec.GID, spec.Groups)
	}
	if spec.UserNS && len(spec.Groups) > 0 {
		return errors.New("a worker in a new user namespace has no supplementary groups")
	}
	if spec.Chroot != "" && spec.Path == "" {
		return errors.New("with Chroot, Path must name the worker binary inside it")
	}
	if err := spec.planConfine(); err != nil { // confine_linux.go
		return err
	}
	if spec.HelloTimeout <= 0 {
		spec.HelloTimeout = 10 * time.Second
	}
	if spec.RestartDelay <= 0 {
		spec.RestartDelay = 100 * time.Millisecond
	}
	if spec.MaxRestartDelay <= 0 {
		spec.MaxRestartDelay = 30 * time.Second
	}
	for _, kv := range spec.Env {
		if !strings.Contains(kv, "=") || strings.HasPrefix(kv, "PEERCRED_PRIVSEP_") {
			return fmt.Errorf("invalid environment entry %q", kv)
		}
	}
	return nil
}

// start execs one worker and verifies it. On any failure the worker is
// killed and reaped and every descriptor closed. It starts serving the worker only if p is not being stopped by then.
func (s *Supervisor) start(ctx context.Context, spec *Spec, p *Process) (*incarnation, error) {
	local, remote, err := peercred.Socketpair(syscall.SOCK_SEQPACKET)
	if err != nil {
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err)
	}
	mc, err := newMsgConn(local, s.lim)
	if err != nil {
		remote.Close()
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err)
	}
	mc.wto = s.cfg.WriteTimeout
	if err := mc.setPassCred(true); err != nil {
		mc.release()
		remote.Close()
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err)
	}
	cmd, ids, err := workerCmd(spec, remote)
	if err != nil {
		mc.release()
		remote.Close()
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err)
	}
	pidfd := -1
	cmd.SysProcAttr.PidFD = &pidfd
	// Whatever this process inherited without close-on-exec (a shell's
	// redirection, a supervisor's sockets) must not reach the worker.
	markInherited(2)
	err = s.spawner.start(cmd, ids)
	remote.Close()
	if err != nil {
		mc.release()
		return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err)
	}
	inc := &incarnation{cmd: cmd, start: time.Now(), exit: make(chan struct{})}
	if pidfd >= 0 {
		inc.pidfd = os.NewFile(uintptr(pidfd), "pidfd")
	}
	fail := func(err error) (*incarnation, error) {
		cmd.Process.Kill()
		if werr := cmd.Wait(); werr != nil && !strings.Contains(werr.Error(), "signal: killed") {
			err = fmt.Errorf("%w (worker: %w)", err, werr)
		}
		mc.release()
		if inc.pidfd != nil {
			inc.pidfd.Close()
		}
		return nil, err
	}
	peer, conn, err := s.verify(ctx, mc, spec, cmd.Process.Pid, ids != nil)
	if err != nil {
		s.log().Warn("privsep: worker refused", "role", spec.Role, "pid", cmd.Process.Pid, "err", err)
		return fail(err)
	}
	peer.PidFD = inc.pidfd
	// From here on the connection the worker made (sendHello): the one
	// it was started with may have been copied before it was safe.
	nmc, err := newMsgConn(conn, s.lim)
	if err != nil {
		return fail(fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err))
	}
	nmc.wto = mc.wto
	mc.release()
	mc = nmc
	if err := mc.detach(); err != nil {
		return fail(fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err))
	}
	sess, err := s.newSession(mc, peer, func() { inc.signal(syscall.SIGKILL) })
	if err != nil {
		return fail(fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, err))
	}
	inc.sess = sess
	if err := mc.write(s.welcome(), nil); err != nil {
		sess.abandon(err)
		return fail(fmt.Errorf("privsep: spawn %s worker: welcome: %w", spec.Role, err))
	}
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	if stopping {
		// Stopped while this worker was starting: it never serves.
		sess.abandon(ErrUnavailable)
		return fail(fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, ErrUnavailable))
	}
	s.log().Info("privsep: worker started", "role", spec.Role, "pid", peer.PID, "uid", peer.UID, "gid", peer.GID)
	sess.start()
	return inc, nil
}

// workerCmd builds the command that re-executes this binary as a worker,
// and the IDs the spawner thread takes for it (nil: none).
func workerCmd(spec *Spec, remote *os.File) (*exec.Cmd, *spawnIDs, error) {
	path := spec.Path
	if path == "" {
		path = "/proc/self/exe"
	}
	env := []string{
		envRole + "=" + spec.Role,
		envParent + "=" + strconv.Itoa(os.Getpid()),
		envArgs + "=" + strconv.Itoa(len(spec.Args)),
	}
	if spec.AllowRoot || spec.UserNS {
		// In its own user namespace the worker is root there, and only
		// there: the parent checks its identity outside.
		env = append(env, envAllowRoot+"=1")
	}
	env = append(env, spec.confineEnv...) // confine_linux.go
	env = append(env, spec.Env...)
	stdout, stderr := spec.Stdout, spec.Stderr
	if stdout == nil {
		stdout = os.Stderr
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	dir := spec.Dir
	if dir == "" {
		dir = "/"
	}
	cmd := &exec.Cmd{
		Path:       path,
		Args:       append([]string{"privsep-" + spec.Role}, spec.Args...),
		Env:        env,
		Dir:        dir,
		Stdout:     stdout,
		Stderr:     stderr,
		ExtraFiles: []*os.File{remote},
		SysProcAttr: &syscall.SysProcAttr{
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
			Chroot:    spec.Chroot,
		},
	}
	sys := cmd.SysProcAttr
	sys.Cloneflags |= confineCloneFlags(spec) // confine_linux.go
	if spec.PIDNS {
		sys.Cloneflags |= syscall.CLONE_NEWPID
	}
	if os.Geteuid() != 0 && spec.Groups != nil {
		// Without root the worker keeps this parent's groups: a spec
		// that asks for others is refused, not quietly given these.
		own, err := os.Getgroups()
		if err != nil {
			return nil, nil, fmt.Errorf("groups: %w", err)
		}
		have := make([]uint32, 0, len(own))
		for _, g := range own {
			have = append(have, uint32(g))
		}
		want := slices.Clone(spec.Groups)
		slices.Sort(have)
		slices.Sort(want)
		if !slices.Equal(slices.Compact(have), slices.Compact(want)) {
			return nil, nil, fmt.Errorf("groups %v: a parent that is not root (euid %d) can only give its workers its own groups, %v (leave Spec.Groups nil)",
				spec.Groups, os.Geteuid(), have)
		}
	}
	if spec.UserNS {
		sys.Cloneflags |= syscall.CLONE_NEWUSER
		sys.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(spec.UID), Size: 1}}
		sys.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(spec.GID), Size: 1}}
		sys.GidMappingsEnableSetgroups = os.Geteuid() == 0
		sys.Credential = &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{}, NoSetGroups: os.Geteuid() != 0}
		return cmd, nil, nil
	}
	if os.Geteuid() != 0 {
		// Without root the kernel lets us be only ourselves.
		if spec.UID != uint32(os.Geteuid()) || spec.GID != uint32(os.Getegid()) {
			return nil, nil, fmt.Errorf("uid %d gid %d: a parent that is not root (euid %d) can only spawn workers as itself",
				spec.UID, spec.GID, os.Geteuid())
		}
		return cmd, nil, nil
	}
	if spec.UID == 0 {
		// Root: all the same whether dumpable or not.
		sys.Credential = &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: append([]uint32{}, spec.Groups...)}
		return cmd, nil, nil
	}
	// Not dumpable from execve on: exec'd with its real GID the spec's
	// and another effective one (spawnids_linux.go). The spawner thread
	// sets the groups, the real and the saved GID; the child the
	// effective GID and the UIDs.
	ids, err := newSpawnIDs(spec)
	if errors.Is(err, errNoSpareGID) {
		// Not dumpable from privsep's init only, as other workers.
		sys.Credential = &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: append([]uint32{}, spec.Groups...)}
		return cmd, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	sys.Credential = &syscall.Credential{Uid: spec.UID, Gid: ids.spare, NoSetGroups: true}
	// The secure exec drops variables the C library deems unsafe for a
	// setgid program (TMPDIR, TZDIR, LD_LIBRARY_PATH, ...) from a cgo
	// worker's environment; the worker's init sets back those of the
	// spec (worker.go).
	for _, kv := range spec.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" && !strings.HasPrefix(k, envKeepPrefix) {
			cmd.Env = append(cmd.Env, envKeepPrefix+k+"="+v)
		}
	}
	// The secure exec makes the Go runtime force GOTRACEBACK=none: the
	// worker sets the one asked for back (worker.go).
	traceback := "single"
	for _, kv := range spec.Env {
		if v, ok := strings.CutPrefix(kv, "GOTRACEBACK="); ok {
			traceback = v
		}
	}
	cmd.Env = append(cmd.Env, envTraceback+"="+traceback)
	return cmd, ids, nil
}

// verify waits for the worker's hello and checks, from what the kernel
// says, that it is the child we started with the spec's identity. It
// returns the connection the hello carried, which the worker made (the
// caller closes it).
//
// withGID: the worker was exec'd by spawnIDs, which adds its GID to its
// supplementary groups.
func (s *Supervisor) verify(ctx context.Context, mc *msgConn, spec *Spec, pid int, withGID bool) (_ *Peer, _ *peercred.Conn, err error) {
	var conn *peercred.Conn
	defer func() {
		if err != nil && conn != nil {
			conn.Close()
		}
	}()
	// fail wraps ErrVerify, and the causes among args (%w in format).
	fail := func(format string, args ...any) (*Peer, *peercred.Conn, error) {
		return nil, nil, fmt.Errorf("%w: %s worker pid %d: "+format, append([]any{ErrVerify, spec.Role, pid}, args...)...)
	}
	deadline := time.Now().Add(spec.HelloTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	m, err := mc.readBefore(ctx, deadline)
	if err != nil {
		if ctx.Err() != nil {
			return fail("no hello: %w", ctx.Err())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fail("no hello within %v", spec.HelloTimeout)
		}
		if isEOF(err) {
			return fail("exited before its hello")
		}
		return fail("hello: %w", err)
	}
	defer m.closeFiles()
	if m.Kind != wire.KindHello {
		return fail("first message is %v, want hello", m.Kind)
	}
	if len(m.Files) != 1 {
		return fail("hello carries %d descriptors, want 1 (the worker's connection)", len(m.Files))
	}
	if m.Op != spec.Role {
		return fail("hello is for role %q, want %q", m.Op, spec.Role)
	}
	if m.Cred == nil {
		return fail("hello has no SCM_CREDENTIALS")
	}
	// SCM_CREDENTIALS: the kernel filled these in at send time (or checked
	// them, had the sender supplied its own).
	if int(m.Cred.Pid) != pid {
		return fail("hello sent by pid %d, not the worker", m.Cred.Pid)
	}
	if m.Cred.Uid != spec.UID {
		return fail("uid is %d, want %d", m.Cred.Uid, spec.UID)
	}
	if m.Cred.Gid != spec.GID {
		return fail("gid is %d, want %d", m.Cred.Gid, spec.GID)
	}
	// The connection: a socket pair the worker made itself, which
	// SO_PEERCRED on our end says (the creator of a pair).
	if conn, err = peercred.FileConn(m.Files[0]); err != nil {
		return fail("the hello's connection: %w", err)
	}
	if typ, err := socketType(conn); err != nil {
		return fail("the hello's connection: SO_TYPE: %w", err)
	} else if typ != syscall.SOCK_SEQPACKET {
		return fail("the hello's connection is socket type %d, want SOCK_SEQPACKET", typ)
	}
	// A listening socket reports its creator too, and is no connection.
	if listening, err := sockoptInt(conn, unix.SO_ACCEPTCONN); err != nil {
		return fail("the hello's connection: SO_ACCEPTCONN: %w", err)
	} else if listening != 0 {
		return fail("the hello's connection is a listening socket, want a connected one")
	}
	if cred := conn.Cred(); cred == nil {
		return fail("the hello's connection has no peer credentials")
	} else if cred.PID != pid || cred.UID != spec.UID {
		return fail("the hello's connection was made by pid %d uid %d, not the worker", cred.PID, cred.UID)
	}
	// /proc of our unreaped child: the PID is still its own. All four IDs
	// (real, effective, saved, filesystem), groups and no_new_privs.
	st, err := proc.ReadStatus("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return fail("%w", err)
	}
	for _, f := range []struct {
		field string
		want  uint32
	}{{"Uid", spec.UID}, {"Gid", spec.GID}} {
		ids, ok := st.IDs(f.field)
		if !ok || len(ids) != 4 {
			v, _ := st.Field(f.field)
			return fail("/proc status %s: %q", f.field, v)
		}
		for _, id := range ids {
			if id != f.want {
				return fail("/proc status %s is %v, want %d in all four", f.field, ids, f.want)
			}
		}
	}
	groups, ok := st.IDs("Groups")
	if !ok {
		v, _ := st.Field("Groups")
		return fail("/proc status Groups: %q", v)
	}
	wantGroups := slices.Clone(spec.Groups)
	if withGID && !slices.Contains(wantGroups, spec.GID) {
		wantGroups = append(wantGroups, spec.GID)
	}
	if os.Geteuid() != 0 {
		// A non-root parent's workers keep its groups: it may not set
		// them, nor (in a new user namespace) let the worker set them.
		wantGroups = nil
		if g, err := os.Getgroups(); err == nil {
			for _, id := range g {
				wantGroups = append(wantGroups, uint32(id))
			}
		}
	}
	slices.Sort(groups)
	slices.Sort(wantGroups)
	if !slices.Equal(groups, wantGroups) {
		return fail("groups are %v, want %v", groups, wantGroups)
	}
	if v, _ := st.Field("NoNewPrivs"); v != "1" {
		return fail("NoNewPrivs is %q, want 1", v)
	}
	// A worker that is not root has no capabilities, whatever its parent
	// had. (In a user namespace of its own it has them there.)
	if spec.UID != 0 && !spec.UserNS {
		for _, f := range []string{"CapPrm", "CapEff", "CapAmb"} {
			caps, _ := st.Field(f)
			if v, err := strconv.ParseUint(caps, 16, 64); err != nil || v != 0 {
				return fail("/proc status %s is %q, want no capabilities", f, caps)
			}
		}
	}
	// Not dumpable, and not traced: no other process of its UID holds
	// its memory, descriptors or connection (dumpable_linux.go).
	if v, _ := st.Field("TracerPid"); v != "0" {
		return fail("traced by pid %s", v)
	}
	if err := checkNotDumpable(spec, pid); err != nil {
		return fail("%w", err)
	}
	if withGID && !slices.Contains(spec.Groups, spec.GID) {
		// The worker's GID, added for its exec: the spec's groups are
		// what its handlers are told.
		groups = slices.DeleteFunc(groups, func(g uint32) bool { return g == spec.GID })
	}
	peer := &Peer{Role: spec.Role, PID: pid, UID: m.Cred.Uid, GID: m.Cred.Gid, Groups: groups}
	if spec.Confine != nil {
		// Every thread's seccomp and no_new_privs, limits, namespaces,
		// and the worker's report in the hello (internal/sandbox).
		if peer.Confinement, err = s.verifyConfinement(spec, pid, m.Payload); err != nil {
			return fail("%w", err)
		}
	}
	return peer, conn, nil
}

// socketType returns c's SO_TYPE.
func socketType(c *peercred.Conn) (int, error) { return sockoptInt(c, unix.SO_TYPE) }

// sockoptInt returns c's socket option opt (at SOL_SOCKET).
func sockoptInt(c *peercred.Conn, opt int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt)
	}); err != nil {
		return 0, err
	}
	return v, serr
}

// supervise waits for each incarnation to exit and starts the next one as
// the restart policy says.
func (p *Process) supervise(inc *incarnation) {
	s := p.s
	defer s.wg.Done()
	delay := p.spec.RestartDelay
	for {
		inc.waitExit()
		// Exited, not yet reaped: withdraw its PID before the reap
		// frees it for another process.
		p.mu.Lock()
		p.setCurrent(nil)
		p.mu.Unlock()
		inc.err = inc.cmd.Wait()
		close(inc.exit)
		cause := fmt.Errorf("%w: %s worker pid %d exited: %s", ErrWorkerGone, p.spec.Role, inc.cmd.Process.Pid, exitText(inc.err))
		if inc.err != nil {
			cause = fmt.Errorf("%w: %s worker pid %d exited: %w", ErrWorkerGone, p.spec.Role, inc.cmd.Process.Pid, inc.err)
		}
		inc.sess.end(cause)
		<-inc.sess.done
		if inc.pidfd != nil {
			inc.pidfd.Close() // handlers, which may use Peer.PidFD, are done
		}
		level := slog.LevelInfo
		if inc.err != nil {
			level = slog.LevelWarn
		}
		s.log().Log(context.Background(), level, "privsep: worker exited", "role", p.spec.Role,
			"pid", inc.cmd.Process.Pid, "status", exitText(inc.err))

		p.mu.Lock()
		p.err = inc.err
		forced := inc.forceRestart || p.again
		restart := !p.stopping && (forced ||
			p.spec.Restart == RestartAlways || p.spec.Restart == RestartOnFailure && inc.err != nil)
		if !restart {
			p.ended = true
			p.mu.Unlock()
			break
		}
		p.restarts++
		wake := make(chan struct{})
		p.wake = wake
		p.mu.Unlock()

		if forced {
			delay = 0
		} else if time.Since(inc.start) > 10*p.spec.MaxRestartDelay {
			delay = p.spec.RestartDelay // it ran long: not a crash loop
		}
		for {
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-wake:
				case <-s.ctx.Done():
				}
				t.Stop()
			}
			delay = min(max(2*delay, p.spec.RestartDelay), p.spec.MaxRestartDelay)
			p.mu.Lock()
			stopping := p.stopping
			p.startErr = nil // this start is under way
			p.mu.Unlock()
			if stopping || s.ctx.Err() != nil {
				inc = nil
				break
			}
			next, err := s.start(s.ctx, &p.spec, p)
			if err != nil {
				s.log().Error("privsep: restart failed", "role", p.spec.Role, "err", err)
				p.mu.Lock()
				p.startErr = err
				p.notify()
				wake = make(chan struct{}) // the last one may be closed
				p.wake = wake
				p.mu.Unlock()
				continue
			}
			inc = next
			break
		}
		if inc == nil {
			p.mu.Lock()
			p.ended = true
			p.mu.Unlock()
			break
		}
		p.mu.Lock()
		p.setCurrent(inc)
		stopping := p.stopping
		p.mu.Unlock()
		if stopping {
			// Stopped while the new worker was starting: it never serves.
			inc.signal(syscall.SIGKILL)
		}
	}
	s.mu.Lock()
	delete(s.procs, p)
	s.mu.Unlock()
	close(p.done)
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
