package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/peercred/peercred/internal/seccomp"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// Workers that do not confine themselves as their spec says, for the
	// parent to catch: the spec reaches them, and they drop it.
	switch os.Getenv("PRIVSEP_TEST_CONFINE_TAMPER") {
	case "skip":
		os.Unsetenv(privsep.EnvConfine)
	case "one-thread":
		// A real filter, on the main thread only (no TSYNC); main runs
		// on this thread, and so does the hello.
		runtime.LockOSThread()
		if err := oneThreadFilter(); err != nil {
			fmt.Fprintln(os.Stderr, "one-thread filter:", err)
			os.Exit(3)
		}
		os.Unsetenv(privsep.EnvConfine)
	}

	privsep.Register("probe", func(ctx context.Context, w *privsep.Worker) error {
		for _, arg := range w.Args() {
			name, param, _ := strings.Cut(arg, ":")
			fmt.Printf("%s: %s\n", arg, probe(w, name, param))
		}
		return nil
	})
	privsep.Register("load", load)
}

// oneThreadFilter installs an allow-all seccomp filter on the calling
// thread only.
func oneThreadFilter() error {
	prog, err := seccomp.New(seccomp.Allow).Assemble()
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, in := range prog {
		filter[i] = unix.SockFilter{Code: in.Code, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	return unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0)
}

// probe tries one thing a confined worker should (not) be able to do and
// says how it went: "ok", an errno name, or "denied" for a broker refusal.
func probe(w *privsep.Worker, name, param string) string {
	sock := func(domain, typ, proto int) string {
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if err == nil {
			unix.Close(fd)
		}
		return errText(err)
	}
	switch name {
	case "open":
		f, err := os.Open(param)
		if err == nil {
			f.Close()
		}
		return errText(err)
	case "broker-open":
		b, err := w.ReadFile(param)
		if err != nil {
			return errText(err)
		}
		return "ok " + string(b)
	case "socket":
		switch param {
		case "tcp":
			return sock(unix.AF_INET, unix.SOCK_STREAM, 0)
		case "tcp6":
			return sock(unix.AF_INET6, unix.SOCK_STREAM, unix.IPPROTO_TCP)
		case "udp":
			return sock(unix.AF_INET, unix.SOCK_DGRAM, 0)
		case "mptcp":
			return sock(unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_MPTCP)
		case "netlink":
			return sock(unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_ROUTE)
		case "packet":
			return sock(unix.AF_PACKET, unix.SOCK_RAW, 0)
		case "unix":
			return sock(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		}
	case "bind":
		port, _ := strconv.Atoi(param)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return errText(err)
		}
		defer unix.Close(fd)
		return errText(unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}))
	case "listen":
		l, err := net.Listen("tcp", param) // Go tries MPTCP first, then TCP
		if err == nil {
			l.Close()
		}
		return errText(err)
	case "connect-abstract":
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return errText(err)
		}
		defer unix.Close(fd)
		return errText(unix.Connect(fd, &unix.SockaddrUnix{Name: "@" + param}))
	case "ptrace":
		pid, _ := strconv.Atoi(param)
		err := unix.PtraceAttach(pid)
		if err == nil {
			unix.PtraceDetach(pid)
		}
		return errText(err)
	case "kill":
		pid, _ := strconv.Atoi(param)
		return errText(unix.Kill(pid, 0))
	case "setuid0":
		_, _, e := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)
		return errText(errnoErr(e))
	case "prctl":
		var opt, arg int
		switch param {
		case "no_new_privs=0":
			opt = unix.PR_SET_NO_NEW_PRIVS
		case "pdeathsig=0":
			opt = unix.PR_SET_PDEATHSIG
		case "dumpable=1":
			opt, arg = unix.PR_SET_DUMPABLE, 1
		case "seccomp=strict":
			opt, arg = unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_STRICT
		}
		return errText(unix.Prctl(opt, uintptr(arg), 0, 0, 0))
	case "unshare":
		return errText(unix.Unshare(unix.CLONE_NEWUSER))
	case "io_uring":
		var params [120]byte
		fd, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params)), 0)
		if e == 0 {
			unix.Close(int(fd))
		}
		return errText(errnoErr(e))
	case "exec":
		return errText(exec.Command(param).Run())
	case "x32":
		// getpid through the x32 ABI (bit 30 of the number): the filter
		// kills the process, whatever OnDenied says.
		_, _, e := unix.RawSyscall(0x40000000|unix.SYS_GETPID, 0, 0, 0)
		return errText(errnoErr(e))
	case "landlock-again":
		// A second ruleset that allows reading everything: Landlock
		// domains only ever stack, so param stays out of reach.
		runtime.LockOSThread() // the new domain is this thread's
		attr := ll.RulesetAttr{HandledAccessFS: ll.AccessFSReadFile}
		fd, err := ll.LandlockCreateRuleset(&attr, 0)
		if err != nil {
			return "create " + errText(err)
		}
		defer unix.Close(fd)
		root, err := unix.Open("/", unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return "open / " + errText(err)
		}
		defer unix.Close(root)
		if err := ll.LandlockAddPathBeneathRule(fd, &ll.PathBeneathAttr{ParentFd: root, AllowedAccess: ll.AccessFSReadFile}, 0); err != nil {
			return "add rule " + errText(err)
		}
		if err := ll.LandlockRestrictSelf(fd, 0); err != nil {
			return "restrict " + errText(err)
		}
		f, err := os.Open(param)
		if err == nil {
			f.Close()
		}
		return "restricted, open " + errText(err)
	}
	return "unknown probe " + name
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// errText names err for a probe's output.
func errText(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, privsep.ErrDenied) && errors.Is(err, fs.ErrPermission):
		return "denied"
	case errors.As(err, &errno):
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

