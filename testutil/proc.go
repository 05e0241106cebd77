//go:build unix

package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// DefaultTimeout bounds Line and Wait when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// drainDelay bounds how long Wait waits, after the process and its process
// group are gone, for stdout and stderr to reach EOF. Only a process that left
// the group (a new session) and kept the pipes open makes it expire.
const drainDelay = 2 * time.Second

// User is a set of kernel IDs to run a process as. The IDs are numeric and
// need no entry in /etc/passwd or /etc/group.
type User struct {
	UID, GID uint32
	Groups   []uint32 // supplementary groups; nil or empty: none
}

// Options says how Start and Command run a process. The zero value runs it as
// the test process, in the test's namespaces, with the test's environment and
// working directory, stdin from /dev/null, and a timeout of DefaultTimeout.
type Options struct {
	// Args are the arguments: the role's args, or for Command, more
	// arguments after the ones given to Command.
	Args []string

	// As runs the process as this user: the kernel sets the groups, GID and
	// UID (real, effective and saved) in the child before exec. Needs root.
	// Nil: the test process's IDs.
	As *User

	// UserNS runs the process in a new user namespace, in which it is UID
	// and GID 0 with all capabilities. Outside, its kernel IDs are As's (or
	// the test's own) and it has no privilege. Supplementary groups are
	// cleared when the test runs as root; otherwise the process keeps the
	// test's (see the package documentation). As.Groups must be empty.
	UserNS bool

	// PIDNS runs the process in a new PID namespace, as its PID 1. Needs
	// root unless UserNS is set too. Proc.PID reports the PID in the test's
	// namespace.
	PIDNS bool

	// Env holds extra KEY=VALUE entries added to the test's environment.
	Env []string

	// Dir is the working directory; "" means the test's.
	Dir string

	// Stdin is the process's standard input; nil means /dev/null. An
	// *os.File is passed as is; any other reader is copied into a pipe by
	// an os/exec goroutine, which Wait waits for (a reader that never
	// returns makes Wait fail with exec.ErrWaitDelay after 2s and keeps
	// that goroutine).
	Stdin io.Reader

	// ExtraFiles become descriptors 3, 4, ... in the child. The caller
	// keeps them and closes them when it likes. Every other descriptor of
	// the test process is close-on-exec and does not reach the child.
	ExtraFiles []*os.File

	// Timeout bounds each Line and Wait; zero means DefaultTimeout.
	Timeout time.Duration

	// beforeFork runs just before the fork, on the thread that forks
	// (StartAtPID sets it).
	beforeFork func() error
}

// Proc is a process started by Start or Command. Its stdout and stderr are
// read as they arrive; Line takes stdout line by line. Its methods are safe
// for concurrent use.
type Proc struct {
	desc    string // `role "name" (pid 123)`, for messages
	cmd     *exec.Cmd
	pid     int
	timeout time.Duration

	stdoutR, stderrR       *os.File
	stdoutDone, stderrDone chan struct{} // closed when each reader has ended
	exited                 chan struct{} // closed when the process has exited (reaped or not)

	mu        sync.Mutex
	stdout    []byte
	lineOff   int           // how much of stdout Line has returned
	stdoutEOF bool          // the stdout reader has ended
	changed   chan struct{} // closed and replaced when stdout grows or ends
	stderr    []byte
	reaped    bool // after this, the PID is free and may name another process
	exitCode  int

	reapOnce sync.Once
	reapErr  error
	waitOnce sync.Once
	waitErr  error
}

// Start re-executes the test binary as a helper running role, with opts. It
// fails the test if the process cannot be started. The test's cleanup kills
// the process group with SIGKILL and reaps the process if it is still
// running, and logs its stderr when the test failed.
//
// Main must be running the tests (see Main), and role must be registered.
// The helper's environment is the test's plus opts.Env, the role marker, and,
// unless GORACE sets it, GORACE=atexit_sleep_ms=0: a helper built with -race
// would otherwise sleep a second before a successful exit.
func Start(t testing.TB, role string, opts Options) *Proc {
	t.Helper()
	if !mainStarted.Load() {
		t.Fatalf("testutil: start role %q: testutil.Main is not running the tests: call it from TestMain", role)
		return nil
	}
	if _, ok := lookupRole(role); !ok {
		t.Fatalf("testutil: start role %q: no such role: Register it in init or in TestMain before Main", role)
		return nil
	}
	exe, err := helperBinary()
	if err != nil {
		t.Fatalf("testutil: start role %q as uid %d: %v", role, opts.uid(), err)
		return nil
	}
	cmd := exec.Command(exe, opts.Args...)
	cmd.Env = append(noRaceExitSleep(environ(opts.Env)), roleEnv+"="+role)
	return start(t, fmt.Sprintf("role %q", role), cmd, &opts)
}

