package privsep_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

func TestSpawnRunsAsSpecUser(t *testing.T) {
	requireRoot(t, "a worker under another UID, GID and groups")
	s, _ := newSupervisor(t, privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "id", UID: 1234, GID: 2345, Groups: []uint32{3456}})
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("worker: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(out.String()), "uid=1234 gid=2345 groups=2345,3456"; got != want {
		t.Errorf("id in the worker: %q, want %q", got, want)
	}
}

func TestSpawnRefusesRoot(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{})
	for _, spec := range []privsep.Spec{
		{Role: "id"},                    // zero UID and GID
		{Role: "id", UID: 1234},         // GID 0
		{Role: "id", UID: 0, GID: 1234}, // UID 0
		{Role: "id", UID: 1234, GID: 1234, Groups: []uint32{5, 0}}, // group 0
	} {
		if _, err := s.Spawn(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "root") {
			t.Errorf("Spawn(uid %d gid %d) = %v, want a refusal to run as root", spec.UID, spec.GID, err)
		}
	}
}

// TestVerifyCatchesIdentityChange: a worker that is not who the spec says
// when it says hello is killed, and Spawn names what did not match. The
// worker is started as root (AllowRoot) and switches to uid 1235 itself
// before its hello; only the kernel's SCM_CREDENTIALS can tell.
func TestVerifyCatchesIdentityChange(t *testing.T) {
	requireRoot(t, "a worker started as root changes its UID")
	s, log := newSupervisor(t, privsep.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Spawn(ctx, privsep.Spec{
		Role: "sleep", UID: 0, GID: 0, AllowRoot: true,
		Env: append([]string{"PRIVSEP_TEST_SETUID=1235"}, raceEnv...),
	})
	if !errors.Is(err, privsep.ErrVerify) || !strings.Contains(err.Error(), "uid is 1235, want 0") {
		t.Fatalf("Spawn = %v, want ErrVerify naming uid 1235", err)
	}
	if !strings.Contains(log.String(), "worker refused") {
		t.Errorf("no log line for the refused worker:\n%s", log)
	}
	// The refused worker was killed and reaped: no child of ours is left.
	if _, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); !errors.Is(err, syscall.ECHILD) {
		t.Errorf("a child is left after a refused spawn: wait4 = %v", err)
	}
}

func TestOpenThroughParent(t *testing.T) {
	dir := t.TempDir() // 0700: the worker reaches it only through the parent (unless it is the test's user)
	secret := filepath.Join(dir, "secret")
	other := filepath.Join(dir, "other")
	for _, f := range []string{secret, other} {
		if err := os.WriteFile(f, []byte("content of "+filepath.Base(f)), 0600); err != nil {
			t.Fatal(err)
		}
	}
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"open": {Files: []privsep.PathRule{{Path: secret}}},
	}})
	p, out := spawn(t, s, privsep.Spec{Role: "open", UID: wUID, GID: wGID, Args: []string{secret, other, dir + "/../" + filepath.Base(dir) + "/secret"}})
	waitDone(t, p)
	want := []string{
		secret + ": content of secret",
		other + ": denied=true open " + other + ": privsep: denied by policy: " + strconv.Quote(other) + ": no rule of role \"open\" allows it",
	}
	got := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(got) != 3 {
		t.Fatalf("worker printed:\n%s", out)
	}
	if diff := cmp.Diff(want, got[:2]); diff != "" {
		t.Errorf("worker's view (-want +got):\n%s", diff)
	}
	if !strings.Contains(got[2], "denied=true") {
		t.Errorf("an unclean path to the allowed file was not denied: %s", got[2])
	}
	if !strings.Contains(log.String(), `level=WARN msg="privsep: call refused" role=open pid=`) || !strings.Contains(log.String(), "uid="+wUIDs+" op=file.open") {
		t.Errorf("refusal not logged with role, pid, uid and op:\n%s", log)
	}
}

func TestListenPrivilegedPort(t *testing.T) {
	requireRoot(t, "a port below 1024")
	addr := freePrivilegedPort(t)
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"serve-port": {Listen: []privsep.ListenRule{{Network: "tcp", Address: addr, Once: true}}},
	}})
	p, out := spawn(t, s, privsep.Spec{Role: "serve-port", UID: 1234, GID: 1234, Args: []string{addr}})
	waitLine(t, out, "listening")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if want := "uid 1234\n"; !strings.HasSuffix(line, want) {
		t.Errorf("served %q, want a worker with %q", line, want)
	}
	waitDone(t, p)
}