// load runs the Go runtime hard for the duration in its first argument:
// 1,000 goroutines on timers and channels, allocation and GC, and calls
// to the parent from 20 goroutines all along. The load lasts that long on
// any machine: a busy one makes fewer calls in it, not a longer test.
func load(ctx context.Context, w *privsep.Worker) error {
	d, err := time.ParseDuration(w.Args()[0])
	if err != nil {
		return err
	}
	// Goroutines locked to their threads make the runtime start new
	// threads (clone, or with cgo pthread_create: clone3, then clone):
	// each holds a thread of its own, so locking 4 more goroutines than
	// the worker has threads makes at least 4 threads after its
	// confinement, however busy the machine. The parent, which may read
	// /proc, says how many there are.
	tids, _, err := w.Call(ctx, "threads", nil)
	if err != nil {
		return err
	}
	nlocked := len(strings.Fields(string(tids))) + 4

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// "loaded" is printed once all of them hold their threads, naming
	// them, so that the parent finds them whatever the machine's speed;
	// then comes the load.
	var locked sync.WaitGroup
	var lockedMu sync.Mutex
	var lockedTIDs []string
	for range nlocked {
		wg.Add(1)
		locked.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			lockedMu.Lock()
			lockedTIDs = append(lockedTIDs, strconv.Itoa(unix.Gettid()))
			lockedMu.Unlock()
			locked.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	locked.Wait()
	fmt.Printf("loaded: locked threads %s\n", strings.Join(lockedTIDs, " "))
	ch := make(chan int, 128)
	// Some 6,000 wake-ups a second in all: enough to keep the scheduler,
	// the timers and the allocator busy, few enough that a race-enabled
	// worker on a third of a CPU keeps up (10,000 goroutines making 35
	// times as many did not: calls queued behind them for minutes).
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(time.Duration(100+i%400) * time.Millisecond)
			defer t.Stop()
			var keep [][]byte
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					keep = append(keep, make([]byte, 64+i%4096))
					if len(keep) > 8 {
						keep = keep[:0]
					}
					select {
					case ch <- i:
					default:
					}
				case <-time.After(time.Duration(200+i%400) * time.Millisecond):
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ch:
			case <-stop:
				return
			}
		}
	}()
	// 20 goroutines call the parent while the load lasts, at least 5
	// times each: the load's length is fixed, and how many calls fit in
	// it is the machine's business.
	loaded := make(chan struct{})
	errc := make(chan error, 20)
	var ncalls atomic.Int64
	for g := range 20 {
		go func() {
			for i := 0; ; i++ {
				if i >= 5 {
					select {
					case <-loaded:
						errc <- nil
						return
					default:
					}
				}
				want := strconv.Itoa(g*1000000 + i)
				got, _, err := w.Call(ctx, "echo", []byte(want))
				if err == nil && string(got) != want {
					err = fmt.Errorf("echo %q: got %q", want, got)
				}
				if err != nil {
					errc <- err
					return
				}
				ncalls.Add(1)
				time.Sleep(time.Millisecond)
			}
		}()
	}
	start := time.Now()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	close(loaded)
	for range 20 {
		if err := <-errc; err != nil {
			return err
		}
	}
	calls := time.Since(start)
	wg.Wait()
	fmt.Printf("done: %d calls in %v, all in %v\n", ncalls.Load(), calls, time.Since(start))
	return nil
}

