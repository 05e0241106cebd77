package privsep_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// The attestation of workers (Peer.Process) and Claims that decide by it.

func init() {
	// named-client-steps PATH ROLE: say "ready", wait for a line on
	// stdin, Dial PATH as ROLE, say "admitted", wait for another line,
	// then call echo and print its answer. The test moves the process
	// between cgroups at each step.
	testutil.Register("named-client-steps", func(args []string) int {
		in := bufio.NewReader(os.Stdin)
		fmt.Println("ready")
		if _, err := in.ReadString('\n'); err != nil {
			fmt.Println("stdin:", err)
			return 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		w, err := privsep.Dial(ctx, args[0], args[1])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		defer w.Close()
		fmt.Println("admitted")
		if _, err := in.ReadString('\n'); err != nil {
			fmt.Println("stdin:", err)
			return 1
		}
		p, _, err := w.Call(ctx, "echo", []byte("named"))
		if err != nil {
			fmt.Println("call:", err)
			return 1
		}
		fmt.Println(string(p))
		return 0
	})
}

// stepClient starts named-client-steps as the worker user, dialing path as
// role, and returns it with the writer that lets it take its next step.
func stepClient(t *testing.T, path, role string) (*testutil.Proc, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	c := testutil.Start(t, "named-client-steps", testutil.Options{Args: []string{path, role}, As: asWorker(), Stdin: r})
	r.Close()
	if line := c.Line(t); line != "ready" {
		t.Fatalf("client said %q", line)
	}
	return c, w
}

// step lets the client take its next step.
func step(t *testing.T, w *os.File) {
	t.Helper()
	if _, err := w.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
}

// unitSetup is a supervisor whose role "client" is claimed by the systemd
// unit app-test-PID.service, on a named socket its UID may reach, with
// that unit's cgroup and another one's; its echo handler records the
// Peer of every call.
type unitSetup struct {
	log           *syncBuffer
	path          string
	unit, outside string // units: the allowed one, another
	inDir, outDir string // their cgroup directories

	mu    sync.Mutex
	peers []*privsep.Peer
}

func newUnitSetup(t *testing.T) *unitSetup {
	t.Helper()
	u := &unitSetup{
		unit:    fmt.Sprintf("app-test-%d.service", os.Getpid()),
		outside: fmt.Sprintf("app-other-%d.service", os.Getpid()),
		path:    testutil.SocketDir(t) + "/privsep.sock",
	}
	u.inDir = testutil.MakeCgroup(t, "/system.slice/"+u.unit)
	u.outDir = testutil.MakeCgroup(t, "/system.slice/"+u.outside)
	var s *privsep.Supervisor
	s, u.log = newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.AllowUnits(u.unit)},
	}})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		u.mu.Lock()
		u.peers = append(u.peers, r.Peer)
		u.mu.Unlock()
		return r.Payload, nil, nil
	})
	if err := s.ListenUnix(context.Background(), u.path, peercred.AllowUIDs(wUID, uint32(os.Geteuid()))); err != nil {
		t.Fatal(err)
	}
	return u
}

// logLine returns the last line of the log with msg about pid.
func logLine(log *syncBuffer, msg string, pid int) string {
	found := ""
	for _, line := range strings.Split(log.String(), "\n") {
		if strings.Contains(line, msg) && strings.Contains(line, " pid="+strconv.Itoa(pid)+" ") {
			found = line
		}
	}
	return found
}

// TestClaimByUnitRefusesPeerOutsideIt: a role claimed by systemd unit
// refuses a named-socket client of the allowed UID outside that unit's
// cgroup (the attack: any process of the UID tries), with a log line that
// names the unit it is in and the one allowed.
func TestClaimByUnitRefusesPeerOutsideIt(t *testing.T) {
	requireRoot(t, "cgroups, and clients under another UID")
	u := newUnitSetup(t)
	c, next := stepClient(t, u.path, "client")
	testutil.MoveToCgroup(t, u.outDir, c.PID())
	step(t, next)
	if err := c.Wait(); err == nil {
		t.Fatalf("client in %s got a session: %q", u.outside, c.Stdout())
	}
	if out := c.Stdout(); !strings.Contains(out, "dial:") {
		t.Errorf("client in %s: %q, want its Dial refused", u.outside, out)
	}
	refusal := logLine(u.log, "named-socket peer refused", c.PID())
	t.Logf("%s", refusal)
	if !strings.Contains(refusal, "unit is "+u.outside) || !strings.Contains(refusal, u.unit) {
		t.Errorf("refusal %q does not name the client's unit %s and the allowed %s", refusal, u.outside, u.unit)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.peers) != 0 {
		t.Errorf("refused client's calls reached the handler: %v", u.peers)
	}
}

