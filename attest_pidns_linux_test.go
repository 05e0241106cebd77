package peercred_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/proc"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// attest-foreign-proc PID EXE ENV...: run as PID 1 of a PID namespace
	// of its own that kept the /proc of the test's (as a server does that
	// made one and did not mount /proc again). Start EXE with ENV (the
	// helper role "connect") as a child with PID PID in this namespace,
	// accept its connection, and print what Attest says of it: "refused
	// ERROR", or "described PID STARTTIME EXE".
	testutil.Register("attest-foreign-proc", func(args []string) int {
		if err := attestForeignProc(args[0], args[1], args[2:]); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return 0
	})
}

func attestForeignProc(pid, exe string, env []string) error {
	return acceptAtPID(pid, exe, env, func(c *peercred.Conn) {
		p, err := c.Cred().Attest(nil)
		if err != nil {
			fmt.Println("refused", err)
		} else {
			fmt.Println("described", p.PID, p.StartTime, p.Exe.Path)
		}
	})
}

// acceptAtPID starts exe with env (the helper role "connect") as a child
// with PID pid in our PID namespace, accepts its connection and calls
// check with it.
func acceptAtPID(pid, exe string, env []string, check func(*peercred.Conn)) error {
	addr := "@peercred-attest-foreign-proc-" + strconv.Itoa(os.Getppid()) + "-" + pid
	l, err := peercred.Listen(context.Background(), addr)
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := strconv.Atoi(pid)
	if err != nil {
		return err
	}
	var cmd *exec.Cmd
	for attempt := 1; cmd == nil; attempt++ {
		if attempt > 20 {
			return fmt.Errorf("no child got pid %d in 20 attempts", n)
		}
		// ns_last_pid is the counter of the writer's PID namespace: ours.
		// A thread the runtime starts meanwhile takes the PID: retry.
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(n-1)), 0); err != nil {
			return err
		}
		c := exec.Command(exe, addr)
		c.Env = env
		if err := c.Start(); err != nil {
			return err
		}
		if c.Process.Pid != n {
			c.Process.Kill()
			c.Wait()
			continue
		}
		cmd = c
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if c.Cred().PID != n {
		return fmt.Errorf("peer pid %d, not %d", c.Cred().PID, n)
	}
	check(c)
	return nil
}

// TestAttestForeignProcNeverDescribesAnother: a server in a PID namespace
// of its own that kept the /proc of another (here the test's) must not
// read its peer's facts under the peer's PID there: that PID names another
// process in that /proc. The peer is given, in the server's namespace, the
// PID this test process has in the /proc the server sees; Attest must
// refuse, never describe the test process.
func TestAttestForeignProcNeverDescribesAnother(t *testing.T) {
	testutil.RequireRoot(t)
	exe, env := testutil.HelperExec(t, "connect")
	me := os.Getpid()
	p := testutil.Start(t, "attest-foreign-proc", testutil.Options{PIDNS: true,
		Args: append([]string{strconv.Itoa(me), exe}, append(os.Environ(), env...)...)})
	line := p.Line(t)
	t.Logf("server in its own PID namespace: %s", line)
	if st, err := proc.ReadStat(me); err == nil && strings.HasPrefix(line, fmt.Sprintf("described %d %d ", me, st.StartTime)) {
		t.Fatalf("Attest described the test process (pid %d here) as the peer: %s", me, line)
	}
	if !strings.HasPrefix(line, "refused ") {
		t.Fatalf("server said %q, want a refusal", line)
	}
}
