//go:build unix

package testutil

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// helperExe is the copy of the test binary that helpers run: go test builds
// the binary in a directory only its owner can search, so other UIDs could not
// execute it in place.
var helperExe struct {
	mu   sync.Mutex
	dir  string // the directory holding the copy; "" before the first copy
	path string
}

// helperBinary returns the path of a copy of the running test binary that any
// UID can execute, making it on first use.
func helperBinary() (string, error) {
	helperExe.mu.Lock()
	defer helperExe.mu.Unlock()
	if helperExe.path != "" {
		return helperExe.path, nil
	}
	dir, path, err := copySelf()
	if err != nil {
		return "", fmt.Errorf("copy test binary for other users: %w", err)
	}
	helperExe.dir, helperExe.path = dir, path
	return path, nil
}

// removeHelperBinary removes the copy made by helperBinary, if any.
func removeHelperBinary() error {
	helperExe.mu.Lock()
	defer helperExe.mu.Unlock()
	if helperExe.dir == "" {
		return nil
	}
	err := os.RemoveAll(helperExe.dir)
	helperExe.dir, helperExe.path = "", ""
	if err != nil {
		return fmt.Errorf("testutil: remove copy of test binary: %w", err)
	}
	return nil
}

// copySelf copies the running executable to a new directory under
// os.TempDir, both mode 0755.
func copySelf() (dir, path string, err error) {
	name, err := os.Executable()
	if err != nil {
		return "", "", err
	}
	// /proc/self/exe is the running binary even if its path was replaced.
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		if src, err = os.Open(name); err != nil {
			return "", "", err
		}
	}
	defer src.Close()

	dir, err = os.MkdirTemp("", "peercred-testutil-")
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, filepath.Base(name))

	// While the copy is open for writing, a child forked by another
	// goroutine holds the descriptor until its exec, and exec of the copy
	// fails with ETXTBSY. Holding ForkLock for reading keeps forks out.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	dst, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return "", "", err
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", "", err
	}
	// The umask may have removed bits from the mode given to OpenFile.
	if err := os.Chmod(path, 0o755); err != nil {
		return "", "", err
	}
	return dir, path, nil
}

// HelperExec returns what another program needs to start the test binary as
// a helper running role: the path of a copy of the binary that any user can
// execute, and the environment entries that select the role (and, as Start
// does, turn off the race detector's sleep at exit). Use it to start a helper
// through a wrapper that then executes it, such as systemd-socket-activate,
// env or sudo, run with [Command]. Command does not pass the role marker in
// Options.Env, and some wrappers clear the environment, so give env to the
// wrapper in its own way:
//
//	exe, env := testutil.HelperExec(t, "serve")
//	args := []string{"-l", path}
//	for _, kv := range env {
//		args = append(args, "-E", kv) // systemd-socket-activate passes only these
//	}
//	p := testutil.Command(t, testutil.Options{}, "systemd-socket-activate", append(args, "--", exe)...)
//
// Main must be running the tests, and role must be registered. HelperExec
// fails the test otherwise, or if the binary cannot be copied.
func HelperExec(t testing.TB, role string) (path string, env []string) {
	t.Helper()
	if !mainStarted.Load() {
		t.Fatalf("testutil: helper exec %q: testutil.Main is not running the tests: call it from TestMain", role)
		return "", nil
	}
	if _, ok := lookupRole(role); !ok {
		t.Fatalf("testutil: helper exec %q: no such role: Register it in init or in TestMain before Main", role)
		return "", nil
	}
	path, err := helperBinary()
	if err != nil {
		t.Fatalf("testutil: helper exec %q: %v", role, err)
		return "", nil
	}
	env = noRaceExitSleep([]string{"GORACE=" + os.Getenv("GORACE")})
	return path, append(env, roleEnv+"="+role)
}
