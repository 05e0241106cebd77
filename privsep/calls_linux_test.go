package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
)

// Calls: capabilities, concurrency, a worker that breaks the protocol or
// stops reading, descriptors over many calls.

func init() {
	privsep.Register("once", func(ctx context.Context, w *privsep.Worker) error {
		for range 2 {
			p, _, err := w.Call(ctx, "token", nil)
			fmt.Printf("token=%q denied=%v\n", p, errors.Is(err, privsep.ErrDenied))
		}
		return nil
	})
	privsep.Register("concurrent", func(ctx context.Context, w *privsep.Worker) error {
		n, _ := strconv.Atoi(w.Args()[0])
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprintf("call %d", i)
				got, _, err := w.Call(ctx, "echo", []byte(want))
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("call %d: got %q, %v", i, got, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return err
		}
		fmt.Println("ok")
		return nil
	})
	privsep.Register("serial", func(ctx context.Context, w *privsep.Worker) error {
		n, _ := strconv.Atoi(w.Args()[0])
		for i := range n {
			if _, _, err := w.Call(ctx, "echo", []byte("y")); err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
		}
		fmt.Println("done")
		return nil
	})
	privsep.Register("block", func(ctx context.Context, w *privsep.Worker) error {
		fmt.Println("calling")
		_, _, err := w.Call(ctx, "block", nil)
		return err
	})
	privsep.Register("echo-once", func(ctx context.Context, w *privsep.Worker) error {
		p, _, err := w.Call(ctx, "echo", []byte("still here"))
		fmt.Printf("%s %v\n", p, err)
		<-ctx.Done()
		return nil
	})
	privsep.Register("evil", evil)
	privsep.Register("flood", func(ctx context.Context, w *privsep.Worker) error {
		// Requests, and never a read of the replies.
		privsep.StallReader(w)
		go func() {
			for i := uint32(1); i < 5000; i++ {
				if privsep.RawWrite(w, append(header(3, i, "echo", 1), 'y')) != nil {
					return
				}
			}
		}()
		fmt.Println("flooding")
		<-ctx.Done()
		return nil
	})
}

// evil plays a worker that breaks the protocol in the way its argument
// says; with a second argument "after-call", right after a call of echo
// (its session's reader then waits for the next message).
func evil(ctx context.Context, w *privsep.Worker) error {
	if len(w.Args()) > 1 && w.Args()[1] == "after-call" {
		if _, _, err := w.Call(ctx, "echo", []byte("x")); err != nil {
			return err
		}
	}
	var err error
	switch w.Args()[0] {
	case "garbage":
		err = privsep.RawWrite(w, []byte("this is not a message"))
	case "oversize":
		hdr := header(3, 1, "echo", 70<<10)
		err = privsep.RawWrite(w, append(hdr, make([]byte, 70<<10)...))
	case "undeclared-fds":
		// A well-formed request that says 0 descriptors, with 3 attached.
		err = privsep.RawWrite(w, header(3, 1, "echo", 0), pipeFiles(3)...)
	case "too-many-fds":
		err = privsep.RawWrite(w, header(3, 1, "echo", 0), pipeFiles(20)...)
	case "reply-kind":
		// Workers may not send replies.
		err = privsep.RawWrite(w, header(4, 1, "", 0))
	}
	if err != nil {
		return err
	}
	<-ctx.Done() // until the parent kills us
	return nil
}

// pipeFiles opens n pipe ends to send.
func pipeFiles(n int) []*os.File {
	var files []*os.File
	for len(files) < n {
		r, w, err := os.Pipe()
		if err != nil {
			panic(err)
		}
		files = append(files, r, w)
	}
	return files[:n]
}

func TestOnceAndUnknownOps(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"once": {Ops: map[string]privsep.OpRule{"token": {Once: true}}},
	}})
	s.Handle("token", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return []byte("t0k3n for " + r.Peer.Role), nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "once", UID: wUID, GID: wGID})
	waitDone(t, p)
	want := "token=\"t0k3n for once\" denied=false\ntoken=\"\" denied=true\n"
	if got := out.String(); got != want {
		t.Errorf("worker printed %q, want %q", got, want)
	}
	if !strings.Contains(log.String(), "allowed once and was used") {
		t.Errorf("second use not logged:\n%s", log)
	}
}