// freePrivilegedPort returns a loopback address with a free port below 1024.
func freePrivilegedPort(t *testing.T) string {
	t.Helper()
	for port := 900; port < 1024; port++ {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port below 1024")
	return ""
}

func TestOnceAndUnknownOps(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"once": {Ops: map[string]privsep.OpRule{"token": {Once: true}}},
	}})
	s.Handle("token", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return []byte("t0k3n for " + r.Peer.Role), nil, nil
	})
	p, out := spawn(t, s, privsep.Spec{Role: "once", UID: wUID, GID: wGID})
	waitDone(t, p)
	want := "token=\"t0k3n for once\" denied=false\ntoken=\"\" denied=true\n"
	if got := out.String(); got != want {
		t.Errorf("worker printed %q, want %q", got, want)
	}
	if !strings.Contains(log.String(), "allowed once and was used") {
		t.Errorf("second use not logged:\n%s", log)
	}
}

func TestConcurrentCalls(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"concurrent": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	p, out := spawn(t, s, privsep.Spec{Role: "concurrent", UID: wUID, GID: wGID, Args: []string{"100"}})
	waitDone(t, p)
	if got := strings.TrimSpace(out.String()); got != "ok" || p.Err() != nil {
		t.Errorf("100 concurrent calls: %q, %v", got, p.Err())
	}
}

func echo(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
	// Out of order on purpose: replies must still reach their callers.
	if len(r.Payload) > 0 && r.Payload[len(r.Payload)-1]%2 == 0 {
		time.Sleep(time.Millisecond)
	}
	return r.Payload, nil, nil
}

// TestWorkerKilledMidCall: the call in flight fails at once with the cause,
// and the restart policy brings the worker back as a new, verified process.
func TestWorkerKilledMidCall(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"block": {Ops: map[string]privsep.OpRule{"block": {}}},
	}})
	causes := make(chan error, 4)
	entered := make(chan struct{}, 4)
	s.Handle("block", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		entered <- struct{}{}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return nil, nil, ctx.Err()
	})
	p, out := spawn(t, s, privsep.Spec{Role: "block", UID: wUID, GID: wGID, Restart: privsep.RestartOnFailure, RestartDelay: 10 * time.Millisecond})
	waitLine(t, out, "calling")
	first := p.PID()
	select { // the call is in flight
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("the call did not reach the handler")
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-causes:
		if !errors.Is(cause, privsep.ErrWorkerGone) || !strings.Contains(cause.Error(), "signal: killed") {
			t.Errorf("handler's context ended with %v, want ErrWorkerGone naming the kill", cause)
		}
	case <-time.After(10 * time.Second):
		// Nothing else ends the call: no timeout, no restart.
		t.Fatal("the call in flight did not fail")
	}
	waitFor(t, "a restarted worker", 10*time.Second, func() bool {
		pid := p.PID()
		return pid != 0 && pid != first && p.Restarts() == 1
	})
	if !gone(first) {
		t.Errorf("killed worker %d still there", first)
	}
}

