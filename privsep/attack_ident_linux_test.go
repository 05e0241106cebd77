package privsep_test

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/peercred/peercred/internal/scm"
	"github.com/peercred/peercred/internal/wire"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// Attack 1 of the privsep security issue: a worker takes over a sibling of
// another role under the same UID (ptrace, pidfd_getfd, /proc/PID/fd), and
// with its connection to the parent gets served as that sibling.

func init() {
	// A process that plays a worker made dumpable again before its hello:
	// it speaks the protocol itself, without privsep.Main.
	if os.Getenv("PRIVSEP_TEST_DUMPABLE_HELLO") == "1" {
		os.Exit(dumpableHello())
	}
	// A process that plays a worker whose hello carries a connection of
	// the wrong kind (a stream socket pair) or none.
	switch os.Getenv("PRIVSEP_TEST_BAD_HELLO") {
	case "stream":
		os.Exit(sendHello(unix.SOCK_STREAM))
	case "none":
		os.Exit(sendHello(-1))
	case "listening":
		os.Exit(sendHello(-2))
	}
	// A process that plays a worker traced by another of its UID.
	if os.Getenv("PRIVSEP_TEST_TRACED_HELLO") == "1" {
		os.Exit(tracedHello())
	}
	if pid, err := strconv.Atoi(os.Getenv("PRIVSEP_TEST_TRACE")); err == nil {
		os.Exit(trace(pid))
	}
	// The same, once the file the variable names exists.
	if path := os.Getenv("PRIVSEP_TEST_DUMPABLE_IF"); path != "" {
		if _, err := os.Stat(path); err == nil {
			os.Exit(dumpableHello())
		}
	}
	// vault opens the file in its argument through the parent, keeps it
	// open and idles; it prints the descriptor's number. With a second
	// argument "dumpable", it makes itself dumpable again first.
	privsep.Register("ident-vault", func(ctx context.Context, w *privsep.Worker) error {
		f, err := w.Open(w.Args()[0])
		if err != nil {
			return err
		}
		defer f.Close()
		if len(w.Args()) > 1 && w.Args()[1] == "dumpable" {
			if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
				return err
			}
		}
		fmt.Printf("fd %d\n", f.Fd())
		<-ctx.Done()
		return nil
	})
	// web has an empty policy. It tries to take vault's (pid, fd, path in
	// its arguments) file and connection, and prints what it got.
	privsep.Register("ident-web", func(ctx context.Context, w *privsep.Worker) error {
		fmt.Print(strings.Join(takeOver(w.Args()), "\n") + "\n")
		return nil
	})
	// redump tries to make itself dumpable again.
	privsep.Register("ident-redump", func(ctx context.Context, w *privsep.Worker) error {
		err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0)
		d, _ := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		fmt.Printf("prctl(PR_SET_DUMPABLE, 1): %v; dumpable %d\n", err, d)
		return nil
	})
	// The same from a process of the same UID that is not a worker.
	testutil.Register("ident-thief", func(args []string) int {
		fmt.Print(strings.Join(takeOver(args), "\n") + "\n")
		return 0
	})
}

