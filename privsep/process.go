//go:build linux

// A Process and its life: incarnations, stop, restart, supervision.

package privsep

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// Process is a supervised worker. With a restart policy it outlives the
// worker processes it starts one after another; PID reports the current one.
type Process struct {
	s    *Supervisor
	spec Spec

	mu       sync.Mutex
	cur      *incarnation // nil from the moment its exit is noticed until the next one is verified
	restarts int
	stopping bool          // Stop or Shutdown: no more restarts
	ended    bool          // the last incarnation ended and none follows
	again    bool          // Restart asked between workers: start the next one whatever the policy
	wake     chan struct{} // interrupts a restart delay
	err      error         // why the last incarnation ended
	done     chan struct{} // closed when no incarnation will follow
	changed  chan struct{} // closed and replaced when cur or startErr changes
	startErr error         // why the last start failed, until the next one begins
}

// incarnation is one worker process.
type incarnation struct {
	cmd   *exec.Cmd
	pidfd *os.File
	sess  *session
	start time.Time
	exit  chan struct{} // closed when reaped
	err   error         // exit status, valid after exit

	forceRestart bool // Restart asked for a new process; guarded by Process.mu
}

// Role returns the worker's role.
func (p *Process) Role() string { return p.spec.Role }

// PID returns the PID of the current worker process, or 0 between restarts
// and after the end. It is never the PID of a process already reaped: a
// worker's PID is withdrawn as soon as its exit is noticed, before it is
// reaped, and so before Restart returns. The worker may still exit at any
// moment after PID returns: [Process.Signal] reaches the worker through its
// pidfd, never a later process that reuses the PID. [Process.Ready] waits
// for a PID to come back.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur == nil {
		return 0
	}
	return p.cur.cmd.Process.Pid
}

// Ready waits until a worker process is current: one that passed
// verification and is served. It returns nil at once if there is one; else
// it waits for the start under way, or the next one the restart policy or
// [Process.Restart] begins. If the last start failed, and no other has
// begun since, it returns that error (wrapping its cause, such as
// [ErrVerify]); the restart policy may still try again after its delay. It
// returns an error wrapping [ErrWorkerGone] if no worker will follow, and
// ctx's cause when ctx ends first.
func (p *Process) Ready(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.cur != nil && !p.stopping {
			return nil
		}
		if p.startErr != nil {
			return fmt.Errorf("privsep: %s worker not ready: %w", p.spec.Role, p.startErr)
		}
		changed := p.changed
		p.mu.Unlock()
		var err error
		select {
		case <-changed:
		case <-p.done:
			err = fmt.Errorf("privsep: %s worker not ready: %w: no worker will follow", p.spec.Role, ErrWorkerGone)
		case <-ctx.Done():
			err = fmt.Errorf("privsep: %s worker not ready: %w", p.spec.Role, context.Cause(ctx))
		}
		p.mu.Lock()
		if err != nil {
			return err
		}
	}
}

// setCurrent makes inc, verified, the current worker process, or withdraws
// the current one (nil). Called with p.mu held.
func (p *Process) setCurrent(inc *incarnation) {
	p.cur = inc
	if inc != nil {
		p.again = false
		p.startErr = nil
	}
	p.notify()
}

// notify wakes Ready. Called with p.mu held.
func (p *Process) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Restarts returns how many times the worker was started again.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Done is closed when the worker has exited for good: it was stopped, the
// supervisor shut down, or it exited and its policy does not restart it.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err returns why the last worker process ended (nil for status 0), once
// Done is closed.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig to the current worker process through its pidfd.
func (p *Process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur == nil {
		return os.ErrProcessDone
	}
	return cur.signal(sig)
}

func (inc *incarnation) signal(sig syscall.Signal) error {
	select {
	case <-inc.exit:
		return os.ErrProcessDone
	default:
	}
	// cmd.Process signals through the pidfd Go keeps for it: it cannot
	// reach a later process that reused the PID.
	return inc.cmd.Process.Signal(sig)
}

