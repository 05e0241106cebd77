package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

func init() {
	privsep.Register("id", func(ctx context.Context, w *privsep.Worker) error {
		out, err := exec.Command("/usr/bin/id").CombinedOutput()
		fmt.Print(string(out))
		return err
	})
	privsep.Register("fds", func(ctx context.Context, w *privsep.Worker) error {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			fmt.Println(e.Name(), target)
		}
		return nil
	})
	privsep.Register("whoami", func(ctx context.Context, w *privsep.Worker) error {
		wd, _ := os.Getwd()
		fmt.Printf("pid=%d uid=%d gid=%d wd=%s\n", os.Getpid(), os.Getuid(), os.Getgid(), wd)
		_, _, err := w.Call(ctx, "peer", nil)
		return err
	})
}

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

// TestSpawnOptions: namespaces, chroot and working directory, and what a
// handler sees of its caller.
func TestSpawnOptions(t *testing.T) {
	t.Parallel()
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
			t.Parallel() // each row has a supervisor of its own
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
			// The worker exits once its call returns, and then PID says
			// 0: the call waits until the test has read it.
			pidRead := make(chan struct{})
			var once sync.Once
			readPID := func() { once.Do(func() { close(pidRead) }) }
			t.Cleanup(readPID) // before the supervisor's shutdown
			s.Handle("peer", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
				peers <- *r.Peer
				<-pidRead
				return nil, nil, nil
			})
			tt.spec.Role = "whoami"
			p, out := spawn(t, s, tt.spec)
			pid := p.PID()
			readPID()
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
			if asRoot && (peer.Process == nil || peer.Process.PID != pid) {
				t.Errorf("handler's Peer.Process is %v, want the attestation of pid %d", peer.Process, pid)
			}
			peer.PidFD, peer.Process = nil, nil
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