func TestConcurrentCalls(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"concurrent": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	p, out := spawn(t, s, privsep.Spec{Role: "concurrent", UID: wUID, GID: wGID, Args: []string{"100"}})
	waitDone(t, p)
	if got := strings.TrimSpace(out.String()); got != "ok" || p.Err() != nil {
		t.Errorf("100 concurrent calls: %q, %v", got, p.Err())
	}
}

// TestMoreSessionsThanPs: with more workers calling at once than the parent
// has Ps, its readers wait for their connections in Go's poller instead of
// in recvmsg (session.read, reader.pollRecv). Every call is still answered,
// each to its caller; hostile workers that send a malformed message
// meanwhile, read on that path, are killed with a log line; and nothing
// leaves a descriptor behind (a connection in Go's poller has one more).
func TestMoreSessionsThanPs(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"concurrent": {Ops: map[string]privsep.OpRule{"echo": {}}},
		"serial":     {Ops: map[string]privsep.OpRule{"echo": {}}},
		"evil":       {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	n := runtime.GOMAXPROCS(0) + 3
	// A first round makes what the parent keeps for good (its parker's
	// epoll descriptor, pools) before the descriptors are counted.
	var warm []*privsep.Process
	for range n {
		p, _ := spawn(t, s, privsep.Spec{Role: "concurrent", UID: wUID, GID: wGID, Args: []string{"20"}})
		warm = append(warm, p)
	}
	for _, p := range warm {
		waitDone(t, p)
	}
	before := openFDs(t)
	type worker struct {
		p    *privsep.Process
		out  *syncBuffer
		want string
	}
	var ws []worker
	for i := range n {
		role, args, want := "concurrent", "50", "ok"
		if i%2 == 1 {
			role, args, want = "serial", "20000", "done"
		}
		p, out := spawn(t, s, privsep.Spec{Role: role, UID: wUID, GID: wGID, Args: []string{args}})
		ws = append(ws, worker{p, out, want})
	}
	// While the serial workers still call. Each sends its message right
	// after a call, so that its session's reader, which the others keep
	// from waiting in recvmsg, meets it waiting in Go's poller (all three
	// in most runs; otherwise its recvmsg finds the message there first).
	evil := map[string]string{"garbage": "protocol violation", "undeclared-fds": "nfds", "too-many-fds": "descriptors"}
	var evils []*privsep.Process
	for mode := range evil {
		p, _ := spawn(t, s, privsep.Spec{Role: "evil", UID: wUID, GID: wGID, Args: []string{mode, "after-call"}})
		evils = append(evils, p)
	}
	for i, w := range ws {
		waitDone(t, w.p)
		if got := strings.TrimSpace(w.out.String()); got != w.want || w.p.Err() != nil {
			t.Errorf("worker %d of %d: %q, %v; want %q", i, n, got, w.p.Err(), w.want)
		}
	}
	for _, p := range evils {
		waitDone(t, p)
		var ee *exec.ExitError
		if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("evil worker ended with %v, want killed", err)
		}
	}
	for mode, logs := range evil {
		if !strings.Contains(log.String(), logs) {
			t.Errorf("%s: log lacks %q", mode, logs)
		}
	}
	waitFor(t, "the parent's descriptors back", 10*time.Second, func() bool { return openFDs(t) == before })
}

// TestWorkerKilledMidCall: the call in flight fails at once with the cause,
// and the restart policy brings the worker back as a new, verified process.
func TestWorkerKilledMidCall(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"block": {Ops: map[string]privsep.OpRule{"block": {}}},
	}})
	causes := make(chan error, 4)
	entered := make(chan struct{}, 4)
	s.Handle("block", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		entered <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, nil, ctx.Err()
	})
	p, out := spawn(t, s, privsep.Spec{Role: "block", UID: wUID, GID: wGID, Restart: privsep.RestartOnFailure, RestartDelay: 10 * time.Millisecond})
	waitLine(t, out, "calling")
	first := p.PID()
	select { // the call is in flight
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("the call did not reach the handler")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-causes:
		if !errors.Is(cause, privsep.ErrWorkerGone) || !strings.Contains(cause.Error(), "signal: killed") {
			t.Errorf("handler's context ended with %v, want ErrWorkerGone naming the kill", cause)
		}
	case <-time.After(10 * time.Second):
		// Nothing else ends the call: no timeout, no restart.
		t.Fatal("the call in flight did not fail")
	}
	waitFor(t, "a restarted worker", 10*time.Second, func() bool {
		pid := p.PID()
		return pid != 0 && pid != first && p.Restarts() == 1
	})
	if !gone(first) {
		t.Errorf("killed worker %d still there", first)
	}
}

