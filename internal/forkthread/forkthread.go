//go:build unix

// Package forkthread runs functions on a dedicated OS thread, one at a time.
// It is for starting child processes from a thread whose per-thread state
// the children need:
//
//   - The parent-death signal (Pdeathsig, PR_SET_PDEATHSIG) is sent when
//     the thread that forked the child exits, not when the process does, and
//     Go ends a goroutine's thread whenever it likes (and always when the
//     goroutine exits while locked to it). A child forked from a [Thread]
//     gets its signal when the Thread is closed, or when the process exits.
//   - Attributes set on one thread only (no_new_privs, IDs changed with raw
//     system calls, capabilities) are inherited by the children it forks.
//     A Thread's goroutine never unlocks it, so when the Thread is closed
//     the thread ends with whatever state it had, and no other goroutine
//     ever runs with that state.
//
// Per-thread state of the caller of [Thread.Do] (setns or unshare after
// runtime.LockOSThread, say) does not reach the function it runs.
package forkthread

import (
	"errors"
	"runtime"
	"sync"
)

// ErrClosed is returned by [Thread.Do] once the thread is closed.
var ErrClosed = errors.New("forkthread: thread closed")

// Options say what state a [Thread] is given before anything runs on it.
// The zero value gives it none: it is then like any other thread of the
// process.
type Options struct {
	// NoNewPrivs sets no_new_privs on the thread (prctl
	// PR_SET_NO_NEW_PRIVS, Linux only): the children it forks, and the
	// programs they exec, can gain no privileges through exec (set-user-ID
	// bits, file capabilities). It cannot be unset; the thread keeps it
	// until it ends.
	NoNewPrivs bool
}

// A Thread is one OS thread, locked to a goroutine of its own for its whole
// life, that runs the functions given to [Thread.Do] one after another.
// Its methods are safe for concurrent use.
type Thread struct {
	reqs      chan request
	started   chan struct{} // closed when the goroutine has locked a thread that is not the main one
	quit      chan struct{} // closed by Close
	done      chan struct{} // closed as the goroutine returns, which ends the thread
	closeOnce sync.Once
}

type request struct {
	f   func() error
	res chan<- error
}

// New starts a Thread with the state opts asks for. If the state cannot be
// set, the thread ends at once and New returns why.
func New(opts Options) (*Thread, error) {
	t := &Thread{reqs: make(chan request), started: make(chan struct{}), quit: make(chan struct{}), done: make(chan struct{})}
	ready := make(chan error, 1)
	go t.run(opts, ready)
	if err := <-ready; err != nil {
		<-t.done
		return nil, err
	}
	return t, nil
}

func (t *Thread) run(opts Options, ready chan<- error) {
	// Never unlocked: when this goroutine returns, the runtime ends the
	// thread, with its state, rather than hand it to another goroutine.
	runtime.LockOSThread()
	if isMainThread() {
		// The runtime never ends the main thread: it would park it
		// for good, with its state, and the children forked from it
		// would never get their parent-death signal. Hold it while
		// another goroutine takes a thread of its own (it cannot get
		// this one meanwhile), then give it back, unchanged.
		go t.run(opts, ready)
		<-t.started
		runtime.UnlockOSThread()
		return
	}
	close(t.started)
	defer close(t.done)
	if err := setup(opts); err != nil {
		ready <- err
		return
	}
	ready <- nil
	for {
		select {
		case r := <-t.reqs:
			r.res <- r.f()
		case <-t.quit:
			return
		}
	}
}

// Do runs f on the thread, after the functions given before it have
// returned, and returns f's error. f may change the thread's state for
// what it forks (and should set it back if the next function must not
// have it). It returns [ErrClosed] without running f if the thread is
// closed. A panic in f ends the program, as in any goroutine. f must not
// call Do on the same Thread.
func (t *Thread) Do(f func() error) error {
	res := make(chan error, 1)
	select {
	case t.reqs <- request{f: f, res: res}:
	case <-t.quit:
		return ErrClosed
	}
	return <-res
}

// Close ends the thread once the function it runs, if any, has returned:
// it waits for the thread's goroutine to return, and the runtime ends the
// thread right after. Children forked from it with a parent-death signal
// then get that signal. Calls of Do waiting for their turn return
// [ErrClosed]. Close is idempotent.
func (t *Thread) Close() {
	t.closeOnce.Do(func() { close(t.quit) })
	<-t.done
}
