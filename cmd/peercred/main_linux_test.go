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

// runCmd runs bin to its end, as startCmd starts it, and returns its exit
// code, stdout and stderr.
func runCmd(t *testing.T, opts testutil.Options, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCmd(t, opts, bin, args...)
	p.Wait()
	return p.ExitCode(), p.Stdout(), p.Stderr()
}

// waitFor polls a condition until it holds or the test fails.
var waitFor = testutil.WaitFor

// startCmd starts a built command (testutil.Command spares -race
// binaries the race detector's exit sleep).
var startCmd = testutil.Command
