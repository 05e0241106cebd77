//go:build linux

package privsep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/forkthread"
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
	if inc.pidfd != nil {
		// What verify reads of /proc/PID must be the worker's.
		if err := pidfdAlive(inc.pidfd, cmd.Process.Pid); err != nil {
			err = fmt.Errorf("%w: pid %d: %w", ErrVerify, cmd.Process.Pid, err)
			s.log().Warn("privsep: worker refused", "role", spec.Role, "pid", cmd.Process.Pid, "err", err)
			return fail(err)
		}
	}
	peer, conn, err := s.verify(ctx, mc, spec, cmd.Process.Pid, ids != nil)
	if err != nil {
		s.log().Warn("privsep: worker refused", "role", spec.Role, "pid", cmd.Process.Pid, "err", err)
		return fail(err)
	}
	peer.PidFD = inc.pidfd
	// Its socket pair reports us, the pair's creator: attest the child
	// we started, by its pidfd.
	attestErr := errors.New("the kernel gave no pidfd for the worker")
	if inc.pidfd != nil {
		peer.Process, attestErr = peercred.AttestPidFD(inc.pidfd, nil)
	}
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
	s.log().Info("privsep: worker started", append([]any{"role", spec.Role, "pid", peer.PID, "uid", peer.UID, "gid", peer.GID},
		processAttrs(peer.Process, attestErr)...)...)
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