// confinedSpec is a probe worker's spec with c.
func confinedSpec(role string, c *confine.Config, args ...string) privsep.Spec {
	return privsep.Spec{Role: role, UID: wUID, GID: wGID, Confine: c, Args: args}
}

// probeLines runs the probe worker and returns its lines by probe.
func probeLines(t *testing.T, s *privsep.Supervisor, c *confine.Config, probes ...string) map[string]string {
	t.Helper()
	p, out := spawn(t, s, confinedSpec("probe", c, probes...))
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("probe worker: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		got[k] = v
	}
	return got
}

func checkProbes(t *testing.T, got map[string]string, want map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
}

// requireLandlock skips unless the kernel has Landlock ABI 6.
func requireLandlock(t *testing.T) {
	t.Helper()
	if v, err := ll.LandlockGetABIVersion(); err != nil || v < 6 {
		t.Skipf("kernel Landlock ABI %d (%v), these tests need 6", v, err)
	}
}

// publicFile is a world-readable file in a world-searchable directory.
func publicFile(t *testing.T, content string) string {
	t.Helper()
	dir := testutil.SocketDir(t) // 0755 up to /
	f := filepath.Join(dir, "public")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConfinedFiles(t *testing.T) {
	requireLandlock(t)
	public := publicFile(t, "public")
	secretDir := t.TempDir() // 0700: Landlock stops the worker even when it is the test's user
	secret := filepath.Join(secretDir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(secretDir, "other")
	if err := os.WriteFile(other, []byte("other"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"probe": {Files: []privsep.PathRule{{Path: secret}}},
	}})
	got := probeLines(t, s, &confine.Config{Promises: []confine.Promise{confine.PromiseRpath}},
		"open:"+public, "open:/etc/passwd", "broker-open:"+secret, "broker-open:"+other)
	checkProbes(t, got, map[string]string{
		"open:" + public:        "EACCES", // Landlock: world-readable, but no rule
		"open:/etc/passwd":      "EACCES",
		"broker-open:" + secret: "ok s3cret",
		"broker-open:" + other:  "denied",
	})
	// Without rpath the filter refuses open itself.
	got = probeLines(t, s, &confine.Config{}, "open:"+public)
	checkProbes(t, got, map[string]string{"open:" + public: "EPERM"})
	for _, want := range []string{"call refused", "role=probe", "uid=" + wUIDs, other, "no rule of role"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("refusal log lacks %q:\n%s", want, log)
		}
	}
}

