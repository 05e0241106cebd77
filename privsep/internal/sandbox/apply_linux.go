package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"github.com/peercred/peercred/internal/seccomp"
	"github.com/peercred/peercred/privsep/confine"
	"golang.org/x/sys/unix"
)

// Apply confines the worker as its parent asked ([Prepare], in [Env]), if
// it did, and returns the report for the hello: nil without a
// confinement. On error the report says why too: the worker sends it, the
// parent refuses the worker ([Verify]).
//
// The order matters: limits first (setrlimit is refused afterwards), then
// Landlock (whose rules open their paths, and which go-landlock applies to
// every thread with signals), then the seccomp filter, which from then on
// refuses both.
func Apply() ([]byte, error) {
	env, ok := os.LookupEnv(Env)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(Env)
	var rep report
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

func confineWith(env string, rep *report) error {
	var wc workerConfig
	if err := json.Unmarshal([]byte(env), &wc); err != nil {
		return fmt.Errorf("confine: %s: %w", Env, err)
	}
	c := &wc.Config
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
func setLimits(c *confine.Config) error {
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

// report is a worker's report of what it applied: the hello payload of a
// confined worker (JSON). [Verify] keeps it in [confine.Verified], as
// SelfReported.
type report struct {
	LandlockKernelABI int      `json:"kernel_abi"`
	LandlockABI       int      `json:"abi"`
	Landlock          string   `json:"landlock,omitempty"`
	LandlockRules     int      `json:"rules"`
	Seccomp           bool     `json:"seccomp"`
	SeccompInsns      int      `json:"insns,omitempty"`
	OnDenied          string   `json:"on_denied,omitempty"`
	Skipped           []string `json:"skipped,omitempty"`
	// Err is why the worker could not confine itself; it exits.
	Err string `json:"err,omitempty"`
}

// keep records r in v.
func (r *report) keep(v *confine.Verified) {
	s := &v.SelfReported
	s.LandlockKernelABI, s.LandlockABI, s.Landlock, s.LandlockRules = r.LandlockKernelABI, r.LandlockABI, r.Landlock, r.LandlockRules
	s.Seccomp, s.SeccompInsns, s.OnDenied, s.Skipped = r.Seccomp, r.SeccompInsns, r.OnDenied, r.Skipped
}
