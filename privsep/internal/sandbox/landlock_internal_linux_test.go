package sandbox

import (
	"testing"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/peercred/peercred/privsep/confine"
)

// TestLandlockPathnameSockets: the domain handles pathname Unix sockets
// (LANDLOCK_ACCESS_FS_RESOLVE_UNIX) wherever the kernel has Landlock ABI 9,
// whatever version the Config asks for, and confine.LandlockConnect grants them.
// The kernels these tests run on may lack ABI 9: this checks the ruleset
// that would be created, not the kernel's answer to a connect.
func TestLandlockPathnameSockets(t *testing.T) {
	// The value of the kernel's include/uapi/linux/landlock.h ("available
	// since the ninth version of the Landlock ABI").
	if llConnect != 1<<16 {
		t.Fatalf("LANDLOCK_ACCESS_FS_RESOLVE_UNIX is %#x here, 1<<16 in the kernel's uapi", uint64(llConnect))
	}
	for _, tt := range []struct {
		abi, have int
		want      bool
	}{
		{0, 9, false}, // no domain
		{6, 7, false}, // the kernel cannot
		{8, 8, false},
		{6, 9, true}, // the kernel can: a lower version asked for does not matter
		{4, 11, true},
		{9, 9, true},
		{11, 11, true},
	} {
		cfg := landlockConfig(tt.abi, tt.have)
		if got := cfg.HandledAccessFS&llConnect != 0; got != tt.want {
			t.Errorf("ABI %d on a kernel of ABI %d: pathname sockets handled %v, want %v (%v)", tt.abi, tt.have, got, tt.want, cfg)
		}
		if base := landlockConfigs[tt.abi]; cfg.HandledAccessNet != base.HandledAccessNet || cfg.Scoped != base.Scoped ||
			cfg.HandledAccessFS&^llConnect != base.HandledAccessFS&^llConnect {
			t.Errorf("ABI %d on a kernel of ABI %d: %v, want %v but for pathname sockets", tt.abi, tt.have, cfg, base)
		}
	}
	for _, tt := range []struct {
		access confine.LandlockAccess
		dir    bool
		want   uint64
	}{
		{confine.LandlockConnect, false, ll.AccessFSResolveUnix}, // a socket file
		{confine.LandlockConnect, true, ll.AccessFSResolveUnix},  // the sockets beneath a directory
		{confine.LandlockWrite, true, uint64(llWrite)},           // creating a socket is not connecting to one
		{confine.LandlockRead | confine.LandlockWrite | confine.LandlockExec, false, ll.AccessFSReadFile | ll.AccessFSWriteFile | ll.AccessFSTruncate | ll.AccessFSExecute},
	} {
		if got := uint64(ruleAccess(tt.access, tt.dir)); got != tt.want {
			t.Errorf("ruleAccess(%v, dir %v) = %#x, want %#x", tt.access, tt.dir, got, tt.want)
		}
	}
	if got := (confine.LandlockRead | confine.LandlockConnect).String(); got != "read+connect" {
		t.Errorf("String() = %q", got)
	}
}