func TestConfinedNetwork(t *testing.T) {
	requireLandlock(t)
	port := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	allowed, other := port(), port()
	abstract := fmt.Sprintf("peercred-test-%d", os.Getpid())
	l, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, _ := newSupervisor(t, privsep.Config{})

	t.Run("no network promise: no socket but socketpair", func(t *testing.T) {
		got := probeLines(t, s, &confine.Config{}, "socket:tcp", "socket:tcp6", "socket:udp", "socket:mptcp",
			"socket:netlink", "socket:packet", "socket:unix")
		for k, v := range got {
			if v != "EPERM" {
				t.Errorf("%s: %q, want EPERM", k, v)
			}
		}
	})
	t.Run("inet: TCP on the allowed port only, never MPTCP, UDP or netlink", func(t *testing.T) {
		got := probeLines(t, s, &confine.Config{
			Promises: []confine.Promise{confine.PromiseInet},
			BindTCP:  []uint16{uint16(allowed)},
		}, "socket:tcp", "socket:tcp6", "socket:mptcp", "socket:udp", "socket:netlink",
			fmt.Sprintf("bind:%d", allowed), fmt.Sprintf("bind:%d", other),
			fmt.Sprintf("listen:127.0.0.1:%d", allowed))
		checkProbes(t, got, map[string]string{
			"socket:tcp":                    "ok",
			"socket:tcp6":                   "ok",
			"socket:mptcp":                  "EPERM",
			"socket:udp":                    "EPERM",
			"socket:netlink":                "EPERM",
			fmt.Sprintf("bind:%d", allowed): "ok",
			fmt.Sprintf("bind:%d", other):   "EACCES", // Landlock
			// Bound, but never listening: the filter refuses listen
			// with inet (see TestConfinedTCPPortsNoWayAround); a
			// worker gets its listeners from its parent.
			fmt.Sprintf("listen:127.0.0.1:%d", allowed): "EPERM",
		})
	})
	t.Run("a listener from the parent serves, in a new network namespace", func(t *testing.T) {
		// As root: a privileged port, and a worker as another user.
		// Otherwise the worker needs a user namespace of its own (where
		// it is uid 0) for a network namespace.
		addr, spec, wantUID := "", confinedSpec("serve-port", &confine.Config{NewNet: true, OnDenied: confine.DenyKill}), wUIDs
		if asRoot {
			addr = freePrivilegedPort(t)
		} else {
			testutil.RequireUserNS(t)
			addr = fmt.Sprintf("127.0.0.1:%d", port())
			spec.UserNS, wantUID = true, "0"
		}
		spec.Args = []string{addr}
		s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
			"serve-port": {Listen: []privsep.ListenRule{{Network: "tcp", Address: addr, Once: true}}},
		}})
		p, out := spawn(t, s, spec)
		waitLine(t, out, "listening")
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		line, err := io.ReadAll(c)
		if err != nil || !strings.HasSuffix(string(line), "uid "+wantUID+"\n") {
			t.Errorf("served %q, %v", line, err)
		}
		waitDone(t, p)
		if p.Err() != nil {
			t.Errorf("worker: %v", p.Err())
		}
	})
	t.Run("unix: no abstract socket outside the domain", func(t *testing.T) {
		got := probeLines(t, s, &confine.Config{Promises: []confine.Promise{confine.PromiseUnix}},
			"socket:unix", "connect-abstract:"+abstract)
		checkProbes(t, got, map[string]string{
			"socket:unix":                  "ok",
			"connect-abstract:" + abstract: "EPERM", // Landlock scope
		})
	})
}

// TestConfinedSiblings: a confined worker cannot trace or signal another
// worker of the same UID, whether the filter or Landlock stops it.
func TestConfinedSiblings(t *testing.T) {
	requireLandlock(t)
	s, _ := newSupervisor(t, privsep.Config{})
	sib, out := spawn(t, s, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID})
	waitLine(t, out, "up")
	pid := strconv.Itoa(sib.PID())
	for _, tt := range []struct {
		name string
		c    *confine.Config
	}{
		{"the filter refuses", &confine.Config{}},
		{"Landlock refuses", &confine.Config{
			Promises:      []confine.Promise{confine.PromiseProc},
			AllowSyscalls: []string{"ptrace"},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := probeLines(t, s, tt.c, "ptrace:"+pid, "kill:"+pid)
			checkProbes(t, got, map[string]string{"ptrace:" + pid: "EPERM", "kill:" + pid: "EPERM"})
		})
	}
	if gone(sib.PID()) {
		t.Error("the sibling is gone")
	}
}

