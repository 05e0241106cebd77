//go:build unix

package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Build compiles the Go command in the directory pkg ("." for the package
// under test) into a directory that every user can search, and returns the
// binary's path; it is removed at the test's end. go test's own directories
// are private to their owner, and tests run such binaries under other UIDs.
// When the tests run with the race detector, the command is built with it
// too (and Command spares it the race detector's exit sleep).
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "testutil-build-")
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
	cmd := exec.Command("go", append(args, pkg)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testutil: go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
