package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// A worker's life: shutdown, restarts, the parent's death.

func init() {
	privsep.Register("stubborn", func(ctx context.Context, w *privsep.Worker) error {
		fmt.Println("up")
		select {} // ignores the request to stop
	})
	// A testutil role: a process that is not a worker.
	testutil.Register("parent", func(args []string) int {
		s := privsep.New(privsep.Config{})
		for range 2 {
			p, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Env: raceEnv})
			if err != nil {
				fmt.Println("spawn:", err)
				return 1
			}
			fmt.Println(p.PID())
		}
		select {} // until killed
	})
}

// TestParentDeathKillsWorkers runs the parent itself as a helper process,
// kills it with SIGKILL, and checks its workers are gone within a second.
func TestParentDeathKillsWorkers(t *testing.T) {
	parent := testutil.Start(t, "parent", testutil.Options{Env: raceEnv})
	var workers []int
	for range 2 {
		pid, err := strconv.Atoi(parent.Line(t))
		if err != nil {
			t.Fatalf("parent: %v\n%s", err, parent.Stderr())
		}
		workers = append(workers, pid)
	}
	parent.Kill()
	deadline := time.Now().Add(time.Second)
	for _, pid := range workers {
		for !gone(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("worker %d alive 1s after its parent was killed", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestShutdownStopsWorkers(t *testing.T) {
	s := privsep.New(privsep.Config{})
	var pids []int
	for range 3 {
		p, out := spawn(t, s, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Restart: privsep.RestartAlways})
		waitLine(t, out, "up")
		pids = append(pids, p.PID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("worker %d survived Shutdown", pid)
		}
	}
	if _, err := s.Spawn(ctx, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID}); !errors.Is(err, privsep.ErrUnavailable) {
		t.Errorf("Spawn after Shutdown: %v, want ErrUnavailable", err)
	}
}

func TestShutdownKillsWorkerThatIgnoresStop(t *testing.T) {
	s := privsep.New(privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "stubborn", UID: wUID, GID: wGID})
	waitLine(t, out, "up")
	pid := p.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Shutdown took %v, with a deadline of 200ms", d)
	}
	if !gone(pid) {
		t.Errorf("stubborn worker %d survived Shutdown", pid)
	}
}

func TestRequestedRestart(t *testing.T) {
	t.Parallel()
	s, _ := newSupervisor(t, privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID}) // RestartNever
	waitLine(t, out, "up")
	first := p.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new worker", 5*time.Second, func() bool { pid := p.PID(); return pid != 0 && pid != first })
	if !gone(first) {
		t.Errorf("old worker %d still running", first)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
}
