package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// Attacks on the parent's receive path while its session readers outnumber
// its Ps: a reader that finds no message then waits in Go's poller on a
// duplicate of the connection's descriptor (reader.pollRecv). Each test
// puts the parent in that state (GOMAXPROCS 1, busy workers calling all
// the time), attacks it from real workers under another UID, and checks
// that the attacker is cut off, that the others are served, and that no
// descriptor (the duplicate above all) or goroutine is left behind.

func init() {
	// pw-busy calls echo until the parent stops it: it keeps the parent's
	// readers more than its Ps.
	privsep.Register("pw-busy", func(ctx context.Context, w *privsep.Worker) error {
		for i := 0; ctx.Err() == nil; i++ {
			if _, _, err := w.Call(ctx, "echo", []byte("b")); err != nil {
				return nil
			}
			if i == 0 {
				fmt.Println("busy")
			}
		}
		return nil
	})
	// pw-evil makes one call, waits args[1] microseconds (its session's
	// reader meanwhile waits for the next message, in Go's poller), then
	// does what args[0] says.
	privsep.Register("pw-evil", func(ctx context.Context, w *privsep.Worker) error {
		if _, _, err := w.Call(ctx, "echo", []byte("x")); err != nil {
			return err
		}
		us, _ := strconv.Atoi(w.Args()[1])
		time.Sleep(time.Duration(us) * time.Microsecond)
		var err error
		switch w.Args()[0] {
		case "garbage":
			err = privsep.RawWrite(w, []byte("this is not a message"))
		case "short":
			err = privsep.RawWrite(w, []byte{1})
		case "oversize":
			err = privsep.RawWrite(w, append(header(3, 1, "echo", 70<<10), make([]byte, 70<<10)...))
		case "undeclared-fds":
			err = privsep.RawWrite(w, header(3, 1, "echo", 0), pipeFiles(3)...)
		case "too-many-fds":
			err = privsep.RawWrite(w, header(3, 1, "echo", 0), pipeFiles(20)...)
		case "empty-with-fds":
			err = privsep.RawWrite(w, nil, pipeFiles(2)...)
		case "reply-kind":
			err = privsep.RawWrite(w, header(4, 1, "", 0))
		case "hello-kind":
			err = privsep.RawWrite(w, header(1, 1, "evil", 0))
		case "reply-with-fds":
			b := header(4, 1, "", 0)
			b[2] = 2 // two descriptors declared
			err = privsep.RawWrite(w, b, pipeFiles(2)...)
		case "garbage-then-queued", "queued-then-garbage":
			// Requests that carry descriptors, queued behind (or
			// ahead of) the garbage: those the parent never reads
			// go with its socket.
			req := header(3, 1, "echo", 0)
			req[2] = 2
			if w.Args()[0] == "garbage-then-queued" {
				err = privsep.RawWrite(w, []byte("this is not a message"))
			}
			for i := range 8 {
				req[4] = byte(2 + i)
				privsep.RawWrite(w, req, pipeFiles(2)...)
			}
			if w.Args()[0] == "queued-then-garbage" {
				err = privsep.RawWrite(w, []byte("this is not a message"))
			}
		case "exit":
			os.Exit(0)
		case "shutdown-wr":
			err = privsep.RawShutdownWrite(w)
		case "empty":
			// A datagram of 0 bytes: what the parent reads at the
			// end of the connection.
			err = privsep.RawWrite(w, nil)
		}
		if err != nil {
			return err
		}
		<-ctx.Done() // until the parent kills us, or lets us go
		return nil
	})
	// pw-burst calls, goes idle for longer than the parent's readers wait
	// (so that they let their duplicate go and park), and calls again,
	// args[0] times; then it exits.
	privsep.Register("pw-burst", func(ctx context.Context, w *privsep.Worker) error {
		n, _ := strconv.Atoi(w.Args()[0])
		for i := range n {
			for range 3 {
				if _, _, err := w.Call(ctx, "echo", []byte("y")); err != nil {
					return fmt.Errorf("round %d: %w", i, err)
				}
			}
			time.Sleep(time.Duration(11+i%15) * time.Millisecond)
		}
		fmt.Println("done")
		return nil
	})
	// pw-hog calls echo from 64 goroutines as fast as the parent answers,
	// until the parent stops it.
	privsep.Register("pw-hog", func(ctx context.Context, w *privsep.Worker) error {
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if _, _, err := w.Call(ctx, "echo", []byte("h")); err != nil {
						return
					}
				}
			}()
		}
		fmt.Println("hogging")
		wg.Wait()
		return nil
	})
	// pw-handoff calls a slow op and fast ones at once, so that another
	// reader takes the turn (and the duplicate in Go's poller) while the
	// first runs the slow handler; with args[1] "exit" it exits while a
	// slow call is in flight.
	privsep.Register("pw-handoff", func(ctx context.Context, w *privsep.Worker) error {
		n, _ := strconv.Atoi(w.Args()[0])
		for i := range n {
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.Call(ctx, "slow", nil)
			}()
			if i == n-1 && w.Args()[1] == "exit" {
				time.Sleep(5 * time.Millisecond)
				os.Exit(0)
			}
			for j := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(j) * time.Millisecond)
					if _, _, err := w.Call(ctx, "echo", []byte("z")); err != nil {
						fmt.Println("call:", err)
					}
				}()
			}
			wg.Wait()
		}
		fmt.Println("done")
		return nil
	})
	// pw-slow-exit makes 40 slow calls at once, more than the parent
	// runs at a time (its reader then waits for a place, holding the turn
	// and the duplicate), and exits meanwhile.
	privsep.Register("pw-slow-exit", func(ctx context.Context, w *privsep.Worker) error {
		for range 40 {
			go w.Call(ctx, "slow", nil)
		}
		time.Sleep(40 * time.Millisecond)
		os.Exit(0)
		return nil
	})
	// pw-named-evil is a named-socket client (args: socket, role, delay
	// in µs) that calls once, waits, sends garbage, and says what its
	// next call got.
	testutil.Register("pw-named-evil", func(args []string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		w, err := privsep.Dial(ctx, args[0], args[1])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		defer w.Close()
		if _, _, err := w.Call(ctx, "echo", []byte("x")); err != nil {
			fmt.Println("call:", err)
			return 1
		}
		us, _ := strconv.Atoi(args[2])
		time.Sleep(time.Duration(us) * time.Microsecond)
		if err := privsep.RawWrite(w, []byte("this is not a message"), pipeFiles(2)...); err != nil {
			fmt.Println("write:", err)
			return 1
		}
		_, _, err = w.Call(ctx, "echo", []byte("again"))
		fmt.Printf("next call: %v\n", err)
		return 0
	})
}

