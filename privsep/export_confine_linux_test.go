package privsep

import "github.com/peercred/peercred/privsep/internal/sandbox"

// EnvConfine is the environment variable that passes a Confine to a worker:
// a test worker that unsets it before Main skips its confinement.
const EnvConfine = sandbox.Env