// takeOver attacks the worker args[0] (pid), whose descriptor args[1] is a
// file it opened through the parent at args[2]: it reads the file through
// pidfd_getfd(2) and /proc/PID/fd, takes the worker's connection to the
// parent and asks for the file as the worker while the worker is stopped,
// and attaches to it with ptrace(2). One line per attempt.
func takeOver(args []string) []string {
	pid, _ := strconv.Atoi(args[0])
	fd, _ := strconv.Atoi(args[1])
	path := args[2]
	var out []string
	errText := func(err error) string {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return unix.ErrnoName(errno)
		}
		return err.Error()
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return []string{"pidfd_open: " + errText(err)}
	}
	defer unix.Close(pidfd)

	// The file, through pidfd_getfd.
	if nfd, err := unix.PidfdGetfd(pidfd, fd, 0); err != nil {
		out = append(out, "pidfd_getfd: "+errText(err))
	} else {
		b := make([]byte, 100)
		n, _ := unix.Pread(nfd, b, 0)
		unix.Close(nfd)
		out = append(out, fmt.Sprintf("pidfd_getfd: read %q", b[:max(n, 0)]))
	}

	// The file, through /proc.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err != nil {
		out = append(out, "/proc/pid/fd: "+errText(err))
	} else {
		out = append(out, fmt.Sprintf("/proc/pid/fd: read %q", b))
	}

	// The connection to the parent: a SOCK_SEQPACKET socket among the
	// worker's descriptors.
	served := "connection: no descriptor taken"
	for n := 3; n < 64; n++ {
		sfd, err := unix.PidfdGetfd(pidfd, n, 0)
		if err != nil {
			continue
		}
		if typ, err := unix.GetsockoptInt(sfd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_SEQPACKET {
			unix.Close(sfd)
			continue
		}
		served = "connection: " + askAs(pidfd, pid, sfd, path)
		unix.Close(sfd)
		break
	}
	out = append(out, served)

	// Last, as it leaves the worker traced until we exit.
	if err := unix.PtraceSeize(pid); err != nil {
		out = append(out, "ptrace: "+errText(err))
	} else {
		out = append(out, "ptrace: attached")
	}
	return out
}

// askAs stops the worker, sends an open request for path on its connection
// sfd, and returns what the parent answered.
func askAs(pidfd, pid, sfd int, path string) string {
	if err := unix.PidfdSendSignal(pidfd, unix.SIGSTOP, nil, 0); err != nil {
		return "SIGSTOP: " + err.Error()
	}
	defer unix.PidfdSendSignal(pidfd, unix.SIGCONT, nil, 0)
	for i := 0; !stopped(pid); i++ {
		if i == 500 {
			return "the worker did not stop"
		}
		time.Sleep(10 * time.Millisecond)
	}
	req, err := wire.Append(nil, &wire.Msg{Kind: wire.KindRequest, ID: 0x7eadbeef, Op: wire.OpFileOpen,
		Payload: wire.AppendFile(nil, &wire.FileRequest{Flag: os.O_RDONLY | syscall.O_CLOEXEC, Path: path})}, wire.DefaultLimits)
	if err != nil {
		return err.Error()
	}
	if err := unix.Sendmsg(sfd, req, nil, nil, 0); err != nil {
		return "sendmsg: " + err.Error()
	}
	buf := make([]byte, wire.DefaultLimits.BufferSize())
	oob := make([]byte, scm.Space(4))
	for {
		// The worker's socket may be non-blocking (the flag is shared).
		if n, err := unix.Poll([]unix.PollFd{{Fd: int32(sfd), Events: unix.POLLIN}}, 10000); n != 1 {
			return fmt.Sprintf("poll: no reply (%v)", err)
		}
		// Other messages meant for the worker (its welcome) may come first.
		n, oobn, _, _, err := unix.Recvmsg(sfd, buf, oob, unix.MSG_CMSG_CLOEXEC|unix.MSG_DONTWAIT)
		if err != nil {
			return "recvmsg: " + err.Error()
		}
		fds, _, _ := scm.Parse(oob[:oobn])
		m, err := wire.Decode(buf[:n], len(fds), wire.DefaultLimits)
		if err != nil {
			scm.CloseAll(fds)
			return "reply: " + err.Error()
		}
		if m.ID != 0x7eadbeef {
			scm.CloseAll(fds)
			continue
		}
		if m.Kind != wire.KindReply || len(fds) != 1 {
			scm.CloseAll(fds)
			return fmt.Sprintf("refused: %v code %d %q", m.Kind, m.Code, m.Payload)
		}
		b := make([]byte, 100)
		k, _ := unix.Pread(fds[0], b, 0)
		scm.CloseAll(fds)
		return fmt.Sprintf("served as the worker: read %q", b[:max(k, 0)])
	}
}

// stopped reports whether pid is in a stopped state.
func stopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'T' || s[i+2] == 't')
}