func TestNamedSocketWorkers(t *testing.T) {
	requireRoot(t, "clients under three other UIDs")
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.AllowUIDs(1234)},
		"other":  {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	path := testutil.SocketDir(t) + "/privsep.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(1234, 1235)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		uid  uint32
		role string
		want string
	}{
		{"an admitted uid claiming its role is served", 1234, "client", "named"},
		{"a uid the socket refuses is turned away", 1236, "client", "dial:"},
		{"a uid the role's Claim refuses is turned away", 1235, "client", "dial:"},
		{"a role without Claim cannot be claimed", 1234, "other", "dial:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testutil.Start(t, "named-client", testutil.Options{
				Args: []string{path, tt.role},
				As:   &testutil.User{UID: tt.uid, GID: tt.uid},
			})
			c.Wait()
			if got := strings.TrimSpace(c.Stdout()); !strings.HasPrefix(got, tt.want) {
				t.Errorf("client uid %d as %q: %q, want %q...", tt.uid, tt.role, got, tt.want)
			}
		})
	}
	for _, want := range []string{"uid=1236", "uid 1235 is not in the allowed list", "cannot be claimed over a named socket"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestParentDeathKillsWorkers runs the parent itself as a helper process,
// kills it with SIGKILL, and checks its workers are gone within a second.
func TestParentDeathKillsWorkers(t *testing.T) {
	parent := testutil.Start(t, "parent", testutil.Options{Env: raceEnv})
	var workers []int
	for range 2 {
		pid, err := strconv.Atoi(parent.Line(t))
		if err != nil {
			t.Fatalf("parent: %v\n%s", err, parent.Stderr())
		}
		workers = append(workers, pid)
	}
	parent.Kill()
	deadline := time.Now().Add(time.Second)
	for _, pid := range workers {
		for !gone(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("worker %d alive 1s after its parent was killed", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestProtocolViolations: a worker that sends a malformed, oversize or
// descriptor-stuffed message is disconnected and killed with a log line,
// nothing leaks, and another worker keeps being served.
func TestProtocolViolations(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"evil":      {Ops: map[string]privsep.OpRule{"echo": {}}},
		"echo-once": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	good, goodOut := spawn(t, s, privsep.Spec{Role: "echo-once", UID: wUID, GID: wGID})
	waitLine(t, goodOut, "still here")
	for _, tt := range []struct{ mode, logs string }{
		{"garbage", "protocol violation"},
		{"oversize", "message too large"},
		{"undeclared-fds", "nfds"},
		{"too-many-fds", "descriptors"},
		{"reply-kind", "worker sent a Reply message"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			before := openFDs(t)
			p, out := spawn(t, s, privsep.Spec{Role: "evil", UID: wUID, GID: wGID, Args: []string{tt.mode}})
			waitDone(t, p)
			var ee *exec.ExitError
			if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Errorf("evil worker ended with %v, want killed\n%s", err, out)
			}
			if !strings.Contains(log.String(), tt.logs) {
				t.Errorf("log lacks %q:\n%s", tt.logs, log)
			}
			if after := openFDs(t); after != before {
				t.Errorf("descriptors: %d before, %d after", before, after)
			}
		})
	}
	// The good worker was not disturbed.
	if pid := good.PID(); pid == 0 || gone(pid) {
		t.Errorf("the other worker is gone")
	}
}

// TestNoLeakOverCalls runs 10,000 calls and checks the parent's descriptors
// and goroutines.
func TestNoLeakOverCalls(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"serial": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	p, out := spawn(t, s, privsep.Spec{Role: "serial", UID: wUID, GID: wGID, Args: []string{"1"}})
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("first worker: %v\n%s", err, out)
	}
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	p, out = spawn(t, s, privsep.Spec{Role: "serial", UID: wUID, GID: wGID, Args: []string{"10000"}})
	waitDone(t, p)
	if strings.TrimSpace(out.String()) != "done" {
		t.Fatalf("worker: %v\n%s", p.Err(), out)
	}
	if after := openFDs(t); after != fds {
		t.Errorf("descriptors: %d before, %d after 10,000 calls", fds, after)
	}
	waitFor(t, fmt.Sprintf("goroutines back to %d (now %d)", goroutines, runtime.NumGoroutine()), 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
}

func TestShutdownStopsWorkers(t *testing.T) {
	s := privsep.New(privsep.Config{})
	var pids []int
	for range 3 {
		p, out := spawn(t, s, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Restart: privsep.RestartAlways})
		waitLine(t, out, "up")
		pids = append(pids, p.PID())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("worker %d survived Shutdown", pid)
		}
	}
	if _, err := s.Spawn(ctx, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID}); !errors.Is(err, privsep.ErrUnavailable) {
		t.Errorf("Spawn after Shutdown: %v, want ErrUnavailable", err)
	}
}

func TestShutdownKillsWorkerThatIgnoresStop(t *testing.T) {
	s := privsep.New(privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "stubborn", UID: wUID, GID: wGID})
	waitLine(t, out, "up")
	pid := p.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the deadline error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Shutdown took %v, with a deadline of 200ms", d)
	}
	if !gone(pid) {
		t.Errorf("stubborn worker %d survived Shutdown", pid)
	}
}

func TestRequestedRestart(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID}) // RestartNever
	waitLine(t, out, "up")
	first := p.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new worker", 5*time.Second, func() bool { pid := p.PID(); return pid != 0 && pid != first })
	if !gone(first) {
		t.Errorf("old worker %d still running", first)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
}

