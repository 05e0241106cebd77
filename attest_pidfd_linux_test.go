package peercred_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// startWithPidFD starts the helper role with args as other (exec.Cmd, not
// testutil, for the pidfd of SysProcAttr.PidFD), and returns it with the
// pidfd and its output. Cleanup kills and reaps it (if the test did not)
// and closes the pidfd.
func startWithPidFD(t *testing.T, role string, args ...string) (*exec.Cmd, *os.File, *bufio.Reader) {
	t.Helper()
	exe, env := testutil.HelperExec(t, role)
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	pidfd := -1
	cmd.SysProcAttr = &syscall.SysProcAttr{
		PidFD:      &pidfd,
		Credential: &syscall.Credential{Uid: other.UID, Gid: other.GID},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if pidfd < 0 {
		cmd.Process.Kill()
		cmd.Wait()
		t.Skip("the kernel gave no pidfd for the child (before Linux 5.3?)")
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		f.Close()
	})
	return cmd, f, bufio.NewReader(out)
}

// TestAttestPidFDIsCredAttest: a child attested through the pidfd that
// started it is described as its connection's Cred describes it, and as
// /proc and the file system show it.
func TestAttestPidFDIsCredAttest(t *testing.T) {
	testutil.RequireRoot(t)
	helper, _ := testutil.HelperExec(t, "connect")
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	cmd, pidfd, out := startWithPidFD(t, "connect", l.Addr().String())
	if line, err := out.ReadString('\n'); line != "connected\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	c := acceptTimeout(t, l)
	opts := &peercred.AttestOptions{HashExecutable: true}
	got, err := peercred.AttestPidFD(pidfd, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v", got)
	want, err := c.Cred().Attest(opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("AttestPidFD differs from Cred.Attest (-Cred.Attest +AttestPidFD):\n%s", diff)
	}
	dev, ino := fileIDOf(t, helper)
	if got.PID != cmd.Process.Pid || got.Exe.Path != helper || got.Exe.Dev != dev || got.Exe.Ino != ino {
		t.Errorf("pid %d exe %q dev %d ino %d, want pid %d exe %q dev %d ino %d",
			got.PID, got.Exe.Path, got.Exe.Dev, got.Exe.Ino, cmd.Process.Pid, helper, dev, ino)
	}
	if cg := testutil.CgroupOf(t, cmd.Process.Pid); got.Cgroup != cg {
		t.Errorf("cgroup %q, want %q", got.Cgroup, cg)
	}
	if none, err := peercred.AttestPidFD(pidfd, nil); err != nil || none.Exe.SHA256 != nil {
		t.Errorf("AttestPidFD(nil options): SHA-256 %x, %v; want none unasked", none.Exe.SHA256, err)
	}
}

// TestAttestPidFDNeverDescribesAnExitedProcess: once the pidfd's process
// has exited, AttestPidFD fails: while it is a zombie (its PID still its
// own, but nothing to read), once reaped, and once another process took
// its PID, which is never described.
func TestAttestPidFDNeverDescribesAnExitedProcess(t *testing.T) {
	testutil.RequireRoot(t)
	var (
		pidfd *os.File
		taker *testutil.Proc
	)
	for attempt := 1; taker == nil; attempt++ {
		if attempt > 20 {
			t.Fatal("no helper got the PID of an exited child in 20 attempts")
		}
		var cmd *exec.Cmd
		cmd, pidfd, _ = startWithPidFD(t, "idle")
		if _, err := peercred.AttestPidFD(pidfd, nil); err != nil {
			t.Fatalf("alive: %v", err)
		}
		if err := unix.PidfdSendSignal(int(pidfd.Fd()), unix.SIGKILL, nil, 0); err != nil {
			t.Fatal(err)
		}
		// Exited, not reaped: a zombie.
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PIDFD, int(pidfd.Fd()), &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err == nil {
				break
			}
			if err != unix.EINTR {
				t.Fatal(err)
			}
		}
		if p, err := peercred.AttestPidFD(pidfd, nil); err == nil {
			t.Fatalf("zombie described: %v", p)
		} else if attempt == 1 {
			t.Logf("zombie: %v", err)
		}
		cmd.Wait()
		if p, err := peercred.AttestPidFD(pidfd, nil); err == nil {
			t.Fatalf("reaped child described: %v", p)
		} else if attempt == 1 {
			t.Logf("reaped: %v", err)
		}
		taker = testutil.StartAtPID(t, cmd.Process.Pid, "idle", testutil.Options{})
	}
	p, err := peercred.AttestPidFD(pidfd, &peercred.AttestOptions{HashExecutable: true})
	if err == nil {
		t.Fatalf("exited child's pidfd described pid %d, now our helper: %v", taker.PID(), p)
	}
	t.Logf("pid taken by another: %v", err)
}

