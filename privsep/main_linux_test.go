package privsep_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// This test binary is also the workers' binary: each test file registers
// the worker roles its tests use in an init of its own (roles_linux_test.go
// holds those used all over the package).

// echo is the "echo" handler many tests serve.
func echo(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
	// Out of order on purpose: replies must still reach their callers.
	if len(r.Payload) > 0 && r.Payload[len(r.Payload)-1]%2 == 0 {
		time.Sleep(time.Millisecond)
	}
	return r.Payload, nil, nil
}

// header builds a wire header (version 1) with the op appended.
func header(kind byte, id uint32, op string, paylen int) []byte {
	b := make([]byte, 16, 16+len(op))
	b[0], b[1] = 1, kind
	binary.LittleEndian.PutUint32(b[4:], id)
	binary.LittleEndian.PutUint16(b[8:], uint16(len(op)))
	binary.LittleEndian.PutUint32(b[12:], uint32(paylen))
	return append(b, op...)
}

// raceEnv keeps race-enabled workers from sleeping a second at exit, those
// that can read their own /proc/self/environ (see raceExitSleep).
var raceEnv = []string{"GORACE=atexit_sleep_ms=0"}

func TestMain(m *testing.M) {
	benchExecReady()
	// A test worker that changes identity before its hello: only the
	// kernel's view of it can tell the parent.
	if uid := os.Getenv("PRIVSEP_TEST_SETUID"); uid != "" {
		n, _ := strconv.Atoi(uid)
		if err := syscall.Setuid(n); err != nil {
			fmt.Fprintln(os.Stderr, "setuid:", err)
			os.Exit(3)
		}
	}
	privsep.Main()
	testutil.Main(m)
}

// waitLine waits until buf has a line containing want.
func waitLine(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("output %q (have %q)", want, buf.String()), time.Minute, func() bool {
		return strings.Contains(buf.String(), want)
	})
}

// newSupervisor returns a supervisor logging into a buffer, shut down at
// cleanup.
func newSupervisor(t *testing.T, cfg privsep.Config) (*privsep.Supervisor, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := privsep.New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if t.Failed() {
			lines := strings.Split(log.String(), "\n")
			t.Logf("supervisor log (last 40 lines):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return s, log
}

// spawn starts a worker with output captured.
func spawn(t *testing.T, s *privsep.Supervisor, spec privsep.Spec) (*privsep.Process, *syncBuffer) {
	t.Helper()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	spec.Stdout, spec.Stderr = out, errOut
	t.Cleanup(func() {
		if t.Failed() && errOut.String() != "" {
			t.Logf("%s worker stderr:\n%s", spec.Role, errOut)
		}
	})
	spec.Env = append(spec.Env, raceEnv...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a busy machine's, under -race
	defer cancel()
	p, err := s.Spawn(ctx, spec)
	if err != nil {
		t.Fatalf("Spawn(%s): %v\nworker output:\n%s%s", spec.Role, err, out, errOut)
	}
	return p, out
}

// waitDone waits for p to finish for good.
func waitDone(t *testing.T, p *privsep.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(2 * time.Minute): // 10,000 calls under -race on a busy machine
		t.Fatalf("%s worker pid %d did not finish", p.Role(), p.PID())
	}
}

// gone reports whether pid has exited (or is a zombie nobody reaped).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// openFDs counts this process's descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1
}

// syncBuffer is a buffer the test and a writer can share.
type syncBuffer = testutil.Buffer

// waitFor polls a condition until it holds or the test fails.
var waitFor = testutil.WaitFor