func TestSameUIDSiblingCannotTakeOverWorker(t *testing.T) {
	t.Parallel()
	// As root, vault, web and thief are 65534; otherwise all three are the
	// test's own user (the parent's, then, too).
	id, thiefAs := uint32(65534), &testutil.User{UID: 65534, GID: 65534}
	if !asRoot {
		id, thiefAs = wUID, nil
	}
	dir := t.TempDir() // 0700
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("vault's secret"), 0600); err != nil {
		t.Fatal(err)
	}
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"ident-vault": {Files: []privsep.PathRule{{Path: secret}}},
		"ident-web":   {},
	}})
	want := []string{
		"pidfd_getfd: EPERM",
		"/proc/pid/fd: EACCES",
		"connection: no descriptor taken",
		"ptrace: EPERM",
	}
	for _, tc := range []struct {
		name string
		root bool // needs a root parent
		spec privsep.Spec
	}{
		{"vault in our user namespace", false, privsep.Spec{}},
		// Root inside a namespace a root parent made: its owner is root,
		// and the capabilities the worker has in it keep out processes of
		// its UID outside, even while it is dumpable (as from execve to
		// privsep's init): the kernel's ptrace check.
		// A namespace a parent that is not root makes is owned by its
		// UID, whose every process has all capabilities in it: there,
		// only not being dumpable keeps them out.
		{"vault in a user namespace of its own", true, privsep.Spec{UserNS: true}},
		{"vault in a user namespace of its own, dumpable", true, privsep.Spec{UserNS: true, Args: []string{"dumpable"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root && !asRoot {
				t.Skip("needs root: a user namespace made without root is its maker's UID's to enter")
			}
			spec := tc.spec
			spec.Role, spec.UID, spec.GID, spec.Args = "ident-vault", id, id, append([]string{secret}, spec.Args...)
			vault, vout := spawn(t, s, spec)
			waitLine(t, vout, "fd ")
			fd := strings.TrimSpace(strings.TrimPrefix(vout.String(), "fd "))
			args := []string{strconv.Itoa(vault.PID()), fd, secret}

			t.Run("by a worker of another role", func(t *testing.T) {
				web, wout := spawn(t, s, privsep.Spec{Role: "ident-web", UID: id, GID: id, Args: args})
				waitDone(t, web)
				got := strings.Split(strings.TrimSpace(wout.String()), "\n")
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("web's attempts on vault (-want +got):\n%s", diff)
				}
			})
			t.Run("by a process that is not a worker", func(t *testing.T) {
				p := testutil.Start(t, "ident-thief", testutil.Options{
					As:   thiefAs,
					Args: args,
				})
				if err := p.Wait(); err != nil {
					t.Fatal(err)
				}
				got := strings.Split(strings.TrimSpace(p.Stdout()), "\n")
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("the thief's attempts on vault (-want +got):\n%s", diff)
				}
			})
			if vault.PID() == 0 {
				t.Errorf("vault is gone")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			vault.Stop(ctx)
		})
	}
}

// dumpableHello plays a worker that made itself dumpable before its hello:
// it sends the hello on its socket itself and waits for the parent's answer.
func dumpableHello() int {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl:", err)
		return 3
	}
	return rawHello()
}

// tracedHello plays a worker that another process of its UID traces at its
// hello: it starts that process (the test binary, tracing) and waits until
// /proc says it is traced.
func tracedHello() int {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "prctl:", err)
		return 3
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{"PRIVSEP_TEST_TRACE=" + strconv.Itoa(os.Getpid())}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "tracer:", err)
		return 3
	}
	for range 1000 {
		b, _ := os.ReadFile("/proc/self/status")
		if strings.Contains(string(b), "\nTracerPid:\t"+strconv.Itoa(cmd.Process.Pid)+"\n") {
			return rawHello()
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "not traced")
	return 3
}

// trace attaches to pid with ptrace and stays attached until pid is gone.
func trace(pid int) int {
	runtime.LockOSThread()
	if err := unix.PtraceSeize(pid); err != nil {
		fmt.Fprintln(os.Stderr, "PTRACE_SEIZE:", err)
		return 3
	}
	for unix.Kill(pid, 0) == nil {
		time.Sleep(10 * time.Millisecond)
	}
	return 0
}

