package privsep_test

import (
	"context"
	"os"
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
	testutil.RequireRoot(t)
	s, _ := newSupervisor(t, privsep.Config{})
	p, _ := spawn(t, s, privsep.Spec{Role: "sleep", UID: 1234, GID: 1234})
	for i := range 10 {
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
