package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// The hot path (fastpath.go): a parent that runs a handler on the goroutine
// that read its request, a worker whose caller reads its own reply, and
// connections parked in between. These tests pin the cases that this makes
// delicate.

func init() {
	// rendezvous: a call whose handler waits for a second call of the
	// same worker, made while the first one's handler runs.
	privsep.Register("rendezvous", func(ctx context.Context, w *privsep.Worker) error {
		first := make(chan error, 1)
		go func() {
			_, _, err := w.Call(ctx, "wait", nil)
			first <- err
		}()
		time.Sleep(50 * time.Millisecond) // the first handler is running by now
		if _, _, err := w.Call(ctx, "signal", nil); err != nil {
			return fmt.Errorf("signal: %w", err)
		}
		if err := <-first; err != nil {
			return fmt.Errorf("wait: %w", err)
		}
		fmt.Println("ok")
		return nil
	})
	// abandon: the reading caller's context ends; the caller that waits
	// behind it must still get its reply, and the worker go on.
	privsep.Register("abandon", func(ctx context.Context, w *privsep.Worker) error {
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		var wg sync.WaitGroup
		var errA, errB error
		var gotB []byte
		var tookA time.Duration
		wg.Add(2)
		go func() {
			defer wg.Done()
			start := time.Now()
			_, _, errA = w.Call(short, "hold", []byte("a"))
			tookA = time.Since(start)
		}()
		time.Sleep(10 * time.Millisecond) // A reads; B waits behind it
		go func() {
			defer wg.Done()
			gotB, _, errB = w.Call(ctx, "hold", []byte("b"))
		}()
		wg.Wait()
		got, _, errC := w.Call(ctx, "hold", []byte("c"))
		fmt.Printf("a: deadline=%v fast=%v\n", errors.Is(errA, context.DeadlineExceeded), tookA < 1500*time.Millisecond)
		fmt.Printf("b: %q %v\n", gotB, errB)
		fmt.Printf("c: %q %v\n", got, errC)
		return nil
	})
	// pauses: bursts of back-to-back calls with pauses longer than both
	// sides wait before they park; then it waits to be stopped.
	privsep.Register("pauses", func(ctx context.Context, w *privsep.Worker) error {
		for burst := range 3 {
			for i := range 500 {
				want := fmt.Sprintf("%d.%d", burst, i)
				got, _, err := w.Call(ctx, "echo", []byte(want))
				if err != nil || string(got) != want {
					return fmt.Errorf("call %s: %q, %v", want, got, err)
				}
			}
			time.Sleep(30 * time.Millisecond)
		}
		fmt.Println("done")
		<-ctx.Done()
		fmt.Println("stopped")
		return nil
	})
}

// TestHandlerWaitsForLaterCall: while a handler runs, the worker's next
// request is read all the same, by another goroutine.
func TestHandlerWaitsForLaterCall(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"rendezvous": {Ops: map[string]privsep.OpRule{"wait": {}, "signal": {}}},
	}})
	signal := make(chan struct{}, 1)
	s.Handle("wait", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		select {
		case <-signal:
			return nil, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	s.Handle("signal", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		signal <- struct{}{}
		return nil, nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "rendezvous", UID: wUID, GID: wGID})
	waitDone(t, p)
	if got := strings.TrimSpace(out.String()); got != "ok" || p.Err() != nil {
		t.Errorf("worker: %q, %v", got, p.Err())
	}
}

// TestReaderCallAbandoned: the caller that reads for the others gives up
// (its context ends); reading passes to the caller behind it, which gets its
// reply, and later calls work.
func TestReaderCallAbandoned(t *testing.T) {
	t.Parallel()
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"abandon": {Ops: map[string]privsep.OpRule{"hold": {}}},
	}})
	s.Handle("hold", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		if string(r.Payload) != "c" {
			time.Sleep(2 * time.Second) // far past a's deadline, even on a busy machine
		}
		return r.Payload, nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "abandon", UID: wUID, GID: wGID})
	waitDone(t, p)
	want := "a: deadline=true fast=true\nb: \"b\" <nil>\nc: \"c\" <nil>\n"
	if diff := cmp.Diff(want, out.String()); diff != "" || p.Err() != nil {
		t.Errorf("worker output (-want +got):\n%s(exit: %v)", diff, p.Err())
	}
}

// TestStopAfterCalls: after back-to-back calls (whose connection is parked
// lazily) and pauses (in which both sides park), every call is answered and
// a Stop reaches the worker at once.
func TestStopAfterCalls(t *testing.T) {
	t.Parallel()
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"pauses": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return r.Payload, nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "pauses", UID: wUID, GID: wGID})
	waitLine(t, out, "done")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Well under a second; a
	// Stop that was never read would be a kill after a minute, and the
	// worker would not say "stopped".
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("Stop took %v", d)
	}
	if got := out.String(); got != "done\nstopped\n" || p.Err() != nil {
		t.Errorf("worker: %q, %v", got, p.Err())
	}
}

