package privsep_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// decoy: a process that looks, in /proc, as a verified worker of
	// wUID does (no new privileges, not dumpable, no capabilities), and is
	// none. Says "ready", then waits.
	testutil.Register("decoy", func([]string) int {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("ready")
		select {}
	})
	// pidns-parent PID: a privsep parent run as PID 1 of a PID namespace
	// of its own that kept the /proc it had (the test's). It spawns a
	// worker until one gets the PID PID in its namespace, and prints
	// "verified" if one did and passed verification, else "refused ERR"
	// with the last error.
	testutil.Register("pidns-parent", func(args []string) int {
		want, err := strconv.Atoi(args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		s := privsep.New(privsep.Config{})
		var last error
		for range 20 {
			// ns_last_pid: the counter of the writer's PID namespace.
			if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(want-1)), 0); err != nil {
				fmt.Println("error:", err)
				return 1
			}
			p, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Env: raceEnv})
			if err != nil {
				last = err
				continue
			}
			pid := p.PID()
			p.Stop(context.Background())
			if pid == want {
				fmt.Println("verified")
				return 0
			}
		}
		fmt.Println("refused", last)
		return 0
	})
}

// TestParentWithForeignProcRefusesWorkers: a parent that made a PID
// namespace of its own and kept the /proc it had reads, under its
// worker's PID, another process of that /proc. The test puts there a
// decoy of the worker's UID that looks verified; the parent must refuse
// its worker rather than verify the decoy.
func TestParentWithForeignProcRefusesWorkers(t *testing.T) {
	testutil.RequireRoot(t)
	decoy := testutil.Start(t, "decoy", testutil.Options{As: &testutil.User{UID: wUID, GID: wGID, Groups: []uint32{wGID}}})
	if line := decoy.Line(t); line != "ready" {
		t.Fatalf("decoy: %s", line)
	}
	p := testutil.Start(t, "pidns-parent", testutil.Options{PIDNS: true, Env: raceEnv,
		Args: []string{strconv.Itoa(decoy.PID())}})
	line := p.Line(t)
	t.Logf("parent in its own PID namespace: %s", line)
	if !strings.HasPrefix(line, "refused ") || !strings.Contains(line, "/proc names it") {
		t.Fatalf("parent said %q, want its worker refused because /proc names another process", line)
	}
}
