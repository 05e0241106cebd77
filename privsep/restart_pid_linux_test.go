package privsep_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// Attack 10 of the privsep security issue: PID right after Restart named
// the old worker, already reaped: a caller that signals it or reads its
// /proc entry may reach an unrelated process.
func TestPIDAfterRestartNeverReaped(t *testing.T) {
	t.Parallel()
	s, _ := newSupervisor(t, privsep.Config{})
	p, _ := spawn(t, s, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID})
	for i := range 4 {
		old := p.PID()
		if !ourLiveChild(old) {
			t.Fatalf("restart %d: PID %d before Restart is not a live child of ours", i, old)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if err := p.Restart(ctx); err != nil {
			t.Fatalf("restart %d: %v", i, err)
		}
		if pid := p.PID(); pid == old || pid != 0 && !ourLiveChild(pid) {
			t.Errorf("restart %d: PID() right after Restart is %d (old worker %d): not 0 nor a live worker", i, pid, old)
		}
		if err := p.Ready(ctx); err != nil {
			t.Fatalf("restart %d: Ready: %v", i, err)
		}
		cancel()
		if pid := p.PID(); pid == 0 || pid == old || !ourLiveChild(pid) {
			t.Errorf("restart %d: PID() after Ready is %d (old worker %d): want a new live worker", i, pid, old)
		}
	}
}

// ourLiveChild reports whether pid is a child of this process that has not
// exited.
func ourLiveChild(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ppid ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:])
	return len(f) > 1 && f[0] != "Z" && f[0] != "X" && f[1] == strconv.Itoa(os.Getpid())
}

func TestReadyReportsFailedStart(t *testing.T) {
	t.Parallel()
	s, _ := newSupervisor(t, privsep.Config{})
	// The worker plays dumpable, and is refused, once this file exists.
	flag := filepath.Join(testutil.SocketDir(t), "dumpable")
	p, _ := spawn(t, s, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Restart: privsep.RestartAlways,
		RestartDelay: time.Hour, Env: []string{"PRIVSEP_TEST_DUMPABLE_IF=" + flag}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Ready(ctx); err != nil {
		t.Fatalf("Ready of a verified worker: %v", err)
	}
	if err := os.WriteFile(flag, nil, 0644); err != nil {
		t.Fatal(err)
	}
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// The restart is refused; the next try is an hour away.
	if err := p.Ready(ctx); !errors.Is(err, privsep.ErrVerify) {
		t.Errorf("Ready after a refused restart: %v, want ErrVerify", err)
	}
	if pid := p.PID(); pid != 0 {
		t.Errorf("PID() = %d after a refused restart, want 0", pid)
	}
	// Restart between workers starts the next one now, whatever the delay.
	os.Remove(flag)
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Ready(ctx); err != nil {
		t.Errorf("Ready after Restart between workers: %v", err)
	}
	if pid := p.PID(); !ourLiveChild(pid) {
		t.Errorf("PID() = %d, want a live worker", pid)
	}
}

func TestReadyAndRestartAfterTheEnd(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{})
	p, _ := spawn(t, s, privsep.Spec{Role: "id", UID: wUID, GID: wGID}) // exits; RestartNever
	waitDone(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Ready(ctx); !errors.Is(err, privsep.ErrWorkerGone) {
		t.Errorf("Ready after the end: %v, want ErrWorkerGone", err)
	}
	if err := p.Restart(ctx); !errors.Is(err, privsep.ErrWorkerGone) {
		t.Errorf("Restart after the end: %v, want ErrWorkerGone", err)
	}
}
