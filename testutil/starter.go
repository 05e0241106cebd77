//go:build unix

package testutil

import (
	"fmt"
	"os/exec"
	"sync"

	"github.com/peercred/peercred/internal/forkthread"
)

// The kernel sends a child's parent-death signal when the thread that forked
// it exits, not when the process does, and Go ends the thread of a goroutine
// that exits while locked to it. So that a helper does not die with some
// test's thread, every helper is forked from one thread (a forkthread.Thread)
// that is never closed, and so alive, until the test binary exits.

// starter is the thread that forks helpers, or why it could not start.
var starter = sync.OnceValues(func() (*forkthread.Thread, error) {
	th, err := forkthread.New(forkthread.Options{})
	if err != nil {
		return nil, fmt.Errorf("testutil: start the thread that forks helpers: %w", err)
	}
	return th, nil
})

// startStarter starts the thread that forks helpers. Main calls it before
// the tests run, so that the goroutine count during tests does not depend on
// whether a process was started yet.
func startStarter() { starter() }

// startCmd runs beforeFork (if not nil) and then cmd.Start on the starter
// thread.
func startCmd(cmd *exec.Cmd, beforeFork func() error) error {
	th, err := starter()
	if err != nil {
		return err
	}
	return th.Do(func() error {
		if beforeFork != nil {
			if err := beforeFork(); err != nil {
				return err
			}
		}
		return cmd.Start()
	})
}
