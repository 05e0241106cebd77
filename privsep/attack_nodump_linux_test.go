package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// A process of a worker's UID that watches for new PIDs reaches the worker
// as soon as it can: from clone, through execve, to privsep's init. A root
// parent's worker must be out of its reach from execve on: no ptrace, no
// pidfd_getfd.

// mainPdeathsig is the parent-death signal of this process's main thread
// after privsep's init, in a worker (init runs on the main thread); the
// kernel keeps it per thread and sends it when the thread that forked
// the process ends.
var mainPdeathsig = func() string {
	var sig int32
	err := unix.Prctl(unix.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0, 0, 0)
	return fmt.Sprintf("pdeathsig %d %v", sig, err)
}()

func init() {
	// tracer watches for children of the process args[0] (the parent)
	// and tries PTRACE_SEIZE and pidfd_getfd on each until it succeeds or
	// the child is two seconds old. Per child, one line: "PID denied" at
	// its first refusal, "PID attached (comm)" or "PID getfd (comm)" when
	// it got in (then it lets go at once).
	testutil.Register("nodump-tracer", func(args []string) int {
		parent, _ := strconv.Atoi(args[0])
		runtime.LockOSThread() // a tracer is a thread
		type child struct {
			first  time.Time
			denied bool
			done   bool
		}
		children := map[int]*child{}
		fmt.Println("watching")
		for {
			b, _ := os.ReadFile("/proc/sys/kernel/ns_last_pid")
			last, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			for pid := last - 3; pid <= last+3; pid++ {
				if _, ok := children[pid]; !ok && pid != os.Getpid() && ppid(pid) == parent {
					children[pid] = &child{first: time.Now()}
				}
			}
			for pid, c := range children {
				if c.done {
					continue
				}
				if time.Since(c.first) > 2*time.Second {
					c.done = true
					continue
				}
				switch got := reach(pid, parent); got {
				case "":
					if !c.denied {
						c.denied = true
						fmt.Printf("%d denied\n", pid)
					}
				case "gone":
					c.done = true
				default:
					c.done = true
					fmt.Printf("%d %s\n", pid, got)
				}
			}
		}
	})
	privsep.Register("nodump-status", func(ctx context.Context, w *privsep.Worker) error {
		b, err := os.ReadFile("/proc/self/status")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "Uid", "Gid", "Groups", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs":
				fmt.Println(strings.TrimSpace(k + " " + strings.Join(strings.Fields(v), " ")))
			}
		}
		fmt.Println(mainPdeathsig)
		d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		fmt.Printf("dumpable %d %v\n", d, err)
		return nil
	})
}

// ppid returns the parent PID of pid from /proc/PID/stat, or -1.
func ppid(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return n
}

// reach tries pidfd_getfd and PTRACE_SEIZE on pid, a child of parent. It
// returns "" if both were refused, "gone" if pid is gone or no longer
// parent's child, and else what it got. A tracee is let go at once.
func reach(pid, parent int) string {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return "gone"
	}
	defer unix.Close(pidfd)
	if ppid(pid) != parent { // the PID went to another process
		return "gone"
	}
	comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if fd, err := unix.PidfdGetfd(pidfd, 0, 0); err == nil {
		unix.Close(fd)
		return fmt.Sprintf("getfd (%s)", commNow(pid, comm))
	} else if errors.Is(err, unix.ESRCH) {
		return "gone"
	}
	err = unix.PtraceSeize(pid)
	if errors.Is(err, unix.ESRCH) {
		return "gone"
	}
	if err != nil {
		return ""
	}
	// Attached: stop it and let it go.
	if unix.PtraceInterrupt(pid) == nil {
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, unix.WALL, nil)
		unix.PtraceDetach(pid)
	}
	return fmt.Sprintf("attached (%s)", commNow(pid, comm))
}

// commNow says what pid's comm was before and after: the worker's changes
// at execve.
func commNow(pid int, before []byte) string {
	after, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if b, a := strings.TrimSpace(string(before)), strings.TrimSpace(string(after)); b != a {
		return b + ", then " + a
	}
	return strings.TrimSpace(string(after))
}