// TestSpawnOptions: namespaces, chroot and working directory, and what a
// handler sees of its caller.
func TestSpawnOptions(t *testing.T) {
	// A chroot holding just the worker binary (this test binary).
	root := t.TempDir()
	os.Chmod(root, 0755)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "worker"), b, 0755); err != nil {
		t.Fatal(err)
	}
	copyLibs(t, exe, root)
	// A parent that is not root keeps its groups, and so do its workers.
	var ownGroups []uint32
	if !asRoot {
		groups, err := os.Getgroups()
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups {
			ownGroups = append(ownGroups, uint32(g))
		}
	}
	ws := "uid=" + wUIDs + " gid=" + strconv.FormatUint(uint64(wGID), 10)
	tests := []struct {
		name       string
		root       string // why the row needs root, if it does
		userNS     bool   // the row needs user namespaces
		spec       privsep.Spec
		wantOut    string   // prefix after pid=N
		wantGroups []uint32 // the handler's Peer.Groups; nil: spec.Groups
	}{
		{"plain", "other UIDs and groups", false, privsep.Spec{UID: 1234, GID: 2345, Groups: []uint32{3456}}, "uid=1234 gid=2345 wd=/", nil},
		{"as the worker user", "", false, privsep.Spec{UID: wUID, GID: wGID}, ws + " wd=/", ownGroups},
		{"user namespace: root inside, 1234 outside", "other UIDs", false, privsep.Spec{UID: 1234, GID: 2345, UserNS: true}, "uid=0 gid=0 wd=/", nil},
		{"user namespace: root inside, the worker user outside", "", true, privsep.Spec{UID: wUID, GID: wGID, UserNS: true}, "uid=0 gid=0 wd=/", ownGroups},
		{"PID namespace", "a PID namespace without a user namespace", false, privsep.Spec{UID: 1234, GID: 2345, PIDNS: true}, "uid=1234 gid=2345 wd=/", nil},
		{"user and PID namespaces", "", true, privsep.Spec{UID: wUID, GID: wGID, UserNS: true, PIDNS: true}, "uid=0 gid=0 wd=/", ownGroups},
		{"chroot and dir", "chroot", false, privsep.Spec{UID: 1234, GID: 2345, Chroot: root, Path: "/bin/worker", Dir: "/bin"}, "uid=1234 gid=2345 wd=/bin", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root != "" && !asRoot {
				t.Skipf("needs root: %s", tt.root)
			}
			if tt.userNS {
				testutil.RequireUserNS(t)
			}
			peers := make(chan privsep.Peer, 1)
			s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
				"whoami": {Ops: map[string]privsep.OpRule{"peer": {}}},
			}})
			s.Handle("peer", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
				peers <- *r.Peer
				return nil, nil, nil
			})
			tt.spec.Role = "whoami"
			p, out := spawn(t, s, tt.spec)
			pid := p.PID()
			waitDone(t, p)
			if p.Err() != nil {
				t.Fatalf("worker: %v\n%s", p.Err(), out)
			}
			_, rest, _ := strings.Cut(strings.TrimSpace(out.String()), " ")
			if rest != tt.wantOut {
				t.Errorf("worker says %q, want %q", out.String(), tt.wantOut)
			}
			if tt.spec.PIDNS && !strings.HasPrefix(out.String(), "pid=1 ") {
				t.Errorf("worker in a PID namespace is not pid 1 there: %q", out.String())
			}
			peer := <-peers
			want := privsep.Peer{Role: "whoami", PID: pid, UID: tt.spec.UID, GID: tt.spec.GID, Groups: tt.spec.Groups}
			if tt.wantGroups != nil {
				want.Groups = tt.wantGroups
			}
			if peer.PidFD == nil {
				t.Error("handler's Peer has no pidfd")
			}
			peer.PidFD = nil
			if diff := cmp.Diff(want, peer, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("handler's Peer (-want +got):\n%s", diff)
			}
		})
	}
}

