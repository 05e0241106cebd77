//go:build race

package privsep_test

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
)

func init() {
	// racy returns after a data race: two unsynchronized writes of n.
	privsep.Register("racy", func(ctx context.Context, w *privsep.Worker) error {
		n := 0
		done := make(chan struct{})
		go func() {
			n++
			close(done)
		}()
		n++
		<-done
		return nil
	})
	privsep.Register("clean", func(ctx context.Context, w *privsep.Worker) error {
		return nil
	})
}

// A race-enabled worker that sees GORACE=atexit_sleep_ms=0 ends at once
// (workerExit), and what the race detector found still decides its status:
// a data race makes a worker whose role succeeded exit with the detector's
// exit code (66, or GORACE's exitcode) and report it on stderr. As root the
// worker is exec'd not dumpable and the detector cannot read GORACE itself;
// as a normal user it can.
func TestRaceWorkerExit(t *testing.T) {
	for _, tc := range []struct {
		role, gorace string
		status       int
	}{
		{"clean", "atexit_sleep_ms=0", 0},
		{"racy", "atexit_sleep_ms=0", 66},
		{"racy", "exitcode=7,atexit_sleep_ms=0", 7},
		{"racy", "", 66}, // the detector's own exit, after its sleep
	} {
		t.Run(tc.role+"/GORACE="+tc.gorace, func(t *testing.T) {
			s, _ := newSupervisor(t, privsep.Config{})
			stderr := &syncBuffer{}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			p, err := s.Spawn(ctx, privsep.Spec{Role: tc.role, UID: wUID, GID: wGID,
				Env: []string{"GORACE=" + tc.gorace}, Stderr: stderr})
			if err != nil {
				t.Fatalf("Spawn: %v\nworker stderr:\n%s", err, stderr)
			}
			waitDone(t, p)
			err = p.Err()
			var ee *exec.ExitError
			switch {
			case tc.status == 0 && err != nil:
				t.Errorf("worker exited: %v, want status 0", err)
			case tc.status != 0 && (!errors.As(err, &ee) || ee.ExitCode() != tc.status):
				t.Errorf("worker exited: %v, want exit status %d", err, tc.status)
			}
			if got, want := strings.Contains(stderr.String(), "WARNING: DATA RACE"), tc.status != 0; got != want {
				t.Errorf("worker stderr reports a data race: %v, want %v; stderr:\n%s", got, want, stderr)
			}
		})
	}
}