// TestConfinedCannotUndo: no way back out.
func TestConfinedCannotUndo(t *testing.T) {
	requireLandlock(t)
	public := publicFile(t, "public")
	s, _ := newSupervisor(t, privsep.Config{})
	probes := []string{"landlock-again:" + public, "prctl:no_new_privs=0", "prctl:pdeathsig=0",
		"prctl:dumpable=1", "prctl:seccomp=strict", "setuid0", "unshare", "io_uring", "exec:/bin/true"}
	got := probeLines(t, s, &confine.Config{Promises: []confine.Promise{confine.PromiseRpath}}, probes...)
	want := map[string]string{
		"landlock-again:" + public: "create EPERM",
		"prctl:no_new_privs=0":     "EPERM",
		"prctl:pdeathsig=0":        "EPERM",
		"prctl:dumpable=1":         "EPERM",
		"prctl:seccomp=strict":     "EPERM",
		"setuid0":                  "EPERM",
		"unshare":                  "EPERM",
		"io_uring":                 "EPERM",
	}
	checkProbes(t, got, want)
	if g := got["exec:/bin/true"]; g != "EPERM" && g != "EACCES" {
		t.Errorf("exec:/bin/true: %q, want EPERM or EACCES", g)
	}
	// With the Landlock calls allowed, a second ruleset stacks on the
	// first: it cannot grant what the first refuses.
	got = probeLines(t, s, &confine.Config{
		Promises:      []confine.Promise{confine.PromiseRpath},
		AllowSyscalls: []string{"landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self"},
	}, "landlock-again:"+public)
	checkProbes(t, got, map[string]string{"landlock-again:" + public: "restricted, open EACCES"})
}

// TestConfinedKills: DenyKill kills the worker for a refused call, and a
// call of another ABI (x32) kills it whatever OnDenied says.
func TestConfinedKills(t *testing.T) {
	requireLandlock(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("x32 is amd64's")
	}
	s, _ := newSupervisor(t, privsep.Config{})
	for _, tt := range []struct {
		probe string
		c     *confine.Config
	}{
		{"unshare", &confine.Config{OnDenied: confine.DenyKill}},
		{"x32", &confine.Config{}},
	} {
		t.Run(tt.probe, func(t *testing.T) {
			p, out := spawn(t, s, confinedSpec("probe", tt.c, tt.probe))
			waitDone(t, p)
			var ee *exec.ExitError
			if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGSYS {
				t.Errorf("worker ended with %v, want SIGSYS\n%s", p.Err(), out)
			}
		})
	}
}

// threadStatus reads a field of every thread of pid.
func threadStatus(t *testing.T, pid int, field string) map[string]string {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, task.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				got[task.Name()] = strings.TrimSpace(v)
			}
		}
	}
	return got
}