// copyLibs copies the shared libraries exe needs (as ldd lists them) into
// root, for a chroot: a Go test binary built with cgo is dynamically linked.
func copyLibs(t *testing.T, exe, root string) {
	t.Helper()
	out, err := exec.Command("ldd", exe).Output()
	if err != nil {
		return // static: nothing to copy
	}
	for _, line := range strings.Split(string(out), "\n") {
		for _, f := range strings.Fields(line) {
			if !strings.HasPrefix(f, "/") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dst := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(dst), 0755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0755); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestInheritedDescriptorsDoNotReachWorkers: a descriptor this process holds
// without close-on-exec (as from a shell's redirection) is not passed on.
func TestInheritedDescriptorsDoNotReachWorkers(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("root only"), 0600); err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Open(secret, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	s, _ := newSupervisor(t, privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "fds", UID: wUID, GID: wGID})
	waitDone(t, p)
	if strings.Contains(out.String(), secret) {
		t.Errorf("the worker holds a descriptor for %s:\n%s", secret, out)
	}
	if !strings.Contains(out.String(), " socket:") {
		t.Errorf("the worker's listing lacks its socket:\n%s", out)
	}
}

// TestOpenRefusesFIFO: a FIFO planted in an allowed directory is refused at
// once instead of hanging the parent in open(2).
func TestOpenRefusesFIFO(t *testing.T) {
	dir := filepath.Join(testutil.SocketDir(t), "w")
	if err := os.Mkdir(dir, 0700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(wUID), int(wGID)); err != nil {
		t.Fatal(err)
	}
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"fifo": {Files: []privsep.PathRule{{Path: dir, Beneath: true}}},
	}})
	p, out := spawn(t, s, privsep.Spec{Role: "fifo", UID: wUID, GID: wGID, Args: []string{dir}})
	waitDone(t, p)
	if !strings.HasPrefix(out.String(), "denied=true") || !strings.Contains(out.String(), "not a regular file") {
		t.Errorf("open of a FIFO: %q, want a refusal", out)
	}
}

// TestWorkerThatDoesNotReadIsKilled: replies that cannot be delivered do not
// pin the parent: the worker is killed and Shutdown stays prompt.
func TestWorkerThatDoesNotReadIsKilled(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{
		WriteTimeout: 200 * time.Millisecond,
		Roles:        map[string]privsep.Policy{"flood": {Ops: map[string]privsep.OpRule{"echo": {}}}},
	})
	s.Handle("echo", echo)
	p, _ := spawn(t, s, privsep.Spec{Role: "flood", UID: wUID, GID: wGID})
	waitDone(t, p)
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("flooding worker ended with %v, want killed", err)
	}
	if !strings.Contains(log.String(), "does not read its replies") {
		t.Errorf("no log line for the worker that does not read:\n%s", log)
	}
}

// TestHandlerErrorClosesItsFiles: files a failing handler returns are
// closed, not leaked.
func TestHandlerErrorClosesItsFiles(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"serial": {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		f, err := os.Open("/etc/hostname")
		if err != nil {
			return nil, nil, err
		}
		return nil, []*os.File{f}, errors.New("failed after opening")
	})
	before := openFDs(t)
	p, _ := spawn(t, s, privsep.Spec{Role: "serial", UID: wUID, GID: wGID, Args: []string{"1"}})
	waitDone(t, p)
	if after := openFDs(t); after != before {
		t.Errorf("descriptors: %d before, %d after a failing handler", before, after)
	}
}

// TestNamedSocketCapsSilentClients: connections that never say hello are
// capped per user, with a log line, and do not lock out another user.
func TestNamedSocketCapsSilentClients(t *testing.T) {
	requireRoot(t, "a client of another user while the test's hogs its share")
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.AllowUIDs(1234)},
	}})
	s.Handle("echo", echo)
	path := testutil.SocketDir(t) + "/named.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AnyOf(peercred.SameUser(), peercred.AllowUIDs(1234))); err != nil {
		t.Fatal(err)
	}
	for range 80 {
		c, err := net.Dial("unixpacket", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, "the cap's log line", 5*time.Second, func() bool {
		return strings.Contains(log.String(), "connections waiting to say hello already")
	})
	c := testutil.Start(t, "named-client", testutil.Options{Args: []string{path, "client"}, As: &testutil.User{UID: 1234, GID: 1234}})
	c.Wait()
	if got := strings.TrimSpace(c.Stdout()); got != "named" {
		t.Errorf("another user's client while root hogs its share: %q, want named", got)
	}
}
