package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/peercred/peercred/internal/seccomp"
	"github.com/peercred/peercred/privsep/confine"
)

// Prepare validates c in the parent, before any process is started, and
// returns what the worker gets: c and its compiled seccomp filter, as
// variables of its environment, for [Apply]. The filter is compiled here,
// once per Spawn, rather than in each worker (where it cost a fresh process
// more): the worker only puts its PID in it. Without c there is nothing to
// prepare: Prepare returns nil.
func Prepare(c *confine.Config) ([]string, error) {
	if c == nil {
		return nil, nil
	}
	if c.LandlockABI < 0 || c.LandlockABI > maxLandlockABI {
		return nil, fmt.Errorf("confine: Landlock ABI %d: this package knows versions 1 to %d", c.LandlockABI, maxLandlockABI)
	}
	for _, r := range c.Landlock {
		if !filepath.IsAbs(r.Path) {
			return nil, fmt.Errorf("confine: Landlock path %q is not absolute", r.Path)
		}
		if r.Access == 0 || r.Access&^(confine.LandlockRead|confine.LandlockWrite|confine.LandlockExec|confine.LandlockConnect) != 0 {
			return nil, fmt.Errorf("confine: Landlock path %s: invalid access %#x", r.Path, uint8(r.Access))
		}
	}
	for _, p := range c.Promises {
		if !slices.Contains(promises, p) {
			return nil, fmt.Errorf("confine: unknown promise %q", p)
		}
	}
	if c.OnDenied < confine.DenyEPERM || c.OnDenied > confine.DenyLog {
		return nil, fmt.Errorf("confine: invalid OnDenied %d", int(c.OnDenied))
	}
	wc := workerConfig{Config: *c}
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
		return nil, fmt.Errorf("confine: %w", err)
	}
	if !c.BestEffort {
		if have, want := landlockKernelABI(), landlockABI(c); have < want {
			return nil, fmt.Errorf("confine: %w", missingABI(want, have))
		}
	}
	b, err := json.Marshal(&wc)
	if err != nil {
		return nil, fmt.Errorf("confine: %w", err)
	}
	return []string{Env + "=" + string(b)}, nil
}

// CloneFlags returns the namespace flags that c asks of clone(2): the
// parent starts the worker in them.
func CloneFlags(c *confine.Config) uintptr {
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

// defaultLandlockABI is the Landlock version a zero LandlockABI means.
const defaultLandlockABI = 6

// maxLandlockABI is the newest Landlock version this package (through
// go-landlock) knows.
const maxLandlockABI = 11

// landlockABI is the version c asks for.
func landlockABI(c *confine.Config) int {
	if c.LandlockABI == 0 {
		return defaultLandlockABI
	}
	return c.LandlockABI
}

// workerConfig is what a confined worker gets from its parent (JSON, in
// Env).
type workerConfig struct {
	confine.Config
	// Filter is the compiled seccomp filter (seccomp.Encode), with
	// pidPlaceholder where the worker's PID goes.
	Filter []byte `json:",omitempty"`
	// NoFilter says why there is none (best effort only).
	NoFilter string `json:",omitempty"`
}

// Env is the environment variable that carries a worker's workerConfig
// from the parent. (A test worker that unsets it before privsep's Main
// skips its confinement, for the parent to catch.)
const Env = "PEERCRED_PRIVSEP_CONFINE"

// pidPlaceholder stands for the worker's PID in a filter compiled by the
// parent, which cannot know it: no PID is that large (PID_MAX_LIMIT is
// 2^22), and no other constant of the filter is this one.
const pidPlaceholder = 0xfffffff0

// missingABI is the error of a strict confinement on a kernel with an older
// Landlock.
func missingABI(want, have int) error {
	if have == 0 {
		//lint:ignore ST1005 Landlock is a proper noun, the kernel's name for the LSM.
		return fmt.Errorf("Landlock ABI %d needed, the kernel has no Landlock (not built in, or not in the lsm= boot list): %w", want, errors.ErrUnsupported)
	}
	//lint:ignore ST1005 Landlock is a proper noun, the kernel's name for the LSM.
	return fmt.Errorf("Landlock ABI %d needed (%s), the kernel has ABI %d: %w", want, abiFeature(want), have, errors.ErrUnsupported)
}

// abiFeature names what a Landlock ABI version added.
func abiFeature(v int) string {
	switch v {
	case 1:
		return "filesystem rules"
	case 2:
		return "moving files between directories"
	case 3:
		return "truncation"
	case 4:
		return "TCP bind and connect ports"
	case 5:
		return "ioctl on device files"
	case 6:
		return "scoping of abstract Unix sockets and signals"
	case 7:
		return "audit logging flags"
	case 8:
		return "enforcement on all threads at once (TSYNC)"
	case 9:
		return "pathname Unix socket connect"
	case 10:
		return "UDP bind and send"
	case 11:
		return "ABI 11"
	}
	return fmt.Sprintf("ABI %d", v)
}
