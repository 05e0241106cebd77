package forkthread

import (
	"os"

	"golang.org/x/sys/unix"
)

// setup gives the calling thread, locked, the state opts asks for.
func setup(opts Options) error {
	if opts.NoNewPrivs {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_SET_NO_NEW_PRIVS", err)
		}
	}
	return nil
}

// isMainThread says whether the calling thread is the process's first one.
func isMainThread() bool { return unix.Gettid() == unix.Getpid() }
