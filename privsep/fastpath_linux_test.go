package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
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
		fmt.Printf("a: deadline=%v fast=%v\n", errors.Is(errA, context.DeadlineExceeded), tookA < 250*time.Millisecond)
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
	testutil.RequireRoot(t)
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
	p, out := spawn(t, s, privsep.Spec{Role: "rendezvous", UID: 1234, GID: 1234})
	waitDone(t, p)
	if got := strings.TrimSpace(out.String()); got != "ok" || p.Err() != nil {
		t.Errorf("worker: %q, %v", got, p.Err())
	}
}

// TestReaderCallAbandoned: the caller that reads for the others gives up
// (its context ends); reading passes to the caller behind it, which gets its
// reply, and later calls work.
func TestReaderCallAbandoned(t *testing.T) {
	testutil.RequireRoot(t)
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"abandon": {Ops: map[string]privsep.OpRule{"hold": {}}},
	}})
	s.Handle("hold", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		if string(r.Payload) != "c" {
			time.Sleep(300 * time.Millisecond)
		}
		return r.Payload, nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "abandon", UID: 1234, GID: 1234})
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
	testutil.RequireRoot(t)
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"pauses": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return r.Payload, nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "pauses", UID: 1234, GID: 1234})
	waitLine(t, out, "done")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	// Well under a second even on a loaded machine; a Stop that was
	// never read would be a kill after 5 s.
	if d := time.Since(start); d > time.Second {
		t.Errorf("Stop took %v", d)
	}
	if got := out.String(); got != "done\nstopped\n" || p.Err() != nil {
		t.Errorf("worker: %q, %v", got, p.Err())
	}
}

// TestIdleSessionsHoldNoGoroutine: a worker that makes no calls costs the
// parent its supervising goroutine and nothing more: its connection is
// parked, not read by a goroutine of its own.
func TestIdleSessionsHoldNoGoroutine(t *testing.T) {
	testutil.RequireRoot(t)
	s, _ := newSupervisor(t, privsep.Config{})
	spawnOne := func() {
		if _, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: 1234, GID: 1234, Env: raceEnv, Stdout: devNull(t)}); err != nil {
			t.Fatal(err)
		}
	}
	spawnOne() // warm up: spawner thread, parker
	const n = 10
	settled := func() int {
		time.Sleep(50 * time.Millisecond) // longer than the readers' hot wait
		return runtime.NumGoroutine()
	}
	before := settled()
	for range n {
		spawnOne()
	}
	after := settled()
	if per := float64(after-before) / n; per > 1.2 {
		t.Errorf("%d idle workers added %d goroutines (%.1f each), want 1 each (the supervising one)", n, after-before, per)
	}
}
