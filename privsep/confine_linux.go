package privsep

import (
	"encoding/json"
	"fmt"
	"os"
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
