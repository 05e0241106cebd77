package privsep

import (
	"github.com/peercred/peercred/privsep/confine"
	"github.com/peercred/peercred/privsep/internal/sandbox"
)

// A worker's confinement, [Spec.Confine], from privsep's side: the
// mechanics (Landlock, seccomp, limits, /proc) are in internal/sandbox.

// planConfine validates spec's Confine in the parent, before any process is
// started, and prepares what the worker gets in its environment.
func (spec *Spec) planConfine() error {
	env, err := sandbox.Prepare(spec.Confine)
	spec.confineEnv = env
	return err
}

// confineCloneFlags returns the namespace flags of spec's Confine.
func confineCloneFlags(spec *Spec) uintptr { return sandbox.CloneFlags(spec.Confine) }

// confineSelf applies the worker's Confine, if the parent passed one, and
// returns the report for the hello: nil without a Confine. On error the
// report says why too: the worker sends it, the parent refuses the worker.
func confineSelf() ([]byte, error) { return sandbox.Apply() }

// verifyConfinement checks a confined worker that said hello with payload,
// against spec, and logs what it verified. The worker is our unreaped
// child, so pid is still its own. An error says what did not match; the
// caller kills the worker.
func (s *Supervisor) verifyConfinement(spec *Spec, pid int, payload []byte) (*confine.Verified, error) {
	v, err := sandbox.Verify(spec.Confine, pid, payload)
	if err != nil {
		return nil, err
	}
	if spec.Confine.OnDenied == confine.DenyLog || len(v.SelfReported.Skipped) > 0 {
		s.log().Warn("privsep: worker confined with gaps", "role", spec.Role, "pid", pid, "confinement", v.String())
	} else {
		s.log().Info("privsep: worker confined", "role", spec.Role, "pid", pid, "confinement", v.String())
	}
	return v, nil
}

// Confinement returns what the parent verified, and the worker reported,
// of the current worker process's confinement; nil if its Spec has no
// Confine, or between restarts.
func (p *Process) Confinement() *confine.Verified {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil || p.cur.sess == nil {
		return nil
	}
	return p.cur.sess.peer.Confinement
}