// TestNamedPeerProcessIsTheClaimedReading: a named-socket client in the
// allowed unit's cgroup is admitted, and its handlers see, in
// Request.Peer.Process, the reading its Claim admitted it by: still that
// unit after the client moved to another cgroup, which a reading now
// would show.
func TestNamedPeerProcessIsTheClaimedReading(t *testing.T) {
	requireRoot(t, "cgroups, and clients under another UID")
	u := newUnitSetup(t)
	c, next := stepClient(t, u.path, "client")
	testutil.MoveToCgroup(t, u.inDir, c.PID())
	step(t, next)
	if line := c.Line(t); line != "admitted" {
		t.Fatalf("client in %s: %q, want admitted", u.unit, line)
	}
	testutil.MoveToCgroup(t, u.outDir, c.PID())
	step(t, next)
	if line := c.Line(t); line != "named" {
		t.Errorf("client in %s: echo answered %q", u.unit, line)
	}
	if err := c.Wait(); err != nil {
		t.Errorf("client: %v", err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.peers) != 1 {
		t.Fatalf("handler saw %d calls, want 1", len(u.peers))
	}
	got := u.peers[0].Process
	if got == nil {
		t.Fatalf("Peer.Process is nil; log:\n%s", u.log)
	}
	t.Logf("%v", got)
	if got.PID != c.PID() || got.Unit != u.unit || got.Cgroup != "/system.slice/"+u.unit {
		t.Errorf("Peer.Process %v, want pid %d in %s (as admitted)", got, c.PID(), u.unit)
	}
	helper, _ := testutil.HelperExec(t, "named-client-steps")
	if dev, ino := fileID(t, helper); got.Exe.Path != helper || got.Exe.Dev != dev || got.Exe.Ino != ino {
		t.Errorf("exe %q dev %d ino %d, want %q dev %d ino %d", got.Exe.Path, got.Exe.Dev, got.Exe.Ino, helper, dev, ino)
	}
	if line := logLine(u.log, "named-socket worker admitted", c.PID()); !strings.Contains(line, "unit="+u.unit) {
		t.Errorf("admission logged as %q, want the process with unit=%s", line, u.unit)
	}
}

func init() {
	// attest-calls: call attest-peer twice, say "called", and wait.
	privsep.Register("attest-calls", func(ctx context.Context, w *privsep.Worker) error {
		for range 2 {
			if _, _, err := w.Call(ctx, "attest-peer", nil); err != nil {
				return err
			}
		}
		fmt.Println("called")
		<-ctx.Done()
		return nil
	})
}

// TestSpawnedWorkerProcess: a spawned worker is attested once, through
// the pidfd of its spawn (its socket pair would report the parent): its
// handlers see, at every call, the one reading, which names the test
// binary it runs, its cgroup and its start time, as /proc shows them.
func TestSpawnedWorkerProcess(t *testing.T) {
	requireRoot(t, "a worker under another UID")
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"attest-calls": {Ops: map[string]privsep.OpRule{"attest-peer": {}}},
	}})
	var (
		mu    sync.Mutex
		peers []*privsep.Peer
	)
	s.Handle("attest-peer", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		mu.Lock()
		peers = append(peers, r.Peer)
		mu.Unlock()
		return nil, nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "attest-calls", UID: wUID, GID: wGID})
	waitLine(t, out, "called")
	mu.Lock()
	defer mu.Unlock()
	if len(peers) != 2 {
		t.Fatalf("handler saw %d calls, want 2", len(peers))
	}
	got := peers[0].Process
	if got == nil {
		t.Fatalf("Peer.Process is nil; log:\n%s", log)
	}
	t.Logf("%v", got)
	if peers[1].Process != got {
		t.Errorf("second call's Peer.Process %p, want the one reading %p", peers[1].Process, got)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dev, ino := fileID(t, exe)
	if got.PID != p.PID() || got.Exe.Path != exe || got.Exe.Dev != dev || got.Exe.Ino != ino {
		t.Errorf("pid %d exe %q dev %d ino %d, want pid %d running the test binary %q dev %d ino %d",
			got.PID, got.Exe.Path, got.Exe.Dev, got.Exe.Ino, p.PID(), exe, dev, ino)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", p.PID()))
	if err != nil {
		t.Fatal(err)
	}
	if want := "0::" + got.Cgroup + "\n"; !strings.Contains("\n"+string(b), "\n"+want) {
		t.Errorf("cgroup %q; /proc says:\n%s", got.Cgroup, b)
	}
	if got.StartTime == 0 || !got.Namespaces.PID.Ours || !got.Namespaces.Mount.Ours {
		t.Errorf("start time %d, namespaces %+v: want a start time, and our PID and mount namespaces", got.StartTime, got.Namespaces)
	}
	if line := logLine(log, "privsep: worker started", p.PID()); !strings.Contains(line, "process=") {
		t.Errorf("start logged as %q, want the process", line)
	}
}

// fileID returns the device and inode of the file at path.
func fileID(t *testing.T, path string) (dev, ino uint64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev, st.Ino
}