// pollWaitRoles are the roles of these tests.
var pollWaitRoles = map[string]privsep.Policy{
	"pw-busy":      {Ops: map[string]privsep.OpRule{"echo": {}}},
	"pw-evil":      {Ops: map[string]privsep.OpRule{"echo": {}}},
	"pw-burst":     {Ops: map[string]privsep.OpRule{"echo": {}}},
	"pw-hog":       {Ops: map[string]privsep.OpRule{"echo": {}}},
	"pw-handoff":   {Ops: map[string]privsep.OpRule{"echo": {}, "slow": {}}},
	"pw-slow-exit": {Ops: map[string]privsep.OpRule{"slow": {}}},
	"serial":       {Ops: map[string]privsep.OpRule{"echo": {}}},
	"concurrent":   {Ops: map[string]privsep.OpRule{"echo": {}}},
	"flood":        {Ops: map[string]privsep.OpRule{"echo": {}}},
}

// pollWait is a parent whose session readers outnumber its Ps.
type pollWait struct {
	s          *privsep.Supervisor
	log        *syncBuffer
	busy       []*privsep.Process
	fds, gorts int // before the busy workers
}

// newPollWait starts a supervisor with GOMAXPROCS 1 (restored at cleanup),
// runs setup (if not nil) on it and, after a warm-up round, four busy
// workers; fds and gorts are counted before those.
func newPollWait(t *testing.T, cfg privsep.Config, setup ...func(*privsep.Supervisor)) *pollWait {
	t.Helper()
	testutil.RequireRoot(t)
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	if cfg.Roles == nil {
		cfg.Roles = pollWaitRoles
	}
	s, log := newSupervisor(t, cfg)
	s.Handle("echo", echo)
	s.Handle("slow", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		time.Sleep(15 * time.Millisecond)
		return nil, nil, nil
	})
	for _, f := range setup {
		f(s)
	}
	// What the parent keeps for good (the parker, pools) first.
	var warm []*privsep.Process
	for range 4 {
		p, _ := spawn(t, s, privsep.Spec{Role: "concurrent", UID: wUID, GID: wGID, Args: []string{"20"}})
		warm = append(warm, p)
	}
	for _, p := range warm {
		waitDone(t, p)
	}
	pw := &pollWait{s: s, log: log}
	waitFor(t, "the warm-up's goroutines gone", 10*time.Second, func() bool {
		pw.fds, pw.gorts = openFDs(t), runtime.NumGoroutine()
		time.Sleep(300 * time.Millisecond) // the sweeper lingers 100ms
		return openFDs(t) == pw.fds && runtime.NumGoroutine() == pw.gorts
	})
	for range 4 {
		p, out := spawn(t, s, privsep.Spec{Role: "pw-busy", UID: wUID, GID: wGID})
		waitLine(t, out, "busy")
		pw.busy = append(pw.busy, p)
	}
	return pw
}

