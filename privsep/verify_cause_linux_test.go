package privsep_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// A failed verification keeps its cause: errors.Is finds ErrVerify and
// what made it fail, and errors.As the worker's exit status.
func TestSpawnVerifyErrorKeepsItsCause(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel2()
	<-expired.Done()
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		cause error
	}{
		{"a canceled context", canceled, context.Canceled},
		{"an expired context", expired, context.DeadlineExceeded},
	} {
		t.Run("the hello awaited with "+tc.name, func(t *testing.T) {
			s, _ := newSupervisor(t, privsep.Config{})
			_, err := s.Spawn(tc.ctx, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Env: raceEnv})
			if !errors.Is(err, privsep.ErrVerify) {
				t.Errorf("Spawn: %v, want ErrVerify", err)
			}
			if !errors.Is(err, tc.cause) {
				t.Errorf("Spawn: %v, want it to wrap %v", err, tc.cause)
			}
		})
	}
	t.Run("a worker that exits before its hello", func(t *testing.T) {
		s, _ := newSupervisor(t, privsep.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// Not registered in this binary: privsep.Main exits 2.
		_, err := s.Spawn(ctx, privsep.Spec{Role: "no-such-role", UID: wUID, GID: wGID, Env: raceEnv, Stderr: &syncBuffer{}})
		if !errors.Is(err, privsep.ErrVerify) {
			t.Errorf("Spawn: %v, want ErrVerify", err)
		}
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("Spawn: %v, want it to wrap the worker's exit status 2", err)
		}
	})
}

// logRecords is a slog.Handler that keeps every record.
type logRecords struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecords) WithGroup(string) slog.Handler            { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// attr returns the value of key in the first record with message msg.
func (h *logRecords) attr(msg, key string) (slog.Value, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		var v slog.Value
		found := false
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == key {
				v, found = a.Value, true
				return false
			}
			return true
		})
		return v, found
	}
	return slog.Value{}, false
}

// The log line of a named-socket peer refused by its role's Claim carries
// the Claim's error, not only its text, for a handler that tells causes
// apart.
func TestNamedRefusalLogKeepsClaimError(t *testing.T) {
	errNotYou := errors.New("not you")
	h := &logRecords{}
	s := privsep.New(privsep.Config{
		Logger: slog.New(h),
		Roles: map[string]privsep.Policy{
			"picky": {Claim: func(*peercred.Cred) error { return errNotYou }},
		},
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	path := testutil.SocketDir(t) + "/privsep.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(uint32(os.Geteuid()))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if w, err := privsep.Dial(ctx, path, "picky"); err == nil {
		w.Close()
		t.Fatal("Dial as a role whose Claim refuses everyone: admitted")
	}
	var v slog.Value
	waitFor(t, "the refusal in the log", time.Minute, func() bool {
		var ok bool
		v, ok = h.attr("privsep: named-socket peer refused", "reason")
		return ok
	})
	err, _ := v.Any().(error)
	if !errors.Is(err, errNotYou) {
		t.Errorf("reason logged: %v (%T), want an error wrapping the Claim's", v, v.Any())
	}
}
