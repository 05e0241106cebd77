//go:build unix

package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// builds holds the commands Build made, one per package and name, for the
// whole test binary: a go build -race costs many seconds on a busy machine,
// and most of the command's tests use the same binary.
var builds struct {
	mu   sync.Mutex
	done map[[2]string]*build
}

type build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Build compiles the Go command in the directory pkg ("." for the package
// under test) into a directory that every user can search, and returns the
// binary's path. go test's own directories are private to their owner, and
// tests run such binaries under other UIDs. When the tests run with the race
// detector, the command is built with it too (and Command spares it the race
// detector's exit sleep).
//
// The command is built once per test binary: later calls with the same pkg
// and name return the same path, so tests must not change the file. Under
// Main it is removed when the tests end; otherwise at the end of the test
// that built it (and later calls build again).
func Build(t testing.TB, pkg, name string) string {
	t.Helper()
	shared := mainStarted.Load()
	key := [2]string{pkg, name}
	builds.mu.Lock()
	b := builds.done[key]
	if b == nil || !shared {
		b = &build{}
		if shared {
			if builds.done == nil {
				builds.done = map[[2]string]*build{}
			}
			builds.done[key] = b
		}
	}
	builds.mu.Unlock()
	b.once.Do(func() { b.dir, b.bin, b.err = buildCmd(pkg, name) })
	if !shared && b.dir != "" {
		t.Cleanup(func() { os.RemoveAll(b.dir) })
	}
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// buildCmd builds pkg as name into a new directory.
func buildCmd(pkg, name string) (dir, bin string, err error) {
	dir, err = os.MkdirTemp("", "testutil-build-")
	if err != nil {
		return "", "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return dir, "", err
	}
	bin = filepath.Join(dir, name)
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return dir, "", fmt.Errorf("testutil: go build %s: %v\n%s", pkg, err, out)
	}
	return dir, bin, nil
}

// removeBuilds removes the commands Build made under Main.
func removeBuilds() error {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	var errs []error
	for key, b := range builds.done {
		if b.dir != "" {
			if err := os.RemoveAll(b.dir); err != nil {
				errs = append(errs, fmt.Errorf("testutil: remove built %s: %w", key[1], err))
			}
		}
		delete(builds.done, key)
	}
	return errors.Join(errs...)
}
