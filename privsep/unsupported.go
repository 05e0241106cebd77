//go:build !linux

package privsep

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep/confine"
)

// On systems other than Linux, privsep has the same API and none of the
// mechanisms behind it: Main returns at once, and what would start, reach or
// serve a worker fails with an error that matches errors.ErrUnsupported
// (doc.go: Other systems). The types of policy and configuration are shared
// (privsep.go, and package confine); this file stands in for the operations.

// errUnsupported is the cause of every operation's error here.
var errUnsupported = fmt.Errorf("privilege separation is not supported on %s (it needs Linux): %w", runtime.GOOS, errors.ErrUnsupported)

// Main returns at once: no process is a worker on this system.
func Main() {}

// Supervisor is the privileged parent. On this system it can neither spawn
// workers nor serve a named socket: Spawn and ListenUnix fail with an error
// that matches errors.ErrUnsupported.
type Supervisor struct{}

// New returns a Supervisor. On this system its Spawn and ListenUnix fail.
func New(cfg Config) *Supervisor { return &Supervisor{} }

// Handle registers h for the user-defined operation op; on this system no
// worker can call it. It panics on an invalid or built-in name, as on Linux.
func (s *Supervisor) Handle(op string, h func(ctx context.Context, req *Request) (payload []byte, files []*os.File, err error)) {
	if !validName(op) || op == "open" || op == "listen" || strings.HasPrefix(op, "file.") {
		panic(fmt.Sprintf("privsep: Handle: invalid or built-in operation name %q", op))
	}
	if h == nil {
		panic("privsep: Handle: nil handler for " + op)
	}
}

// Spawn fails with an error that matches errors.ErrUnsupported.
func (s *Supervisor) Spawn(ctx context.Context, spec Spec) (*Process, error) {
	return nil, fmt.Errorf("privsep: spawn %s worker: %w", spec.Role, errUnsupported)
}

// ListenUnix fails with an error that matches errors.ErrUnsupported.
func (s *Supervisor) ListenUnix(ctx context.Context, path string, auth peercred.Authorizer) error {
	return fmt.Errorf("privsep: listen %s: %w", path, errUnsupported)
}

// Shutdown returns nil: there is nothing to stop.
func (s *Supervisor) Shutdown(ctx context.Context) error { return nil }

// Process is a supervised worker. On this system Spawn returns none: its
// methods report no process, and fail with an error that matches
// errors.ErrUnsupported.
type Process struct{}

// Role returns "".
func (p *Process) Role() string { return "" }

// PID returns 0.
func (p *Process) PID() int { return 0 }

// Ready fails with an error that matches errors.ErrUnsupported.
func (p *Process) Ready(ctx context.Context) error { return fmt.Errorf("privsep: %w", errUnsupported) }

// Restarts returns 0.
func (p *Process) Restarts() int { return 0 }

// Done returns a closed channel: no worker will follow.
func (p *Process) Done() <-chan struct{} { return closed }

var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// Err returns an error that matches errors.ErrUnsupported.
func (p *Process) Err() error { return fmt.Errorf("privsep: %w", errUnsupported) }

// Signal fails with an error that matches errors.ErrUnsupported.
func (p *Process) Signal(sig syscall.Signal) error {
	return fmt.Errorf("privsep: signal: %w", errUnsupported)
}

// Stop fails with an error that matches errors.ErrUnsupported.
func (p *Process) Stop(ctx context.Context) error {
	return fmt.Errorf("privsep: stop: %w", errUnsupported)
}

// Restart fails with an error that matches errors.ErrUnsupported.
func (p *Process) Restart(ctx context.Context) error {
	return fmt.Errorf("privsep: restart: %w", errUnsupported)
}

// Confinement returns nil.
func (p *Process) Confinement() *confine.Verified { return nil }

// Worker is a worker's connection to its parent. On this system there is
// none ([Dial] fails and no process is spawned as a worker): its calls fail
// with an error that matches errors.ErrUnsupported.
type Worker struct{}

// Dial fails with an error that matches errors.ErrUnsupported.
func Dial(ctx context.Context, path, role string) (*Worker, error) {
	var d Dialer
	return d.Dial(ctx, path, role)
}

// Dial fails with an error that matches errors.ErrUnsupported.
func (d *Dialer) Dial(ctx context.Context, path, role string) (*Worker, error) {
	return nil, fmt.Errorf("privsep: dial %s: %w", path, errUnsupported)
}

// Role returns "".
func (w *Worker) Role() string { return "" }

// Args returns nil.
func (w *Worker) Args() []string { return nil }

// Context returns a context that has ended: there is no parent.
func (w *Worker) Context() context.Context { return ended }

var ended = func() context.Context {
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(fmt.Errorf("privsep: %w", errUnsupported))
	return ctx
}()

// Close returns nil.
func (w *Worker) Close() error { return nil }

// Call fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Call(ctx context.Context, op string, payload []byte, files ...*os.File) ([]byte, []*os.File, error) {
	return nil, nil, fmt.Errorf("privsep: %s: %w", op, errUnsupported)
}

// Listen fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	return nil, fmt.Errorf("privsep: listen %s %s: %w", network, address, errUnsupported)
}

// fileErr is the error of the file methods of Worker: a *fs.PathError.
func fileErr(op, name string) error {
	return &fs.PathError{Op: op, Path: name, Err: errUnsupported}
}

// Open fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Open(name string) (*os.File, error) { return nil, fileErr("open", name) }

// Create fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Create(name string) (*os.File, error) { return nil, fileErr("open", name) }

// OpenFile fails with an error that matches errors.ErrUnsupported.
func (w *Worker) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	return nil, fileErr("open", name)
}

// ReadFile fails with an error that matches errors.ErrUnsupported.
func (w *Worker) ReadFile(name string) ([]byte, error) { return nil, fileErr("open", name) }

// Stat fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Stat(name string) (fs.FileInfo, error) { return nil, fileErr("stat", name) }

// Lstat fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Lstat(name string) (fs.FileInfo, error) { return nil, fileErr("lstat", name) }

// Access fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Access(name string, mode uint32) error { return fileErr("access", name) }

// Readlink fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Readlink(name string) (string, error) { return "", fileErr("readlink", name) }

// Mkdir fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Mkdir(name string, perm fs.FileMode) error { return fileErr("mkdir", name) }

// Remove fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Remove(name string) error { return fileErr("remove", name) }

// Rename fails with an error that matches errors.ErrUnsupported.
func (w *Worker) Rename(oldpath, newpath string) error {
	return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errUnsupported}
}