// Command starts the external program name (looked up in PATH when it has no
// slash) with args followed by opts.Args, the same way Start starts a helper,
// with the same environment (less the role marker): a Go program built with
// -race also exits without the race detector's one-second sleep.
func Command(t testing.TB, opts Options, name string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(name, append(args, opts.Args...)...)
	cmd.Env = noRaceExitSleep(environ(opts.Env))
	return start(t, fmt.Sprintf("command %q", name), cmd, &opts)
}

// environ returns the test's environment without the helper marker, followed
// by extra.
func environ(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, roleEnv+"=") {
			env = append(env, kv)
		}
	}
	for _, kv := range extra {
		if !strings.HasPrefix(kv, roleEnv+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// noRaceExitSleep turns off the race detector's sleep of a second before a
// successful exit (GORACE atexit_sleep_ms, default 1000), unless env sets it:
// helpers built with -race would otherwise take a second to end.
func noRaceExitSleep(env []string) []string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "GORACE="); ok {
			if !strings.Contains(v, "atexit_sleep_ms") {
				env[i] = strings.TrimSpace(v + " atexit_sleep_ms=0")
			}
			return env
		}
	}
	return append(env, "GORACE=atexit_sleep_ms=0")
}

// uid returns the UID the process runs as outside any new user namespace.
func (o *Options) uid() int {
	if o.As != nil {
		return int(o.As.UID)
	}
	return os.Geteuid()
}

func start(t testing.TB, desc string, cmd *exec.Cmd, opts *Options) *Proc {
	t.Helper()
	fail := func(err error) *Proc {
		t.Helper()
		hint := ""
		if errors.Is(err, syscall.EPERM) && os.Geteuid() != 0 {
			hint = " (not root: use testutil.RequireRoot)"
		}
		t.Fatalf("testutil: start %s as uid %d: %v%s", desc, opts.uid(), err, hint)
		return nil
	}
	attr, err := sysProcAttr(opts)
	if err != nil {
		return fail(err)
	}
	cmd.SysProcAttr = attr
	cmd.Dir = opts.Dir
	cmd.Stdin = opts.Stdin
	cmd.ExtraFiles = opts.ExtraFiles
	cmd.WaitDelay = drainDelay // bounds os/exec's copy of a non-file Stdin

	// The write ends go to the child as they are (os/exec starts no copying
	// goroutine for an *os.File); the read ends are ours, pollable, so
	// closing them ends a blocked read.
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	stderrR, stderrW, err := os.Pipe()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return fail(err)
	}
	cmd.Stdout, cmd.Stderr = stdoutW, stderrW
	err = startCmd(cmd, opts.beforeFork)
	stdoutW.Close()
	stderrW.Close()
	if err != nil {
		stdoutR.Close()
		stderrR.Close()
		return fail(err)
	}

	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	p := &Proc{
		desc:       fmt.Sprintf("%s (pid %d)", desc, cmd.Process.Pid),
		cmd:        cmd,
		pid:        cmd.Process.Pid,
		timeout:    timeout,
		stdoutR:    stdoutR,
		stderrR:    stderrR,
		stdoutDone: make(chan struct{}),
		stderrDone: make(chan struct{}),
		exited:     make(chan struct{}),
		changed:    make(chan struct{}),
		exitCode:   -1,
	}
	go p.readStdout()
	go p.readStderr()
	go p.awaitExit()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("testutil: %s stderr:\n%s", p.desc, p.stderrText())
		}
	})
	return p
}

// awaitExit closes p.exited when the process has exited. Where the kernel
// can wait without reaping, the process stays a zombie until Wait reaps it,
// so that its PID, and so its process group ID, cannot name another process
// while Wait or Kill signals the group.
func (p *Proc) awaitExit() {
	defer close(p.exited)
	if err := waitExited(p.pid); err != nil {
		p.reap()
	}
}

// reap collects the exit status, once. After it the group is never signalled.
func (p *Proc) reap() error {
	p.reapOnce.Do(func() {
		p.mu.Lock()
		p.reaped = true
		p.mu.Unlock()
		err := p.cmd.Wait()
		if st := p.cmd.ProcessState; st != nil {
			p.mu.Lock()
			p.exitCode = st.ExitCode()
			p.mu.Unlock()
		}
		p.reapErr = err
	})
	return p.reapErr
}

