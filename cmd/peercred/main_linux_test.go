package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/peercred/peercred/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// build compiles the command in the current directory into a directory that
// every user can search (go test's own is private to its owner, and the
// tests run the command under other UIDs), removed at the test's end. With
// the race detector on, the command is built with it too.
func build(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "peercred-cmd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// waitFor polls cond every 10ms until it holds, and fails the test after
// timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitSocket waits for the socket file path to appear: the servers link it
// only once they listen.
func waitSocket(t *testing.T, p *testutil.Proc, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s after 10s; server stderr:\n%s", path, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startCmd starts bin as testutil.Command does, with the race detector's
// sleep of a second at exit turned off, for binaries built with -race.
func startCmd(t *testing.T, opts testutil.Options, bin string, args ...string) *testutil.Proc {
	t.Helper()
	opts.Env = append(opts.Env, "GORACE=atexit_sleep_ms=0")
	return testutil.Command(t, opts, bin, args...)
}

// runCmd runs bin to its end, as startCmd starts it, and returns its exit
// code, stdout and stderr.
func runCmd(t *testing.T, opts testutil.Options, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCmd(t, opts, bin, args...)
	p.Wait()
	return p.ExitCode(), p.Stdout(), p.Stderr()
}