// rawHello sends the hello on the worker's socket, with one end of a new
// socket pair, its connection from then on, and waits for the parent's
// answer there.
func rawHello() int { return sendHello(unix.SOCK_SEQPACKET) }

// sendHello sends the hello with one end of a new socket pair of type typ
// (none if typ is -1), and waits for the parent's answer on the other.
func sendHello(typ int) int {
	listening := typ == -2
	if typ < 0 {
		typ = unix.SOCK_SEQPACKET
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "socketpair:", err)
		return 3
	}
	if listening {
		// A listening socket: SO_PEERCRED on it names its creator, as on
		// a pair, but it is no connection to the worker.
		unix.Close(pair[1])
		if pair[1], err = unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0); err == nil {
			if err = unix.Bind(pair[1], &unix.SockaddrUnix{}); err == nil { // autobind
				err = unix.Listen(pair[1], 1)
			}
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "listen:", err)
			return 3
		}
	}
	var rights []byte
	if os.Getenv("PRIVSEP_TEST_BAD_HELLO") != "none" {
		rights = unix.UnixRights(pair[1])
	}
	nfiles := 0
	if rights != nil {
		nfiles = 1
	}
	hello, err := wire.Append(nil, &wire.Msg{Kind: wire.KindHello, Op: os.Getenv("PEERCRED_PRIVSEP_ROLE"), NFiles: nfiles}, wire.DefaultLimits)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	if err := unix.Sendmsg(3, hello, rights, nil, 0); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		return 3
	}
	unix.Close(pair[1])
	unix.Close(3)
	// Admitted, it gets a welcome and then a stop: it exits at the stop.
	buf := make([]byte, 4096)
	for range 2 {
		if n, err := unix.Read(pair[0], buf); n <= 0 || err != nil {
			return 0 // refused: the parent closed the connection
		}
	}
	return 0
}

func TestVerifyRefusesWorker(t *testing.T) {
	id := uint32(65534)
	if !asRoot {
		id = wUID
	}
	for _, tc := range []struct {
		name, env, want string
	}{
		{"dumpable", "PRIVSEP_TEST_DUMPABLE_HELLO=1", "dumpable: /proc/"},
		{"traced", "PRIVSEP_TEST_TRACED_HELLO=1", "traced by pid "},
		{"without a connection of its own", "PRIVSEP_TEST_BAD_HELLO=none", "hello carries 0 descriptors, want 1"},
		{"with a stream connection", "PRIVSEP_TEST_BAD_HELLO=stream", "the hello's connection is socket type 1"},
		{"with a listening socket", "PRIVSEP_TEST_BAD_HELLO=listening", "the hello's connection is a listening socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, log := newSupervisor(t, privsep.Config{})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			errOut := &syncBuffer{}
			p, err := s.Spawn(ctx, privsep.Spec{Role: "sleep", UID: id, GID: id, Stderr: errOut,
				Env: append([]string{tc.env}, raceEnv...)})
			if err == nil {
				pid := p.PID()
				p.Stop(ctx)
				t.Fatalf("a %s worker was admitted (pid %d)", tc.name, pid)
			}
			if !errors.Is(err, privsep.ErrVerify) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Spawn: %v, want ErrVerify saying %q\nworker stderr: %s", err, tc.want, errOut)
			}
			if !strings.Contains(log.String(), "worker refused") {
				t.Errorf("no log line for the refused worker:\n%s", log)
			}
		})
	}
}

func TestConfinedWorkerStaysNotDumpable(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "ident-redump", UID: wUID, GID: wGID, Confine: &confine.Config{BestEffort: true}})
	waitDone(t, p)
	if got, want := strings.TrimSpace(out.String()), "prctl(PR_SET_DUMPABLE, 1): operation not permitted; dumpable 0"; got != want {
		t.Errorf("confined worker: %s, want %s", got, want)
	}
}