// killGroup sends SIGKILL to the process group, unless the process has been
// reaped and its PID may be in use by another process.
func (p *Proc) killGroup() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

func (p *Proc) readStdout() {
	defer close(p.stdoutDone)
	defer p.stdoutR.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := p.stdoutR.Read(buf)
		p.mu.Lock()
		p.stdout = append(p.stdout, buf[:n]...)
		if err != nil {
			p.stdoutEOF = true
		}
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *Proc) readStderr() {
	defer close(p.stderrDone)
	defer p.stderrR.Close()
	buf := make([]byte, 32*1024)
	for {
		n, err := p.stderrR.Read(buf)
		p.mu.Lock()
		p.stderr = append(p.stderr, buf[:n]...)
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// PID returns the process's PID in the test's PID namespace.
func (p *Proc) PID() int { return p.pid }

// Line returns the next line of the process's stdout, without its newline. A
// last line without a newline is returned once stdout is closed. Line fails
// the test, with the stderr read so far, when stdout ends or no line comes
// within the timeout; it then returns "".
func (p *Proc) Line(t testing.TB) string {
	t.Helper()
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		rest := p.stdout[p.lineOff:]
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			p.lineOff += i + 1
			p.mu.Unlock()
			return string(rest[:i])
		}
		eof, changed := p.stdoutEOF, p.changed
		if eof && len(rest) > 0 {
			p.lineOff += len(rest)
			p.mu.Unlock()
			return string(rest)
		}
		p.mu.Unlock()
		if eof {
			// The process has most likely exited: let stderr reach its
			// end too, so that the message is complete.
			wait := time.NewTimer(drainDelay)
			select {
			case <-p.stderrDone:
			case <-wait.C:
			}
			wait.Stop()
			t.Fatalf("testutil: %s: stdout ended before a line; stderr:\n%s", p.desc, p.stderrText())
			return ""
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("testutil: %s: no line on stdout within %v; stderr so far:\n%s", p.desc, p.timeout, p.stderrText())
			return ""
		}
	}
}

// Wait waits for the process to exit, for at most the timeout, after which it
// kills the process and says so in the error. When the process has exited,
// Wait sends SIGKILL to anything left in its process group, reaps it, and
// waits until its stdout and stderr are read to the end. A non-zero exit is an
// error (unwrapping to *exec.ExitError) that includes stderr. Wait returns the
// same result every time it is called.
func (p *Proc) Wait() error {
	p.waitOnce.Do(func() { p.waitErr = p.wait() })
	return p.waitErr
}

func (p *Proc) wait() error {
	timer := time.NewTimer(p.timeout)
	defer timer.Stop()
	timedOut := false
	select {
	case <-p.exited:
	case <-timer.C:
		timedOut = true
	}
	p.killGroup()
	<-p.exited
	err := p.reap()

	// Children that left the process group may still hold the pipes;
	// closing our ends stops the readers.
	drain := time.NewTimer(drainDelay)
	defer drain.Stop()
	for _, done := range []chan struct{}{p.stdoutDone, p.stderrDone} {
		select {
		case <-done:
		case <-drain.C:
			p.stdoutR.Close()
			p.stderrR.Close()
			<-done
		}
	}

	switch {
	case timedOut:
		return fmt.Errorf("testutil: %s: still running after %v: killed it; stderr:\n%s", p.desc, p.timeout, p.stderrText())
	case err != nil:
		return fmt.Errorf("testutil: %s: %w; stderr:\n%s", p.desc, err, p.stderrText())
	}
	return nil
}

// Stdout returns everything the process wrote to stdout so far, including
// the lines returned by Line. After Wait it is complete.
func (p *Proc) Stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.stdout)
}

// Stderr returns everything the process wrote to stderr so far. After Wait it
// is complete.
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.stderr)
}

func (p *Proc) stderrText() string {
	if s := p.Stderr(); s != "" {
		return s
	}
	return "(empty)"
}

// Signal sends sig to the process (not to its group). After the process is
// reaped it returns an error that unwraps to os.ErrProcessDone.
func (p *Proc) Signal(sig os.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("testutil: %s: signal %v: %w", p.desc, sig, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group and waits for the process as Wait
// does. It does nothing once the process has been waited for.
func (p *Proc) Kill() {
	p.killGroup()
	p.Wait()
}

// ExitCode returns the process's exit code once Wait or Kill has returned,
// and -1 before, or when a signal ended the process.
func (p *Proc) ExitCode() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitCode
}
