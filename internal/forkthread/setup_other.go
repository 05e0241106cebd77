//go:build unix && !linux

package forkthread

import (
	"errors"
	"fmt"
)

// setup gives the calling thread, locked, the state opts asks for.
func setup(opts Options) error {
	if opts.NoNewPrivs {
		return fmt.Errorf("forkthread: no_new_privs: %w", errors.ErrUnsupported)
	}
	return nil
}

// isMainThread says whether the calling thread is the process's first one,
// which the runtime never ends. Here it cannot tell (false): a Thread that
// ran on the main thread is parked for good when closed, not ended.
func isMainThread() bool { return false }