// Stop asks the worker to stop (its context ends), waits for it until ctx
// ends, then kills it. The worker is not restarted.
func (p *Process) Stop(ctx context.Context) error {
	p.mu.Lock()
	p.stopping = true
	cur := p.cur
	p.mu.Unlock()
	p.interrupt()
	if cur != nil {
		cur.stop(ctx)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Restart stops the current worker process (gracefully, then by force when
// ctx ends) and starts a new one at once, whatever the restart policy. It
// returns once the old process is gone (PID no longer reports it); the new
// one is then starting: [Process.Ready] waits until it is verified.
func (p *Process) Restart(ctx context.Context) error {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return fmt.Errorf("privsep: restart %s worker: %w", p.spec.Role, ErrUnavailable)
	}
	if p.ended {
		p.mu.Unlock()
		return fmt.Errorf("privsep: restart %s worker: %w: it exited and its policy did not restart it", p.spec.Role, ErrWorkerGone)
	}
	cur := p.cur
	if cur != nil {
		cur.forceRestart = true
	} else {
		p.again = true
		p.startErr = nil // a start begins now, unless one is under way
	}
	p.mu.Unlock()
	if cur == nil {
		p.interrupt() // between restarts: start the next one now
		return nil
	}
	// The supervising goroutine sees the exit and starts a new one.
	cur.stop(ctx)
	return nil
}

// waitExit waits for the worker to exit, without reaping it: through its
// pidfd in the parker, so that cmd.Wait then reaps at once (waiting in
// waitid(2) from the start would hold a thread, and its stacks, for the
// worker's whole life). Without a pidfd, it waits in waitid(2) with WNOWAIT.
// Until the worker is reaped its PID cannot name another process.
func (inc *incarnation) waitExit() {
	if inc.pidfd != nil {
		if rc, err := inc.pidfd.SyscallConn(); err == nil {
			var aerr error
			err = rc.Control(func(fd uintptr) {
				aerr = parking.await(context.Background(), int(fd), unix.EPOLLIN)
			})
			if err == nil && aerr == nil {
				return
			}
		}
	}
	var info unix.Siginfo
	for unix.Waitid(unix.P_PID, inc.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil) == unix.EINTR {
	}
}

// stop asks for a graceful stop, then kills when ctx ends.
func (inc *incarnation) stop(ctx context.Context) {
	// Best effort, and never longer than ctx: a worker that does not read
	// gets killed below all the same.
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		inc.sess.mc.write(&wire.Msg{Kind: wire.KindStop}, nil)
	}()
	select {
	case <-sent:
	case <-ctx.Done():
	case <-inc.exit:
	}
	select {
	case <-inc.exit:
	case <-ctx.Done():
		inc.signal(syscall.SIGKILL)
		<-inc.exit
	}
}

func (p *Process) interrupt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// supervise waits for each incarnation to exit and starts the next one as
// the restart policy says.
func (p *Process) supervise(inc *incarnation) {
	s := p.s
	defer s.wg.Done()
	delay := p.spec.RestartDelay
	for {
		inc.waitExit()
		// Exited, not yet reaped: withdraw its PID before the reap
		// frees it for another process.
		p.mu.Lock()
		p.setCurrent(nil)
		p.mu.Unlock()
		inc.err = inc.cmd.Wait()
		close(inc.exit)
		cause := fmt.Errorf("%w: %s worker pid %d exited: %s", ErrWorkerGone, p.spec.Role, inc.cmd.Process.Pid, exitText(inc.err))
		if inc.err != nil {
			cause = fmt.Errorf("%w: %s worker pid %d exited: %w", ErrWorkerGone, p.spec.Role, inc.cmd.Process.Pid, inc.err)
		}
		inc.sess.end(cause)
		<-inc.sess.done
		if inc.pidfd != nil {
			inc.pidfd.Close() // handlers, which may use Peer.PidFD, are done
		}
		level := slog.LevelInfo
		if inc.err != nil {
			level = slog.LevelWarn
		}
		s.log().Log(context.Background(), level, "privsep: worker exited", "role", p.spec.Role,
			"pid", inc.cmd.Process.Pid, "status", exitText(inc.err))

		p.mu.Lock()
		p.err = inc.err
		forced := inc.forceRestart || p.again
		restart := !p.stopping && (forced ||
			p.spec.Restart == RestartAlways || p.spec.Restart == RestartOnFailure && inc.err != nil)
		if !restart {
			p.ended = true
			p.mu.Unlock()
			break
		}
		p.restarts++
		wake := make(chan struct{})
		p.wake = wake
		p.mu.Unlock()

		if forced {
			delay = 0
		} else if time.Since(inc.start) > 10*p.spec.MaxRestartDelay {
			delay = p.spec.RestartDelay // it ran long: not a crash loop
		}
		for {
			if delay > 0 {
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-wake:
				case <-s.ctx.Done():
				}
				t.Stop()
			}
			delay = min(max(2*delay, p.spec.RestartDelay), p.spec.MaxRestartDelay)
			p.mu.Lock()
			stopping := p.stopping
			p.startErr = nil // this start is under way
			p.mu.Unlock()
			if stopping || s.ctx.Err() != nil {
				inc = nil
				break
			}
			next, err := s.start(s.ctx, &p.spec, p)
			if err != nil {
				s.log().Error("privsep: restart failed", "role", p.spec.Role, "err", err)
				p.mu.Lock()
				p.startErr = err
				p.notify()
				wake = make(chan struct{}) // the last one may be closed
				p.wake = wake
				p.mu.Unlock()
				continue
			}
			inc = next
			break
		}
		if inc == nil {
			p.mu.Lock()
			p.ended = true
			p.mu.Unlock()
			break
		}
		p.mu.Lock()
		p.setCurrent(inc)
		stopping := p.stopping
		p.mu.Unlock()
		if stopping {
			// Stopped while the new worker was starting: it never serves.
			inc.signal(syscall.SIGKILL)
		}
	}
	s.mu.Lock()
	delete(s.procs, p)
	s.mu.Unlock()
	close(p.done)
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
