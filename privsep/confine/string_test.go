package confine_test

import (
	"testing"

	"github.com/peercred/peercred/privsep/confine"
)

// TestString: how the parent logs a confinement, and the names of rights
// and actions in it.
func TestString(t *testing.T) {
	v := &confine.Verified{Threads: 5, NoNewPrivs: true, Seccomp: true, SeccompFilters: 1,
		NoFile: 64, FileSize: confine.Unlimited, AddressSpace: confine.Unlimited, Namespaces: []string{"ipc", "net"}}
	v.SelfReported.LandlockKernelABI, v.SelfReported.LandlockABI, v.SelfReported.LandlockRules = 7, 6, 2
	v.SelfReported.Seccomp, v.SelfReported.SeccompInsns, v.SelfReported.OnDenied = true, 312, "eperm"
	v.SelfReported.Skipped = []string{"TCP port rules"}
	for _, tt := range []struct{ got, want string }{
		{v.String(), `verified: no_new_privs=true seccomp=true filters=1 threads=5 nofile=64 core=0 fsize=unlimited as=unlimited ns=ipc,net; ` +
			`self-reported: landlock ABI 6 (kernel 7)  rules=2 seccomp=true insns=312 on_denied=eperm skipped=["TCP port rules"]`},
		{(*confine.Verified)(nil).String(), "none"},
		{(confine.LandlockRead | confine.LandlockConnect).String(), "read+connect"},
		{confine.LandlockAccess(0).String(), "none"},
		{confine.DenyKill.String(), "kill"},
		{confine.DenyAction(7).String(), "DenyAction(7)"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}
