package privsep

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/peercred/peercred/internal/seccomp"
	"golang.org/x/sys/unix"
)

// confineCloneFlags returns the namespace flags of spec's Confine.
func confineCloneFlags(spec *Spec) uintptr {
	c := spec.Confine
	if c == nil {
		return 0
	}
	var flags uintptr
	if c.NewNet {
		flags |= syscall.CLONE_NEWNET
	}
	if c.NewMount {
		flags |= syscall.CLONE_NEWNS
	}
	if c.NewIPC {
		flags |= syscall.CLONE_NEWIPC
	}
	return flags
}

// confineSelf applies the worker's Confine, if the parent passed one, and
// returns the report for the hello: nil without a Confine. On error the
// report says why too: the worker sends it, the parent refuses the worker.
//
// The order matters: limits first (setrlimit is refused afterwards), then
// Landlock (whose rules open their paths, and which go-landlock applies to
// every thread with signals), then the seccomp filter, which from then on
// refuses both.
func confineSelf() ([]byte, error) {
	env, ok := os.LookupEnv(envConfine)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(envConfine)
	var rep ConfinementReport
	err := confineWith(env, &rep)
	if err != nil {
		rep.Err = err.Error()
	}
	b, merr := json.Marshal(&rep)
	if merr != nil && err == nil {
		err = merr
	}
	return b, err
}

func confineWith(env string, rep *ConfinementReport) error {
	var wc workerConfine
	if err := json.Unmarshal([]byte(env), &wc); err != nil {
		return fmt.Errorf("confine: %s: %w", envConfine, err)
	}
	c := &wc.Confine
	var prog []seccomp.Insn
	if wc.NoFilter == "" {
		var err error
		if prog, err = seccomp.Decode(wc.Filter); err != nil {
			return fmt.Errorf("confine: %w", err)
		}
		// The PID the filter lets the runtime signal (its own threads,
		// itself): ours, as our PID namespace numbers it.
		for i := range prog {
			if prog[i].K == pidPlaceholder {
				prog[i].K = uint32(os.Getpid())
			}
		}
	}
	if err := setLimits(c); err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	if err := applyLandlock(c, rep); err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	if prog == nil {
		rep.Skipped = append(rep.Skipped, wc.NoFilter)
		return nil
	}
	// Landlock set no_new_privs on every thread; the filter needs it on
	// this one at least.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("confine: %w", os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err))
	}
	if err := seccomp.Install(prog); err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	rep.Seccomp = true
	rep.SeccompInsns = len(prog)
	rep.OnDenied = c.OnDenied.String()
	return nil
}

// setLimits sets the resource limits of c, soft and hard, so the worker
// cannot raise them again.
func setLimits(c *Confine) error {
	for _, l := range []struct {
		res  int
		name string
		v    uint64
		set  bool
	}{
		{unix.RLIMIT_CORE, "RLIMIT_CORE", 0, true},
		{unix.RLIMIT_NOFILE, "RLIMIT_NOFILE", c.NoFile, c.NoFile != 0},
		{unix.RLIMIT_FSIZE, "RLIMIT_FSIZE", c.FileSize, c.FileSize != 0},
		{unix.RLIMIT_AS, "RLIMIT_AS", c.AddressSpace, c.AddressSpace != 0},
	} {
		if !l.set {
			continue
		}
		// syscall.Setrlimit, not unix: for RLIMIT_NOFILE it also stops
		// os/exec from restoring the limit the process started with.
		if err := syscall.Setrlimit(l.res, &syscall.Rlimit{Cur: l.v, Max: l.v}); err != nil {
			return fmt.Errorf("setrlimit %s %d: %w", l.name, l.v, err)
		}
	}
	return nil
}

// Confinement returns what the parent verified and the worker reported of
// the current worker process's confinement; nil if its Spec has no Confine,
// or between restarts.
func (p *Process) Confinement() *Confinement {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.cur.sess == nil {
		return nil
	}
	return p.cur.sess.peer.Confinement
}

// planConfine validates spec's Confine in the parent, before any process is
// started, and prepares what the worker gets: the Confine and its compiled
// seccomp filter, in its environment. The filter is compiled here, once per
// Spawn, rather than in each worker (where it cost a fresh process more):
// the worker only puts its PID in it.
func (spec *Spec) planConfine() error {
	c := spec.Confine
	spec.confineEnv = nil
	if c == nil {
		return nil
	}
	if c.LandlockABI < 0 || c.LandlockABI > maxLandlockABI {
		return fmt.Errorf("confine: Landlock ABI %d: this package knows versions 1 to %d", c.LandlockABI, maxLandlockABI)
	}
	for _, r := range c.Landlock {
		if !filepath.IsAbs(r.Path) {
			return fmt.Errorf("confine: Landlock path %q is not absolute", r.Path)
		}
		if r.Access == 0 || r.Access&^(LandlockRead|LandlockWrite|LandlockExec|LandlockConnect) != 0 {
			return fmt.Errorf("confine: Landlock path %s: invalid access %#x", r.Path, uint8(r.Access))
		}
	}
	for _, p := range c.Promises {
		if !slices.Contains(promises, p) {
			return fmt.Errorf("confine: unknown promise %q", p)
		}
	}
	if c.OnDenied < DenyEPERM || c.OnDenied > DenyLog {
		return fmt.Errorf("confine: invalid OnDenied %d", int(c.OnDenied))
	}
	wc := workerConfine{Confine: *c}
	f, err := buildFilter(c, pidPlaceholder)
	var prog []seccomp.Insn
	if err == nil {
		prog, err = f.Assemble()
	}
	switch {
	case err == nil:
		wc.Filter = seccomp.Encode(prog)
	case errors.Is(err, errors.ErrUnsupported) && c.BestEffort:
		wc.NoFilter = err.Error()
	default:
		return fmt.Errorf("confine: %w", err)
	}
	if !c.BestEffort {
		if have, want := landlockKernelABI(), c.landlockABI(); have < want {
			return fmt.Errorf("confine: %w", missingABI(want, have))
		}
	}
	b, err := json.Marshal(&wc)
	if err != nil {
		return fmt.Errorf("confine: %w", err)
	}
	spec.confineEnv = []string{envConfine + "=" + string(b)}
	return nil
}