// TestConfinedRuntimeUnderLoad: the filter lets the Go runtime (and the
// race detector's, under -race) do all it does under load; a single call it
// misses would kill the worker (OnDenied: DenyKill). With
// PRIVSEP_TEST_SECCOMP_LOG=1 the filter logs instead (DenyLog): dmesg then
// lists the calls it would refuse (audit type=1326, syscall=N).
func TestConfinedRuntimeUnderLoad(t *testing.T) {
	requireLandlock(t)
	if testing.Short() {
		t.Skip("5 s of load")
	}
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"load": {Ops: map[string]privsep.OpRule{"echo": {}, "threads": {Once: true}}},
	}})
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return r.Payload, nil, nil
	})
	// The worker's threads before it makes more: it may not read /proc.
	before := make(chan map[string]bool, 1)
	s.Handle("threads", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", r.Peer.PID))
		if err != nil {
			return nil, nil, err
		}
		tids := map[string]bool{}
		var names []string
		for _, e := range ents {
			tids[e.Name()] = true
			names = append(names, e.Name())
		}
		before <- tids
		return []byte(strings.Join(names, " ")), nil, nil
	})
	c := &confine.Config{OnDenied: confine.DenyKill}
	if os.Getenv("PRIVSEP_TEST_SECCOMP_LOG") != "" {
		c.OnDenied = confine.DenyLog
	}
	p, out := spawn(t, s, confinedSpec("load", c, "5s"))
	// Wait for the worker's threads, however long a busy machine takes.
	waitFor(t, fmt.Sprintf("output %q (have %q)", "loaded", out.String()), 2*time.Minute, func() bool {
		return strings.Contains(out.String(), "\n")
	})
	line, _, _ := strings.Cut(out.String(), "\n")
	lockedList, ok := strings.CutPrefix(line, "loaded: locked threads ")
	if !ok {
		t.Fatalf("worker says %q, want the threads it locked", line)
	}
	var old map[string]bool
	select {
	case old = <-before:
	default:
		t.Fatal("the worker did not ask for its threads")
	}
	// Each locked goroutine holds its own thread: all distinct, and at
	// least 4 of them made after the confinement.
	locked := strings.Fields(lockedList)
	seen, made := map[string]bool{}, 0
	for _, tid := range locked {
		if seen[tid] {
			t.Errorf("thread %s locked twice: %q", tid, lockedList)
		}
		seen[tid] = true
		if !old[tid] {
			made++
		}
	}
	if want := len(old) + 4; len(locked) != want || made < 4 {
		t.Errorf("the worker locked %d threads, %d of them new, want %d, of them at least 4 new (had %d)", len(locked), made, want, len(old))
	}
	pid := p.PID()
	want := map[string]string{"NoNewPrivs": "1", "Seccomp": "2"}
	// The threads made after the confinement are confined, and so is
	// every other.
	for _, tid := range locked {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, tid))
		if err != nil {
			t.Errorf("locked thread %s: %v", tid, err)
			continue
		}
		for field, v := range want {
			if !strings.Contains(string(b), "\n"+field+":\t"+v+"\n") {
				t.Errorf("locked thread %s: %s is not %s", tid, field, v)
			}
		}
	}
	for field, v := range want {
		for tid, got := range threadStatus(t, pid, field) {
			if got != v {
				t.Errorf("thread %s: %s is %q, want %s", tid, field, got, v)
			}
		}
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Minute):
		t.Fatal("the loaded worker did not finish")
	}
	t.Logf("%s", out)
	if err := p.Err(); err != nil || !strings.Contains(out.String(), "done") {
		t.Fatalf("loaded worker: %v (SIGSYS is a system call the filter missed)\n%s", err, out)
	}
}

// TestConfinementVerified: what the parent records, and a worker that skips
// its confinement, or confines one thread only, is refused.
func TestConfinementVerified(t *testing.T) {
	requireLandlock(t)
	s, log := newSupervisor(t, privsep.Config{})
	c := &confine.Config{NoFile: 64, FileSize: 1 << 20, NewNet: true, NewIPC: true, NewMount: true}
	spec := confinedSpec("sleep", c)
	if !asRoot {
		// New namespaces without root: in a user namespace of its own.
		testutil.RequireUserNS(t)
		spec.UserNS = true
	}
	p, out := spawn(t, s, spec)
	waitLine(t, out, "up")
	conf := p.Confinement()
	if conf == nil {
		t.Fatal("no Confinement")
	}
	v, r := conf, conf.SelfReported
	if !v.NoNewPrivs || !v.Seccomp || v.SeccompFilters < 1 || v.Threads < 1 || v.NoFile != 64 ||
		v.FileSize != 1<<20 || v.Core != 0 || v.AddressSpace != confine.Unlimited ||
		strings.Join(v.Namespaces, ",") != "ipc,mnt,net" {
		t.Errorf("verified: %+v", v)
	}
	if r.LandlockABI != 6 || r.LandlockKernelABI < 6 || !r.Seccomp || r.SeccompInsns == 0 || r.OnDenied != "eperm" || len(r.Skipped) != 0 {
		t.Errorf("self-reported: %+v", r)
	}
	if !strings.Contains(log.String(), "worker confined") {
		t.Errorf("confinement not logged:\n%s", log)
	}
	for _, tt := range []struct{ tamper, want string }{
		{"skip", "Seccomp is \"0\", want 2"},
		{"one-thread", "Seccomp is \"0\", want 2"},
	} {
		t.Run(tt.tamper, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := s.Spawn(ctx, privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Stderr: io.Discard, Confine: &confine.Config{},
				Env: append([]string{"PRIVSEP_TEST_CONFINE_TAMPER=" + tt.tamper}, raceEnv...)})
			if !errors.Is(err, privsep.ErrVerify) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Spawn = %v, want ErrVerify with %q", err, tt.want)
			}
		})
	}
}

