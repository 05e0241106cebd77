//go:build unix

package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
)

// RequireRoot skips the test, saying why, unless the test process runs with
// effective UID 0. CI runs the tests as root, so there they run.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Skipf("testutil: requires root: the test runs processes under other UIDs or in namespaces (euid is %d); CI runs as root", euid)
	}
}

// RequireCommand returns the path of the external program name, looked up in
// PATH. When it is missing, the test fails if the CI environment variable is
// set (CI must install it) and is skipped otherwise.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("testutil: requires %s, which CI must install: %v", name, err)
		} else {
			t.Skipf("testutil: requires %s: %v", name, err)
		}
		return ""
	}
	return path
}

var userNS struct {
	once sync.Once
	err  error
}

// RequireUserNS checks once that this process can start a helper in a new
// user namespace mapped to its own IDs, as Start with Options.UserNS does.
// When it cannot (kernel.unprivileged_userns_clone=0, an AppArmor or SELinux
// policy, a seccomp filter of a container), the test fails if the CI
// environment variable is set and is skipped otherwise. Main must be running
// the tests.
func RequireUserNS(t testing.TB) {
	t.Helper()
	userNS.once.Do(func() { userNS.err = probeUserNS() })
	if userNS.err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("testutil: requires user namespaces: %v", userNS.err)
	} else {
		t.Skipf("testutil: requires user namespaces: %v", userNS.err)
	}
}

func probeUserNS() error {
	if !mainStarted.Load() {
		return fmt.Errorf("testutil.Main is not running the tests")
	}
	exe, err := helperBinary()
	if err != nil {
		return err
	}
	attr, err := sysProcAttr(&Options{UserNS: true})
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(noRaceExitSleep(environ(nil)), roleEnv+"="+probeRole)
	cmd.SysProcAttr = attr
	if err := startCmd(cmd, nil); err != nil {
		return err
	}
	return cmd.Wait()
}
