//go:build unix

package testutil

import (
	"os/exec"
	"runtime"
	"sync"
)

// The kernel sends a child's parent-death signal when the thread that forked
// it exits, not when the process does, and Go ends the thread of a goroutine
// that exits while locked to it. So that a helper does not die with some
// test's thread, every helper is forked from one thread that stays locked,
// and so alive, until the test binary exits.

type startRequest struct {
	cmd        *exec.Cmd
	beforeFork func() error // run on the starter thread just before cmd.Start, if not nil
	done       chan<- error
}

var starter struct {
	once sync.Once
	reqs chan startRequest
}

// startStarter starts the goroutine that forks helpers. It lives, locked to
// its thread, until the process exits. Main calls it before the tests run, so
// that the goroutine count during tests does not depend on whether a process
// was started yet.
func startStarter() {
	starter.once.Do(func() {
		starter.reqs = make(chan startRequest)
		go func() {
			runtime.LockOSThread() // never unlocked: see above
			for r := range starter.reqs {
				if r.beforeFork != nil {
					if err := r.beforeFork(); err != nil {
						r.done <- err
						continue
					}
				}
				r.done <- r.cmd.Start()
			}
		}()
	})
}

// startCmd runs beforeFork (if not nil) and then cmd.Start on the starter
// thread.
func startCmd(cmd *exec.Cmd, beforeFork func() error) error {
	startStarter()
	done := make(chan error, 1)
	starter.reqs <- startRequest{cmd: cmd, beforeFork: beforeFork, done: done}
	return <-done
}
