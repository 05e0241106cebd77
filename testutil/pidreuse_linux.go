package testutil

import (
	"os"
	"strconv"
	"testing"
)

// StartAtPID is [Start], asking the kernel to give the helper the PID pid
// in the test's PID namespace: on the thread that forks, just before the
// fork, it writes pid-1 to /proc/sys/kernel/ns_last_pid, so that the next
// PID allocated is pid if it is free. Tests of PID reuse use it once the
// process that had pid has been reaped (see [Proc.Wait]).
//
// Another process (or a thread of the test) may be created in between and
// take pid: StartAtPID then kills the helper it started and returns nil, and
// the test can make pid free again and retry. It needs root
// (CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over the PID namespace); it
// moves the PID counter of the whole namespace, which other processes
// notice only in the PIDs they get.
func StartAtPID(t testing.TB, pid int, role string, opts Options) *Proc {
	t.Helper()
	if pid <= 1 {
		t.Fatalf("testutil: start role %q at pid %d: not a PID a helper can have", role, pid)
		return nil
	}
	last := []byte(strconv.Itoa(pid - 1))
	opts.beforeFork = func() error {
		return os.WriteFile("/proc/sys/kernel/ns_last_pid", last, 0)
	}
	p := Start(t, role, opts)
	if p.PID() != pid {
		p.Kill()
		p.Wait()
		return nil
	}
	return p
}
