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
		t.Skipf("testutil: requires root (euid is %d): the test runs processes under other UIDs, changes groups, or uses namespaces or chroot that only root may; CI runs it as root", euid)
	}
}

// debianPackages names the Debian package that installs a program the tests
// use, where it is not the program's own name.
var debianPackages = map[string]string{
	"nc":                      "netcat-openbsd", // -U: netcat-traditional lacks Unix sockets
	"systemd-socket-activate": "systemd",
	"sh":                      "dash",
	"id":                      "coreutils",
	"sleep":                   "coreutils",
	"gcc":                     "gcc",
	"cc":                      "gcc",
}

// RequireCommand returns the path of the external program name, looked up in
// PATH. When it is missing, the test fails if the CI environment variable is
// set (CI must install it) and is skipped otherwise; either way the message
// names the Debian package to install.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		pkg := debianPackages[name]
		if pkg == "" {
			pkg = name
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("testutil: requires %s, which CI must install (apt-get install %s): %v", name, pkg, err)
		} else {
			t.Skipf("testutil: requires %s (apt-get install %s): %v", name, pkg, err)
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