// TestConfineStrictAndBestEffort: strict fails on a Landlock ABI above the
// kernel's, naming it; best effort applies the kernel's and says what it
// skipped.
func TestConfineStrictAndBestEffort(t *testing.T) {
	have, err := ll.LandlockGetABIVersion()
	if err != nil || have < 1 || have >= 11 {
		t.Skipf("kernel Landlock ABI %d (%v)", have, err)
	}
	s, _ := newSupervisor(t, privsep.Config{})
	_, err = s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Stderr: io.Discard,
		Confine: &confine.Config{LandlockABI: have + 1}})
	want := fmt.Sprintf("Landlock ABI %d needed", have+1)
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), want) {
		t.Errorf("strict Spawn = %v, want ErrUnsupported with %q", err, want)
	}
	_, err = s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Stderr: io.Discard,
		Confine: &confine.Config{Landlock: []confine.LandlockRule{{Path: "/no/such/path", Access: confine.LandlockRead}}}})
	if !errors.Is(err, privsep.ErrVerify) || !strings.Contains(err.Error(), "/no/such/path") {
		t.Errorf("strict Spawn with a missing path = %v, want ErrVerify naming it", err)
	}

	p, out := spawn(t, s, confinedSpec("sleep", &confine.Config{BestEffort: true, LandlockABI: have + 1,
		Landlock: []confine.LandlockRule{{Path: "/no/such/path", Access: confine.LandlockRead}}}))
	waitLine(t, out, "up")
	r := p.Confinement().SelfReported
	if r.LandlockABI != have || len(r.Skipped) != 2 || !strings.Contains(r.Skipped[0], fmt.Sprintf("Landlock ABI %d", have+1)) ||
		!strings.Contains(r.Skipped[1], "/no/such/path") {
		t.Errorf("best effort reports %+v", r)
	}
}

func TestConfineSpecErrors(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{})
	for _, tt := range []struct {
		c    confine.Config
		want string
	}{
		{confine.Config{LandlockABI: 12}, "knows versions 1 to 11"},
		{confine.Config{Promises: []confine.Promise{"dns"}}, `unknown promise "dns"`},
		{confine.Config{AllowSyscalls: []string{"no_such_call"}}, `unknown system call "no_such_call"`},
		{confine.Config{Landlock: []confine.LandlockRule{{Path: "relative", Access: confine.LandlockRead}}}, "not absolute"},
	} {
		_, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: 1234, GID: 1234, Stderr: io.Discard, Confine: &tt.c})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Spawn(%+v) = %v, want %q", tt.c, err, tt.want)
		}
	}
}

// BenchmarkSpawnConfinement measures Spawn to a verified, serving worker,
// without and with confinement (Landlock ABI 6, the stdio filter, limits, verification
// of every thread in /proc; no namespaces, whose creation and teardown cost
// the kernel more than all the rest).
func BenchmarkSpawnConfinement(b *testing.B) {
	testutil.RequireRoot(b)
	s := privsep.New(privsep.Config{Logger: slog.New(slog.DiscardHandler)})
	defer s.Shutdown(context.Background())
	for _, bm := range []struct {
		name string
		c    *confine.Config
	}{
		{"plain", nil},
		{"confined", &confine.Config{NoFile: 256}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				p, err := s.Spawn(ctx, privsep.Spec{Role: "sleep", UID: 1234, GID: 1234, Confine: bm.c,
					Stdout: io.Discard, Env: raceEnv})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if err := p.Stop(ctx); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
