package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// Attack: Once is per process, not per connection. A process admitted over a
// named socket opens several connections (and closes them all and comes
// back) to use a Once operation more than once.

func init() {
	// once-client dials path as each role in turn (one connection per
	// role argument, all kept open), calls "token" and opens the file on
	// each, then closes them all and does it again on a new connection as
	// the first role. Each line says what one attempt got.
	testutil.Register("once-client", func(args []string) int {
		path, file, roles := args[0], args[1], args[2:]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		try := func(w *privsep.Worker, role string) {
			_, _, err := w.Call(ctx, "token", nil)
			fmt.Printf("%s token: %s\n", role, onceResult(err))
			f, err := w.Open(file)
			if err == nil {
				f.Close()
			}
			fmt.Printf("%s open: %s\n", role, onceResult(err))
		}
		var ws []*privsep.Worker
		for _, role := range roles {
			w, err := privsep.Dial(ctx, path, role)
			if err != nil {
				fmt.Println("dial:", err)
				return 1
			}
			ws = append(ws, w)
			try(w, role)
		}
		for _, w := range ws {
			w.Close()
		}
		w, err := privsep.Dial(ctx, path, roles[0])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		defer w.Close()
		try(w, roles[0])
		return 0
	})
	// once-both is a spawned worker that calls "token" on its own
	// connection, and then again as the same role over the named socket
	// in its first argument.
	privsep.Register("once-both", func(ctx context.Context, w *privsep.Worker) error {
		_, _, err := w.Call(ctx, "token", nil)
		fmt.Printf("spawned token: %s\n", onceResult(err))
		nw, err := privsep.Dial(ctx, w.Args()[0], "once-both")
		if err != nil {
			return err
		}
		defer nw.Close()
		_, _, err = nw.Call(ctx, "token", nil)
		fmt.Printf("named token: %s\n", onceResult(err))
		return nil
	})
}

func onceResult(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, privsep.ErrDenied):
		return "denied"
	}
	return "error " + err.Error()
}

// TestAttackOncePerProcess: however many connections a process opens, and
// whether it closes them all and comes back, it gets a Once operation (and a
// Once open) once per role; another process gets its own; and the
// supervisor forgets the processes once they are gone.
func TestAttackOncePerProcess(t *testing.T) {
	dir := testutil.SocketDir(t)
	file := filepath.Join(dir, "once-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := privsep.Policy{
		Ops:   map[string]privsep.OpRule{"token": {Once: true}},
		Files: []privsep.PathRule{{Path: file, Once: true}},
		Claim: peercred.AllowUIDs(wUID),
	}
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{"oncer": policy, "oncer2": policy}})
	s.Handle("token", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return []byte("t"), nil, nil
	})
	path := dir + "/once.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(wUID)); err != nil {
		t.Fatal(err)
	}
	// Each role's first attempt succeeds; every later one, on any
	// connection of the same process, is refused.
	want := strings.Join([]string{
		"oncer token: ok", "oncer open: ok",
		"oncer token: denied", "oncer open: denied",
		"oncer token: denied", "oncer open: denied",
		"oncer2 token: ok", "oncer2 open: ok",
		"oncer token: denied", "oncer open: denied", // all closed, and back
	}, "\n")
	for i := range 2 { // the second process gets its own allowance
		c := testutil.Start(t, "once-client", testutil.Options{
			Args:    []string{path, file, "oncer", "oncer", "oncer", "oncer2"},
			As:      asWorker(),
			Timeout: 30 * time.Second,
		})
		if err := c.Wait(); err != nil {
			t.Fatalf("client %d: %v\n%s", i, err, c.Stdout())
		}
		if got := strings.TrimSpace(c.Stdout()); got != want {
			t.Errorf("client %d got:\n%s\nwant:\n%s", i, got, want)
		}
	}
	// Both clients are gone (reaped): their entries go.
	waitFor(t, "the supervisor to forget exited processes", 10*time.Second, func() bool {
		return privsep.OnceProcs(s) == 0
	})
}

// TestOncePerProcessSpawnedAndNamed: a spawned worker that also connects to
// a named socket as its role is the same process: one allowance.
func TestOncePerProcessSpawnedAndNamed(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{"once-both": {
		Ops:   map[string]privsep.OpRule{"token": {Once: true}},
		Claim: peercred.AllowUIDs(wUID),
	}}})
	s.Handle("token", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return []byte("t"), nil, nil
	})
	path := testutil.SocketDir(t) + "/once-both.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(wUID)); err != nil {
		t.Fatal(err)
	}
	p, out := spawn(t, s, privsep.Spec{Role: "once-both", UID: wUID, GID: wGID, Args: []string{path}})
	waitDone(t, p)
	if got, want := out.String(), "spawned token: ok\nnamed token: denied\n"; got != want || p.Err() != nil {
		t.Errorf("worker: %q, %v; want %q", got, p.Err(), want)
	}
	waitFor(t, "the supervisor to forget the worker", 10*time.Second, func() bool {
		return privsep.OnceProcs(s) == 0
	})
}

// TestOnceRestartedWorker: a restarted worker is a new process, with its
// own allowance (as documented).
func TestOnceRestartedWorker(t *testing.T) {
	t.Parallel()
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"once": {Ops: map[string]privsep.OpRule{"token": {Once: true}}},
	}})
	s.Handle("token", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return []byte("t"), nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "once", UID: wUID, GID: wGID, Restart: privsep.RestartAlways})
	one := "token=\"t\" denied=false\ntoken=\"\" denied=true\n"
	waitFor(t, "two incarnations", 20*time.Second, func() bool { return p.Restarts() >= 1 && len(out.String()) >= 2*len(one) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p.Stop(ctx)
	if got := out.String(); !strings.HasPrefix(got, one+one) {
		t.Errorf("two incarnations printed %q, want %q twice", got, one)
	}
}
