package main

import (
	"os"
	"testing"
	"time"

	"github.com/peercred/peercred/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// build compiles the command in the current directory for the tests,
// into a directory other UIDs can reach (see testutil.Build).
func build(t *testing.T, name string) string {
	t.Helper()
	return testutil.Build(t, ".", name)
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

// startCmd starts bin with testutil.Command (which turns off the race
// detector's one-second sleep at exit of binaries built with -race).
func startCmd(t *testing.T, opts testutil.Options, bin string, args ...string) *testutil.Proc {
	t.Helper()
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