func TestSameUIDCannotReachWorkerFromExec(t *testing.T) {
	requireRoot(t, "a worker of a parent that is not root is dumpable until privsep's init (the exec that prevents it changes GIDs), and a process of its UID is of the parent's UID too")
	s, _ := newSupervisor(t, privsep.Config{})
	p, _ := spawn(t, s, privsep.Spec{Role: "sleep", UID: 65534, GID: 65534, Restart: privsep.RestartAlways})
	tracer := testutil.Start(t, "nodump-tracer", testutil.Options{
		As:   &testutil.User{UID: 65534, GID: 65534},
		Args: []string{strconv.Itoa(os.Getpid())},
	})
	if line := tracer.Line(t); line != "watching" {
		t.Fatalf("tracer: %q", line)
	}
	var workers []int
	for round := range 30 {
		// Killed at once: a race-enabled worker would sleep at exit.
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		err := p.Restart(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: Restart: %v", round, err)
		}
		ctx, cancel = context.WithTimeout(context.Background(), 20*time.Second)
		err = p.Ready(ctx)
		cancel()
		if err != nil {
			// Refused at its hello, say as traced: the tracer says why.
			t.Logf("round %d: %v", round, err)
			continue
		}
		workers = append(workers, p.PID())
	}
	time.Sleep(time.Second) // the tracer's last lines
	lines := map[int]string{}
	for _, line := range strings.Split(strings.TrimSpace(tracer.Stdout()), "\n") {
		pid, what, _ := strings.Cut(line, " ")
		if n, err := strconv.Atoi(pid); err == nil && what != "denied" {
			lines[n] = what
		} else if err == nil {
			if _, ok := lines[n]; !ok {
				lines[n] = what
			}
		}
	}
	var reached []string
	seen := 0
	for pid, what := range lines {
		if what != "denied" {
			reached = append(reached, fmt.Sprintf("%d %s", pid, what))
		}
		seen++
	}
	if len(reached) > 0 {
		t.Errorf("a process of the workers' UID reached %d of %d children of the parent (%d workers served):\n%s",
			len(reached), seen, len(workers), strings.Join(reached, "\n"))
	}
	if seen == 0 {
		t.Skip("the tracer saw no child of the parent in 30 starts")
	}
	t.Logf("the tracer tried %d children of the parent, %d workers served", seen, len(workers))
}

func TestWorkerIDsAndCapabilities(t *testing.T) {
	requireRoot(t, "workers under other UIDs, GIDs and groups")
	s, _ := newSupervisor(t, privsep.Config{})
	before := threadCreds(t)
	for _, tc := range []struct {
		name string
		spec privsep.Spec
		want []string
	}{
		{"without groups", privsep.Spec{UID: 65534, GID: 65534}, []string{
			"Uid 65534 65534 65534 65534", "Gid 65534 65534 65534 65534", "Groups 65534", // its GID, for its exec
		}},
		{"with groups", privsep.Spec{UID: 1234, GID: 2345, Groups: []uint32{3456, 4294967294}}, []string{
			"Uid 1234 1234 1234 1234", "Gid 2345 2345 2345 2345", "Groups 2345 3456 4294967294",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := tc.spec
			spec.Role = "nodump-status"
			p, out := spawn(t, s, spec)
			waitDone(t, p)
			want := append(tc.want,
				"NoNewPrivs 1",
				"CapPrm 0000000000000000",
				"CapEff 0000000000000000",
				"CapAmb 0000000000000000",
				fmt.Sprintf("pdeathsig %d <nil>", syscall.SIGKILL),
				"dumpable 0 <nil>",
			)
			got := strings.Split(strings.TrimSpace(out.String()), "\n")
			if diff := cmp.Diff(sorted(want), sorted(got)); diff != "" {
				t.Errorf("worker's /proc/self/status and prctl (-want +got):\n%s", diff)
			}
		})
	}
	// Spawns that fail, before the child sets its IDs and after.
	for _, spec := range []privsep.Spec{
		{Role: "nodump-status", UID: 65534, GID: 65534, Path: "/nonexistent/worker"},
		{Role: "nodump-status", UID: 65534, GID: 65534, Dir: "/nonexistent"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p, err := s.Spawn(ctx, spec)
		cancel()
		if err == nil {
			t.Errorf("Spawn(Path %q, Dir %q) started pid %d", spec.Path, spec.Dir, p.PID())
		}
	}
	// The spawner thread took other IDs for the exec, and gave them back.
	if diff := cmp.Diff(before, threadCreds(t)); diff != "" {
		t.Errorf("credentials of this process's threads after spawning (-before +after):\n%s", diff)
	}
}

// threadCreds returns the distinct credentials of this process's threads.
func threadCreds(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/status")
		if err != nil {
			continue // gone
		}
		var creds []string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			switch k {
			case "Uid", "Gid", "Groups", "CapPrm", "CapEff", "CapAmb", "CapBnd":
				creds = append(creds, k+" "+strings.Join(strings.Fields(v), " "))
			}
		}
		set[strings.Join(creds, "; ")] = true
	}
	var out []string
	for c := range set {
		out = append(out, c)
	}
	return sorted(out)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