// end stops the busy workers and checks that the parent is back to the
// descriptors and goroutines it had before them.
func (pw *pollWait) end(t *testing.T) {
	t.Helper()
	// All at once.
	errs := make(chan error, len(pw.busy))
	for _, p := range pw.busy {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs <- p.Stop(ctx)
		}()
	}
	for range pw.busy {
		if err := <-errs; err != nil {
			t.Errorf("stopping a busy worker: %v", err)
		}
	}
	for _, p := range pw.busy {
		waitDone(t, p)
	}
	waitFor(t, fmt.Sprintf("the parent's descriptors back to %d (now %d)", pw.fds, openFDs(t)), 10*time.Second, func() bool {
		return openFDs(t) == pw.fds
	})
	waitFor(t, fmt.Sprintf("the parent's goroutines back to %d (now %d)", pw.gorts, runtime.NumGoroutine()), 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= pw.gorts
	})
}

// delays are how long hostile workers wait after their call before they
// attack, in µs: at once, and while their reader waits in Go's poller.
var delays = []string{"0", "1000", "3000", "6000"}

// TestPollWaitHostileMessages: a worker whose reader waits in Go's poller
// sends a malformed, oversize, descriptor-stuffed message or one of a kind
// workers may not send: it is killed with a log line, every descriptor it
// sent is closed, and the duplicate with them.
func TestPollWaitHostileMessages(t *testing.T) {
	pw := newPollWait(t, privsep.Config{})
	modes := []struct{ mode, logs string }{
		{"garbage", "protocol violation"},
		{"short", "protocol violation"},
		{"oversize", "message too large"},
		{"undeclared-fds", "nfds"},
		{"too-many-fds", "descriptors"},
		{"empty-with-fds", "protocol violation"},
		{"reply-kind", "worker sent a"},
		{"hello-kind", "worker sent a"},
		{"reply-with-fds", "protocol violation"},
		{"garbage-then-queued", "protocol violation"},
		{"queued-then-garbage", "protocol violation"},
	}
	type attacker struct {
		mode string
		p    *privsep.Process
	}
	var as []attacker
	for _, m := range modes {
		for _, d := range delays {
			p, _ := spawn(t, pw.s, privsep.Spec{Role: "pw-evil", UID: wUID, GID: wGID, Args: []string{m.mode, d}})
			as = append(as, attacker{m.mode + "/" + d, p})
		}
	}
	for _, a := range as {
		select {
		case <-a.p.Done():
		case <-time.After(time.Minute):
			t.Fatalf("%s: the hostile worker is alive a minute later", a.mode)
		}
		var ee *exec.ExitError
		if err := a.p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("%s: worker ended with %v, want killed", a.mode, err)
		}
	}
	for _, m := range modes {
		if !strings.Contains(pw.log.String(), m.logs) {
			t.Errorf("%s: log lacks %q", m.mode, m.logs)
		}
	}
	if got, want := strings.Count(pw.log.String(), "protocol violation; worker disconnected"), len(as); got != want {
		t.Errorf("%d protocol violations logged, want %d", got, want)
	}
	pw.end(t)
}

// TestPollWaitHangup: a worker whose reader waits in Go's poller exits,
// shuts its socket down for writing, or sends an empty datagram: the
// session ends, and nothing of it is left in the parent.
func TestPollWaitHangup(t *testing.T) {
	pw := newPollWait(t, privsep.Config{})
	type attacker struct {
		mode string
		p    *privsep.Process
	}
	var as []attacker
	for _, mode := range []string{"exit", "shutdown-wr", "empty"} {
		for _, d := range delays {
			p, _ := spawn(t, pw.s, privsep.Spec{Role: "pw-evil", UID: wUID, GID: wGID, Args: []string{mode, d}})
			as = append(as, attacker{mode + "/" + d, p})
		}
	}
	for _, a := range as {
		select {
		case <-a.p.Done():
		case <-time.After(time.Minute):
			t.Errorf("%s: the worker is alive a minute later", a.mode)
			a.p.Signal(syscall.SIGKILL)
			waitDone(t, a.p)
		}
	}
	pw.end(t)
}

// TestPollWaitNoDuplicateLeft: many workers call, go idle for longer than
// a reader waits (its duplicate is let go, the connection parked), call
// again, over and over, then exit: the parent is back to its descriptors.
func TestPollWaitNoDuplicateLeft(t *testing.T) {
	pw := newPollWait(t, privsep.Config{})
	var ps []*privsep.Process
	var outs []*syncBuffer
	for range 8 {
		p, out := spawn(t, pw.s, privsep.Spec{Role: "pw-burst", UID: wUID, GID: wGID, Args: []string{"40"}})
		ps, outs = append(ps, p), append(outs, out)
	}
	for i, p := range ps {
		waitDone(t, p)
		if got := strings.TrimSpace(outs[i].String()); got != "done" || p.Err() != nil {
			t.Errorf("burst worker %d: %q, %v", i, got, p.Err())
		}
	}
	pw.end(t)
}

