package sandbox

import (
	"errors"
	"fmt"
	"os"

	"github.com/landlock-lsm/go-landlock/landlock"
	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/peercred/peercred/privsep/confine"
)

// landlockKernelABI returns the kernel's Landlock ABI version, 0 if it has
// none. Like go-landlock, it counts an ABI 6 without the fix of the
// signal-scoping bug (erratum 2) as 5, so that both agree on what the kernel
// can do.
func landlockKernelABI() int {
	v, err := ll.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	if v >= 6 {
		if errata, err := ll.LandlockGetErrata(); err != nil || errata&0x2 == 0 {
			v = 5
		}
	}
	return v
}

// landlockConfigs are go-landlock's configurations of each ABI version,
// handling every right that version knows.
var landlockConfigs = []landlock.Config{
	{}, landlock.V1, landlock.V2, landlock.V3, landlock.V4, landlock.V5, landlock.V6,
	landlock.V7, landlock.V8, landlock.V9, landlock.V10, landlock.V11,
}

// Rights of a confine.LandlockRule, and those that apply to a file (not a
// directory): Landlock refuses directory rights on a file.
const (
	llRead  = ll.AccessFSReadFile | ll.AccessFSReadDir
	llWrite = ll.AccessFSWriteFile | ll.AccessFSTruncate | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile |
		ll.AccessFSMakeDir | ll.AccessFSMakeReg | ll.AccessFSMakeSym | ll.AccessFSMakeSock | ll.AccessFSMakeFifo
	llExec    = ll.AccessFSExecute
	llConnect = ll.AccessFSResolveUnix // LANDLOCK_ACCESS_FS_RESOLVE_UNIX, 1 << 16 in the kernel's uapi
	llFile    = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSTruncate | ll.AccessFSReadFile | llConnect
)

// resolveUnixABI is the Landlock ABI version that restricts connecting and
// sending to pathname Unix sockets (LANDLOCK_ACCESS_FS_RESOLVE_UNIX).
const resolveUnixABI = 9

// landlockConfig is the configuration that applies Landlock ABI abi on a
// kernel of ABI have (>= abi): the rights of abi, and pathname Unix
// sockets wherever the kernel can restrict them, whatever version abi is.
func landlockConfig(abi, have int) landlock.Config {
	cfg := landlockConfigs[abi]
	if abi > 0 && have >= resolveUnixABI {
		cfg.HandledAccessFS |= llConnect
	}
	return cfg
}

// ruleAccess is what a confine.LandlockRule's access grants on a directory, or on
// another file.
func ruleAccess(a confine.LandlockAccess, dir bool) landlock.AccessFSSet {
	var access landlock.AccessFSSet
	if a&confine.LandlockRead != 0 {
		access |= llRead
	}
	if a&confine.LandlockWrite != 0 {
		access |= llWrite
	}
	if a&confine.LandlockExec != 0 {
		access |= llExec
	}
	if a&confine.LandlockConnect != 0 {
		access |= llConnect
	}
	if !dir {
		access &= llFile
	}
	return access
}

// applyLandlock restricts every thread of the process as c says and fills in
// the Landlock part of the report. Strict, it fails rather than apply less
// than asked; best effort, it applies what the kernel has and lists what it
// left out in rep.Skipped.
func applyLandlock(c *confine.Config, rep *report) error {
	want := landlockABI(c)
	have := landlockKernelABI()
	rep.LandlockKernelABI = have
	abi := want
	if have < want {
		if !c.BestEffort {
			return missingABI(want, have)
		}
		abi = have
		for v := have + 1; v <= want; v++ {
			rep.Skipped = append(rep.Skipped, fmt.Sprintf("Landlock ABI %d: %s (kernel has ABI %d)", v, abiFeature(v), have))
		}
	}
	if abi == 0 {
		return nil
	}
	cfg := landlockConfig(abi, have)
	var rules []landlock.Rule
	for _, r := range c.Landlock {
		fi, err := os.Stat(r.Path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && r.IgnoreMissing {
				continue
			}
			if c.BestEffort {
				rep.Skipped = append(rep.Skipped, fmt.Sprintf("Landlock rule for %s: %v", r.Path, err))
				continue
			}
			//lint:ignore ST1005 Landlock is a proper noun, the kernel's name for the LSM.
			return fmt.Errorf("Landlock rule for %s: %w", r.Path, err)
		}
		access := ruleAccess(r.Access, fi.IsDir()) & cfg.HandledAccessFS
		if access == 0 {
			continue
		}
		// IgnoreIfMissing: a path removed since the Stat above gets no
		// rule, which grants less, never more.
		rules = append(rules, landlock.PathAccess(access, r.Path).IgnoreIfMissing())
	}
	if cfg.HandledAccessNet&ll.AccessNetBindTCP != 0 {
		for _, port := range c.BindTCP {
			rules = append(rules, landlock.BindTCP(port))
		}
		for _, port := range c.ConnectTCP {
			rules = append(rules, landlock.ConnectTCP(port))
		}
	} else if len(c.BindTCP)+len(c.ConnectTCP) > 0 {
		// Only in best effort: strict needed ABI 4 already.
		rep.Skipped = append(rep.Skipped, fmt.Sprintf("TCP port rules: Landlock ABI %d does not restrict TCP", abi))
	}
	// Not BestEffort: go-landlock then applies exactly cfg or fails. (Its
	// best effort mode can apply nothing and return nil.)
	if err := cfg.Restrict(rules...); err != nil {
		//lint:ignore ST1005 Landlock is a proper noun, the kernel's name for the LSM.
		return fmt.Errorf("Landlock: %w", err)
	}
	rep.LandlockABI = abi
	rep.Landlock = cfg.String()
	rep.LandlockRules = len(rules)
	return nil
}