// TestProtocolViolations: a worker that sends a malformed, oversize or
// descriptor-stuffed message is disconnected and killed with a log line,
// nothing leaks, and another worker keeps being served.
func TestProtocolViolations(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"evil":      {Ops: map[string]privsep.OpRule{"echo": {}}},
		"echo-once": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	good, goodOut := spawn(t, s, privsep.Spec{Role: "echo-once", UID: wUID, GID: wGID})
	waitLine(t, goodOut, "still here")
	for _, tt := range []struct{ mode, logs string }{
		{"garbage", "protocol violation"},
		{"oversize", "message too large"},
		{"undeclared-fds", "nfds"},
		{"too-many-fds", "descriptors"},
		{"reply-kind", "worker sent a Reply message"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			before := openFDs(t)
			p, out := spawn(t, s, privsep.Spec{Role: "evil", UID: wUID, GID: wGID, Args: []string{tt.mode}})
			waitDone(t, p)
			var ee *exec.ExitError
			if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Errorf("evil worker ended with %v, want killed\n%s", err, out)
			}
			if !strings.Contains(log.String(), tt.logs) {
				t.Errorf("log lacks %q:\n%s", tt.logs, log)
			}
			if after := openFDs(t); after != before {
				t.Errorf("descriptors: %d before, %d after", before, after)
			}
		})
	}
	// The good worker was not disturbed.
	if pid := good.PID(); pid == 0 || gone(pid) {
		t.Errorf("the other worker is gone")
	}
}

// TestNoLeakOverCalls runs 10,000 calls and checks the parent's descriptors
// and goroutines.
func TestNoLeakOverCalls(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"serial": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	p, out := spawn(t, s, privsep.Spec{Role: "serial", UID: wUID, GID: wGID, Args: []string{"1"}})
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("first worker: %v\n%s", err, out)
	}
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	p, out = spawn(t, s, privsep.Spec{Role: "serial", UID: wUID, GID: wGID, Args: []string{"10000"}})
	waitDone(t, p)
	if strings.TrimSpace(out.String()) != "done" {
		t.Fatalf("worker: %v\n%s", p.Err(), out)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("descriptors: %d before, %d after 10,000 calls", fds, after)
	}
	waitFor(t, fmt.Sprintf("goroutines back to %d (now %d)", goroutines, runtime.NumGoroutine()), 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
}

// TestWorkerThatDoesNotReadIsKilled: replies that cannot be delivered do not
// pin the parent: the worker is killed and Shutdown stays prompt.
func TestWorkerThatDoesNotReadIsKilled(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{
		WriteTimeout: 200 * time.Millisecond,
		Roles:        map[string]privsep.Policy{"flood": {Ops: map[string]privsep.OpRule{"echo": {}}}},
	})
	s.Handle("echo", echo)
	p, _ := spawn(t, s, privsep.Spec{Role: "flood", UID: wUID, GID: wGID})
	waitDone(t, p)
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("flooding worker ended with %v, want killed", err)
	}
	if !strings.Contains(log.String(), "does not read its replies") {
		t.Errorf("no log line for the worker that does not read:\n%s", log)
	}
}

// TestHandlerErrorClosesItsFiles: files a failing handler returns are
// closed, not leaked.
func TestHandlerErrorClosesItsFiles(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"serial": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		f, err := os.Open("/etc/hostname")
		if err != nil {
			return nil, nil, err
		}
		return nil, []*os.File{f}, errors.New("failed after opening")
	})
	before := openFDs(t)
	p, _ := spawn(t, s, privsep.Spec{Role: "serial", UID: wUID, GID: wGID, Args: []string{"1"}})
	waitDone(t, p)
	if after := openFDs(t); after != before {
		t.Errorf("descriptors: %d before, %d after a failing handler", before, after)
	}
}