// TestPollWaitFloodDoesNotStarve: one worker calls from 64 goroutines as
// fast as it is answered and another floods requests and reads no reply,
// while the parent's readers outnumber its Ps: workers that call one call
// at a time are still answered, every call.
func TestPollWaitFloodDoesNotStarve(t *testing.T) {
	pw := newPollWait(t, privsep.Config{WriteTimeout: time.Second})
	hog, hogOut := spawn(t, pw.s, privsep.Spec{Role: "pw-hog", UID: wUID, GID: wGID})
	waitLine(t, hogOut, "hogging")
	flood, floodOut := spawn(t, pw.s, privsep.Spec{Role: "flood", UID: wUID, GID: wGID})
	waitLine(t, floodOut, "flooding")
	var ps []*privsep.Process
	var outs []*syncBuffer
	for range 3 {
		p, out := spawn(t, pw.s, privsep.Spec{Role: "serial", UID: wUID, GID: wGID, Args: []string{"300"}})
		ps, outs = append(ps, p), append(outs, out)
	}
	for i, p := range ps {
		waitDone(t, p)
		if got := strings.TrimSpace(outs[i].String()); got != "done" || p.Err() != nil {
			t.Errorf("serial worker %d next to the flood: %q, %v", i, got, p.Err())
		}
	}
	waitDone(t, flood) // killed: it reads no reply
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := hog.Stop(ctx); err != nil {
		t.Errorf("stopping the hog: %v", err)
	}
	waitDone(t, hog)
	pw.end(t)
}

// TestPollWaitTurnHandoff: while a reader runs a slow handler, a request
// lets another reader take the turn, and the duplicate in Go's poller with
// it; some workers exit while a slow call is in flight. Every call is
// answered (to the workers that stay), and nothing is left.
func TestPollWaitTurnHandoff(t *testing.T) {
	pw := newPollWait(t, privsep.Config{})
	type worker struct {
		p    *privsep.Process
		out  *syncBuffer
		exit bool
	}
	var ws []worker
	for i := range 6 {
		how := "stay"
		if i%2 == 1 {
			how = "exit"
		}
		p, out := spawn(t, pw.s, privsep.Spec{Role: "pw-handoff", UID: wUID, GID: wGID, Args: []string{"30", how}})
		ws = append(ws, worker{p, out, how == "exit"})
	}
	for i, w := range ws {
		waitDone(t, w.p)
		if w.exit {
			continue
		}
		if got := strings.TrimSpace(w.out.String()); got != "done" || w.p.Err() != nil {
			t.Errorf("worker %d: %q, %v", i, got, w.p.Err())
		}
	}
	pw.end(t)
}

// TestPollWaitInFlightCapExit: workers whose calls wait for a place
// (MaxInFlight 2) exit: their sessions end, and nothing is left.
func TestPollWaitInFlightCapExit(t *testing.T) {
	pw := newPollWait(t, privsep.Config{MaxInFlight: 2})
	var ps []*privsep.Process
	for range 6 {
		p, _ := spawn(t, pw.s, privsep.Spec{Role: "pw-slow-exit", UID: wUID, GID: wGID})
		ps = append(ps, p)
	}
	for _, p := range ps {
		waitDone(t, p)
	}
	pw.end(t)
}

// TestPollWaitNamedHostile: named-socket clients whose readers wait in Go's
// poller send garbage with descriptors: each is disconnected with a log
// line, and nothing of theirs is left in the parent.
func TestPollWaitNamedHostile(t *testing.T) {
	roles := map[string]privsep.Policy{"client": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.AllowUIDs(wUID)}}
	for k, v := range pollWaitRoles {
		roles[k] = v
	}
	path := filepath.Join(testutil.SocketDir(t), "named.sock")
	pw := newPollWait(t, privsep.Config{Roles: roles}, func(s *privsep.Supervisor) {
		if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(wUID)); err != nil {
			t.Fatal(err)
		}
	})
	var cs []*testutil.Proc
	for _, d := range delays {
		cs = append(cs, testutil.Start(t, "pw-named-evil", testutil.Options{Args: []string{path, "client", d}, As: asWorker(), Timeout: time.Minute}))
	}
	for i, c := range cs {
		if got := c.Line(t); !strings.HasPrefix(got, "next call: ") || strings.HasSuffix(got, "<nil>") {
			t.Errorf("client %d: %q, want its next call failed", i, got)
		}
		c.Wait()
	}
	if got := strings.Count(pw.log.String(), "protocol violation; worker disconnected"); got != len(cs) {
		t.Errorf("%d protocol violations logged, want %d", got, len(cs))
	}
	pw.end(t)
}