// TestIdleWorkersHoldNoThread: a worker that makes no calls costs the
// parent its supervising goroutine and nothing more: its connection is
// parked, not read by a goroutine of its own, and its exit is awaited
// through its pidfd, not by a thread in waitid(2).
func TestIdleWorkersHoldNoThread(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{})
	spawnOne := func() {
		if _, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Env: raceEnv, Stdout: devNull(t)}); err != nil {
			t.Fatal(err)
		}
	}
	spawnOne() // warm up: spawner thread, parker
	const n = 20
	settled := func() (int, int) {
		time.Sleep(50 * time.Millisecond) // longer than the readers' hot wait
		return runtime.NumGoroutine(), threads()
	}
	before, threadsBefore := settled()
	for range n {
		spawnOne()
	}
	after, threadsAfter := settled()
	// Goroutines of the spawns themselves may take a moment to end on a
	// busy machine; those of idle workers stay.
	for deadline := time.Now().Add(10 * time.Second); float64(after-before)/n > 1.2 && time.Now().Before(deadline); {
		after, threadsAfter = settled()
	}
	if per := float64(after-before) / n; per > 1.2 {
		t.Errorf("%d idle workers added %d goroutines (%.1f each), want 1 each (the supervising one)", n, after-before, per)
	}
	if threadsAfter-threadsBefore > n/2 { // idle threads of the runtime aside
		t.Errorf("%d idle workers added %d threads (%d before, %d after)", n, threadsAfter-threadsBefore, threadsBefore, threadsAfter)
	}
}

// TestFailedSendPassesReading: a caller whose request cannot be sent (here
// an invalid op, refused by the encoder; also a write timeout or EPIPE) may
// have been handed the turn to read meanwhile: it must pass it on, or
// nobody reads the connection again and every later Call, and Close, hang.
func TestFailedSendPassesReading(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"sendfail": {Ops: map[string]privsep.OpRule{"slow": {}, "echo": {}}, Claim: peercred.SameUser()},
	}})
	entered := make(chan struct{}, 1)
	release := make(chan struct{}, 1) // one token per round
	s.Handle("slow", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		entered <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return []byte("slow"), nil, nil
	})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return r.Payload, nil, nil
	})
	path := testutil.SocketDir(t) + "/sendfail.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.SameUser()); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		w, err := privsep.Dial(context.Background(), path, "sendfail")
		if err != nil {
			t.Fatal(err)
		}
		slowDone := make(chan error, 1)
		go func() { _, _, err := w.Call(context.Background(), "slow", nil); slowDone <- err }()
		<-entered // the slow caller is the reader now
		var stop atomic.Bool
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					w.Call(context.Background(), "NOT VALID", nil) // fails in write
				}
			}()
		}
		time.Sleep(time.Millisecond)
		release <- struct{}{}
		if err := <-slowDone; err != nil {
			t.Fatal(err)
		}
		stop.Store(true)
		wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _, err = w.Call(ctx, "echo", []byte("x"))
		cancel()
		if err != nil {
			t.Errorf("round %d: call after a failed follower: %v (turn to read lost)", i, err)
		}
		closed := make(chan struct{})
		go func() { w.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(2 * time.Second):
			t.Fatalf("round %d: Worker.Close hangs", i)
		}
		if t.Failed() {
			return
		}
	}
}

func threads() int {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return -1
}

// TestStalledWorkerHoldsNoThreads: replies to a worker that stops reading
// wait in Go's poller, not each on a thread of its own: else one peer could
// pin MaxInFlight threads per connection, and Go aborts the whole process
// at 10000 threads.
func TestStalledWorkerHoldsNoThreads(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{
		MaxInFlight:  64,
		WriteTimeout: 2 * time.Second,
		Roles: map[string]privsep.Policy{
			"stall": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.SameUser()},
		},
	})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return r.Payload, nil, nil
	})
	path := testutil.SocketDir(t) + "/stall.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.SameUser()); err != nil {
		t.Fatal(err)
	}
	w, err := privsep.Dial(context.Background(), path, "stall")
	if err != nil {
		t.Fatal(err)
	}
	// No w.Close: StallReader holds the turn to read for good.
	time.Sleep(100 * time.Millisecond)
	before := threads()
	privsep.StallReader(w)
	payload := make([]byte, 60<<10)
	for range 70 { // MaxInFlight, and a few that wait in the parent's queue
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			w.Call(ctx, "echo", payload)
		}()
	}
	time.Sleep(500 * time.Millisecond)
	during := threads()
	t.Logf("threads: %d before, %d with one stalled worker (MaxInFlight 64)", before, during)
	if during > before+8 {
		t.Errorf("a stalled worker took %d threads of the parent (%d before, %d during)", during-before, before, during)
	}
}
