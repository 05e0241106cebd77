package confine

import (
	"fmt"
	"strings"
)

// Verified is what the parent knows of a spawned worker's confinement
// (privsep's Process.Confinement and Peer.Confinement). The parent read it
// from /proc/PID (its unreaped child, so the PID is the worker's own) after
// the worker's hello and before it admitted the worker, and checked it
// against the worker's [Config]; a worker that did not match was killed.
// SelfReported is the one part the kernel does not show.
type Verified struct {
	// Threads is how many threads were checked (/proc/PID/task).
	Threads int
	// NoNewPrivs: NoNewPrivs is 1 on every thread.
	NoNewPrivs bool
	// Seccomp: Seccomp is 2 (filter) on every thread, with at least
	// SeccompFilters filters, one more than the parent's own.
	Seccomp        bool
	SeccompFilters int
	// Limits are the worker's soft limits (its hard limits are equal
	// where the Config set them); Unlimited means none.
	NoFile, Core, FileSize, AddressSpace uint64
	// Namespaces lists the new namespaces the Config asked for ("ipc",
	// "mnt", "net"), each checked to differ from the parent's.
	Namespaces []string

	// SelfReported is what the worker said in its hello about what it
	// applied. The kernel shows no Landlock domain in /proc, so this is
	// the worker's word; it was spoken before any code of the role ran.
	SelfReported struct {
		// LandlockKernelABI is the kernel's Landlock ABI version (0:
		// none; an ABI 6 with the signal-scoping bug counts as 5).
		LandlockKernelABI int
		// LandlockABI is the version whose restrictions were applied;
		// 0 means no Landlock domain.
		LandlockABI int
		// Landlock describes the handled rights, as go-landlock does.
		Landlock string
		// LandlockRules is how many path and port rules were added.
		LandlockRules int
		// Seccomp: the filter was installed on all threads (TSYNC),
		// with SeccompInsns BPF instructions, refusing with OnDenied
		// (a DenyAction's String).
		Seccomp      bool
		SeccompInsns int
		OnDenied     string
		// Skipped lists what was asked but not applied (best effort),
		// and why.
		Skipped []string
	}
}

// Unlimited is an unlimited resource limit (RLIM_INFINITY).
const Unlimited = ^uint64(0)

// String describes v on one line, as the parent logs it: what it
// verified, then what the worker reported. A nil v is "none".
func (v *Verified) String() string {
	if v == nil {
		return "none"
	}
	r := &v.SelfReported
	var b strings.Builder
	fmt.Fprintf(&b, "verified: no_new_privs=%v seccomp=%v filters=%d threads=%d nofile=%s core=%s fsize=%s as=%s",
		v.NoNewPrivs, v.Seccomp, v.SeccompFilters, v.Threads, limitText(v.NoFile), limitText(v.Core), limitText(v.FileSize), limitText(v.AddressSpace))
	if len(v.Namespaces) > 0 {
		fmt.Fprintf(&b, " ns=%s", strings.Join(v.Namespaces, ","))
	}
	fmt.Fprintf(&b, "; self-reported: landlock ABI %d (kernel %d) %s rules=%d seccomp=%v insns=%d on_denied=%s",
		r.LandlockABI, r.LandlockKernelABI, r.Landlock, r.LandlockRules, r.Seccomp, r.SeccompInsns, r.OnDenied)
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, " skipped=%q", r.Skipped)
	}
	return b.String()
}

func limitText(v uint64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return fmt.Sprint(v)
}
