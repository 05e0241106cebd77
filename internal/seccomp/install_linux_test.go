package seccomp

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain doubles as the child of TestInstall, which must not install a
// filter in the test process itself.
func TestMain(m *testing.M) {
	if os.Getenv("SECCOMP_TEST_CHILD") == "1" {
		os.Exit(installChild())
	}
	os.Exit(m.Run())
}

// installChild installs a filter that fails getppid with EPERM, and checks
// that it holds on every thread, including threads started afterwards.
func installChild() int {
	fail := func(format string, args ...any) int {
		os.Stderr.WriteString("child: " + strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
		return 1
	}
	f := New(Allow)
	if err := f.Add("getppid", Errno(syscall.EPERM)); err != nil {
		return fail("%v", err)
	}
	prog, err := f.Assemble()
	if err != nil {
		return fail("%v", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("%v", err)
	}
	start := time.Now()
	if err := Install(prog); err != nil {
		return fail("install: %v", err)
	}
	os.Stdout.WriteString("installed in " + time.Since(start).String() + "\n")
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			runtime.LockOSThread() // a thread of its own, maybe new
			_, _, e := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
			if e != unix.EPERM {
				errs <- errors.New("getppid not refused on a thread: " + e.Error())
				return
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			return fail("%v", err)
		}
	}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
		if err != nil {
			continue
		}
		if !strings.Contains(string(b), "\nSeccomp:\t2\n") {
			return fail("thread %s is not in filter mode", task.Name())
		}
	}
	return 0
}

func TestInstall(t *testing.T) {
	if !Supported() {
		t.Skip("no table for this architecture")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "SECCOMP_TEST_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