// TestAttestPidFDRefusesWhatIsNoPidFD: a descriptor that is no pidfd, a
// closed one and nil describe nothing.
func TestAttestPidFDRefusesWhatIsNoPidFD(t *testing.T) {
	f, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if p, err := peercred.AttestPidFD(f, nil); err == nil || !strings.Contains(err.Error(), "not a pidfd") {
		t.Errorf("AttestPidFD of a file: %v, %v; want an error saying it is not a pidfd", p, err)
	}
	closed, err := os.Open("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	if p, err := peercred.AttestPidFD(closed, nil); err == nil {
		t.Errorf("AttestPidFD of a closed file: %v, want an error", p)
	}
	if p, err := peercred.AttestPidFD(nil, nil); err == nil {
		t.Errorf("AttestPidFD(nil): %v, want an error", p)
	}
}

// TestAttestPidFDRefusesAThread: a pidfd of a thread (PIDFD_THREAD, Linux
// 6.9+) that is not its process's first names no process: refused, where
// the kernel says which it is (PIDFD_GET_INFO, Linux 6.13+).
func TestAttestPidFDRefusesAThread(t *testing.T) {
	type result struct {
		p    *peercred.Process
		err  error
		skip string
	}
	attestThread := func() result {
		tid := unix.Gettid()
		if tid == unix.Getpid() {
			return result{skip: "on the main thread"}
		}
		fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
		if err != nil {
			return result{skip: fmt.Sprintf("pidfd_open(PIDFD_THREAD): %v (before Linux 6.9?)", err)}
		}
		f := os.NewFile(uintptr(fd), "thread pidfd")
		defer f.Close()
		p, err := peercred.AttestPidFD(f, nil)
		return result{p: p, err: err}
	}
	done := make(chan result)
	go func() {
		// Locked, and never unlocked: the thread ends with the goroutine.
		runtime.LockOSThread()
		if r := attestThread(); r.skip != "on the main thread" {
			done <- r
			return
		}
		// This goroutine holds the main thread: another runs on another.
		inner := make(chan result)
		go func() {
			runtime.LockOSThread()
			inner <- attestThread()
		}()
		done <- <-inner
	}()
	r := <-done
	if r.skip != "" {
		t.Skip(r.skip)
	}
	if r.err == nil {
		t.Fatalf("thread pidfd described: %v", r.p)
	}
	t.Logf("%v", r.err)
}

// TestAttestPidFDLeaksNoDescriptors: AttestPidFD, describing or failing,
// closes every descriptor it opens.
func TestAttestPidFDLeaksNoDescriptors(t *testing.T) {
	testutil.RequireRoot(t)
	_, live, _ := startWithPidFD(t, "idle")
	dead, gone, _ := startWithPidFD(t, "idle")
	dead.Process.Kill()
	dead.Wait()
	peercred.AttestPidFD(live, nil) // descriptors opened once (by the runtime) first
	before := openFDs(t)
	for i := range 200 {
		// Hashing the test binary is slow under the race detector.
		opts := &peercred.AttestOptions{HashExecutable: i%50 == 0}
		if _, err := peercred.AttestPidFD(live, opts); err != nil {
			t.Fatal(err)
		}
		if _, err := peercred.AttestPidFD(gone, nil); err == nil {
			t.Fatal("AttestPidFD of a reaped child succeeded")
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors: %d before, %d after", before, after)
	}
}
