//go:build linux

package testutil_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/peercred/peercred/testutil"
)

func TestMain(m *testing.M) {
	testutil.Register("ids", roleIDs)
	testutil.Register("echo", roleEcho)
	testutil.Register("cat", roleCat)
	testutil.Register("fail", roleFail)
	testutil.Register("sleep", roleSleep)
	testutil.Register("spawn", roleSpawn)
	testutil.Register("escape", roleEscape)
	testutil.Register("listen", roleListen)
	testutil.Main(m)
}

// ids is what the ids role reports about itself.
type ids struct {
	UID, GID int
	Groups   []int
	PID      int
	PPID     int
}

// roleIDs prints the helper's IDs as JSON; with the argument "wait" it then
// stays until its stdin ends, so the test can look at it from outside.
func roleIDs(args []string) int {
	groups, err := os.Getgroups()
	if err != nil {
		fmt.Fprintln(os.Stderr, "getgroups:", err)
		return 1
	}
	slices.Sort(groups)
	b, err := json.Marshal(ids{
		UID: os.Getuid(), GID: os.Getgid(), Groups: groups,
		PID: os.Getpid(), PPID: os.Getppid(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("%s\n", b)
	if len(args) > 0 && args[0] == "wait" {
		io.Copy(io.Discard, os.Stdin)
	}
	return 0
}

// roleEcho prints each argument on a line of its own.
func roleEcho(args []string) int {
	for _, a := range args {
		fmt.Println(a)
	}
	return 0
}

// roleCat copies stdin to stdout.
func roleCat(args []string) int {
	if _, err := io.Copy(os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// roleFail writes its first argument to stdout as is, "boom" to stderr, and
// exits 3.
func roleFail(args []string) int {
	if len(args) > 0 {
		os.Stdout.WriteString(args[0])
	}
	fmt.Fprintln(os.Stderr, "boom")
	return 3
}

// roleSleep says "ready" and sleeps.
func roleSleep(args []string) int {
	fmt.Println("ready")
	time.Sleep(time.Hour)
	return 0
}

// roleSpawn starts the program args[0] with args[1:], in its own process
// group, prints the child's PID and sleeps.
func roleSpawn(args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	time.Sleep(time.Hour)
	return 0
}

// roleEscape starts the program args[0] with args[1:] in a new session, out
// of reach of a kill of its process group, with the helper's stdout; prints
// the child's PID and exits.
func roleEscape(args []string) int {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout = os.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(cmd.Process.Pid)
	return 0
}

// roleListen listens on the Unix socket args[0], says "listening", and
// answers one connection with its UID.
func roleListen(args []string) int {
	ln, err := net.Listen("unix", args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer ln.Close()
	fmt.Println("listening")
	c, err := ln.Accept()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	fmt.Fprintf(c, "hello from uid %d\n", os.Getuid())
	return 0
}

// status returns the value of the field key in /proc/pid/status, with runs of
// white space made single spaces.
func status(t *testing.T, pid int, key string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && k == key {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, key)
	return ""
}

// procState returns the state letter of process pid ('R', 'S', 'Z', ...),
// its process group, and false if there is no such process.
func procState(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	pgrp, _ = strconv.Atoi(f[2])
	return f[0][0], pgrp, true
}

// waitGone waits until process pid has ended: it is gone or a zombie.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		state, _, ok := procState(pid)
		if !ok || state == 'Z' {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still running (state %c)", pid, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartIDs(t *testing.T) {
	groups, err := os.Getgroups()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(groups)
	euid, egid := os.Geteuid(), os.Getegid()
	// In a user namespace the test's groups are cleared when it is root;
	// otherwise they stay. Inside, the test's own GID is mapped to 0 and
	// reads as 0; every other group is unmapped and reads as the overflow
	// GID.
	nsGroups := []int{}
	if euid != 0 {
		for _, g := range groups {
			if g == egid {
				g = 0
			} else {
				g = 65534
			}
			nsGroups = append(nsGroups, g)
		}
		slices.Sort(nsGroups)
	}
	const (
		ourPID = -1 // placeholder: the helper's PID as the test sees it
		ourUID = -2 // placeholder: the test's effective UID
		ourGID = -3
	)

	tests := []struct {
		name   string
		root   bool // needs root
		userNS bool // needs user namespaces
		opts   testutil.Options
		want   ids
		// outside is the helper's kernel UID and GID seen from the test.
		outsideUID, outsideGID int
	}{{
		name:       "as the test process",
		want:       ids{UID: ourUID, GID: ourGID, Groups: groups, PID: ourPID, PPID: os.Getpid()},
		outsideUID: euid, outsideGID: egid,
	}, {
		name:       "as uid 1234 gid 2345 with group 3456",
		root:       true,
		opts:       testutil.Options{As: &testutil.User{UID: 1234, GID: 2345, Groups: []uint32{3456}}},
		want:       ids{UID: 1234, GID: 2345, Groups: []int{3456}, PID: ourPID, PPID: os.Getpid()},
		outsideUID: 1234, outsideGID: 2345,
	}, {
		name:       "as uid 1234 with no groups",
		root:       true,
		opts:       testutil.Options{As: &testutil.User{UID: 1234, GID: 2345}},
		want:       ids{UID: 1234, GID: 2345, PID: ourPID, PPID: os.Getpid()},
		outsideUID: 1234, outsideGID: 2345,
	}, {
		name:       "in a user namespace mapped to 1234 is uid 0 inside",
		root:       true,
		opts:       testutil.Options{As: &testutil.User{UID: 1234, GID: 2345}, UserNS: true},
		want:       ids{UID: 0, GID: 0, PID: ourPID, PPID: os.Getpid()},
		outsideUID: 1234, outsideGID: 2345,
	}, {
		name:       "in a PID namespace is pid 1 with no parent",
		root:       true,
		opts:       testutil.Options{PIDNS: true},
		want:       ids{UID: ourUID, GID: ourGID, Groups: groups, PID: 1, PPID: 0},
		outsideUID: euid, outsideGID: egid,
	}, {
		name:       "in user and PID namespaces mapped to 1234",
		root:       true,
		opts:       testutil.Options{As: &testutil.User{UID: 1234, GID: 2345}, UserNS: true, PIDNS: true},
		want:       ids{UID: 0, GID: 0, PID: 1, PPID: 0},
		outsideUID: 1234, outsideGID: 2345,
	}, {
		name:       "in user and PID namespaces as the test user",
		userNS:     true,
		opts:       testutil.Options{UserNS: true, PIDNS: true},
		want:       ids{UID: 0, GID: 0, Groups: nsGroups, PID: 1, PPID: 0},
		outsideUID: euid, outsideGID: egid,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root {
				testutil.RequireRoot(t)
			}
			if tt.userNS {
				testutil.RequireUserNS(t)
			}
			// The helper stays until we close its stdin.
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close(); w.Close() })
			opts := tt.opts
			opts.Args = []string{"wait"}
			opts.Stdin = r
			p := testutil.Start(t, "ids", opts)

			var got ids
			if err := json.Unmarshal([]byte(p.Line(t)), &got); err != nil {
				t.Fatal(err)
			}
			want := tt.want
			for _, v := range []*int{&want.UID, &want.GID, &want.PID} {
				switch *v {
				case ourPID:
					*v = p.PID()
				case ourUID:
					*v = euid
				case ourGID:
					*v = egid
				}
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("helper's view of itself (-want +got):\n%s", diff)
			}

			// The kernel's view from outside: real, effective, saved and
			// filesystem IDs.
			wantUID := strings.Repeat(strconv.Itoa(tt.outsideUID)+" ", 4)
			wantGID := strings.Repeat(strconv.Itoa(tt.outsideGID)+" ", 4)
			if got := status(t, p.PID(), "Uid") + " "; got != wantUID {
				t.Errorf("/proc/%d/status Uid = %q, want %q", p.PID(), got, wantUID)
			}
			if got := status(t, p.PID(), "Gid") + " "; got != wantGID {
				t.Errorf("/proc/%d/status Gid = %q, want %q", p.PID(), got, wantGID)
			}
			if p.PID() <= 1 {
				t.Errorf("PID() = %d, want a PID of the test's namespace", p.PID())
			}
			if tt.opts.PIDNS {
				want := fmt.Sprintf("%d 1", p.PID())
				if got := status(t, p.PID(), "NSpid"); got != want {
					t.Errorf("/proc/%d/status NSpid = %q, want %q", p.PID(), got, want)
				}
			}

			w.Close()
			if err := p.Wait(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCommandID(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCommand(t, "id")
	p := testutil.Command(t, testutil.Options{
		As: &testutil.User{UID: 1234, GID: 2345, Groups: []uint32{3456}},
	}, "id")
	if diff := cmp.Diff("uid=1234 gid=2345 groups=2345,3456", p.Line(t)); diff != "" {
		t.Errorf("id (-want +got):\n%s", diff)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

func TestCommandPassesOnlyExtraFiles(t *testing.T) {
	sh := testutil.RequireCommand(t, "sh")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// The shell lists its own descriptors: the pipes testutil made for
	// stdout and stderr, the test's own files and the binary's are all
	// close-on-exec.
	p := testutil.Command(t, testutil.Options{ExtraFiles: []*os.File{w}},
		sh, "-c", `ls /proc/$$/fd; echo via fd 3 >&3`)
	w.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("0\n1\n2\n3\n", p.Stdout()); diff != "" {
		t.Errorf("descriptors of the child (-want +got):\n%s", diff)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("via fd 3\n", string(got)); diff != "" {
		t.Errorf("written to fd 3 (-want +got):\n%s", diff)
	}
}

func TestSocketDirReachableByOtherUID(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.SocketDir(t)
	path := filepath.Join(dir, "s")
	if len(path) >= 100 {
		t.Errorf("socket path %q is %d bytes, want < 100", path, len(path))
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode(), os.ModeDir|os.ModeSticky|0o777; got != want {
		t.Errorf("mode of %s = %v, want %v", dir, got, want)
	}

	p := testutil.Start(t, "listen", testutil.Options{
		Args: []string{path},
		As:   &testutil.User{UID: 1234, GID: 2345},
	})
	if got := p.Line(t); got != "listening" {
		t.Fatalf("helper said %q, want listening", got)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// The kernel's word on who listens.
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		t.Fatal(err)
	}
	if credErr != nil {
		t.Fatal(credErr)
	}
	want := unix.Ucred{Pid: int32(p.PID()), Uid: 1234, Gid: 2345}
	if diff := cmp.Diff(want, *cred); diff != "" {
		t.Errorf("SO_PEERCRED of the helper (-want +got):\n%s", diff)
	}

	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("hello from uid 1234\n", line); diff != "" {
		t.Errorf("helper's answer (-want +got):\n%s", diff)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

// fatalRecorder records Fatalf instead of ending the test, to test Line's
// failures.
type fatalRecorder struct {
	testing.TB
	mu    sync.Mutex
	fatal []string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fatal = append(r.fatal, fmt.Sprintf(format, args...))
}

func TestLine(t *testing.T) {
	tests := []struct {
		name      string
		role      string
		args      []string
		stdin     io.Reader
		timeout   time.Duration
		lines     []string // Line's results before it fails
		wantFatal string   // in the failure message
	}{{
		name:      "fails at EOF with stderr in the message",
		role:      "fail",
		args:      []string{"out\n"},
		lines:     []string{"out"},
		wantFatal: "stdout ended before a line; stderr:\nboom\n",
	}, {
		name:      "returns a last line without newline",
		role:      "fail",
		args:      []string{"one\ntwo"},
		lines:     []string{"one", "two"},
		wantFatal: "stdout ended",
	}, {
		name: "fails after the timeout",
		role: "sleep",
		// Long enough for "ready" to come on a busy machine, under -race.
		timeout:   3 * time.Second,
		lines:     []string{"ready"},
		wantFatal: "no line on stdout within 3s",
	}, {
		name:      "reads stdin from any reader",
		role:      "cat",
		stdin:     strings.NewReader("a\n\nb\n"),
		lines:     []string{"a", "", "b"},
		wantFatal: "stdout ended",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testutil.Start(t, tt.role, testutil.Options{Args: tt.args, Stdin: tt.stdin, Timeout: tt.timeout})
			rec := &fatalRecorder{TB: t}
			var got []string
			for range len(tt.lines) + 1 {
				line := p.Line(rec)
				if len(rec.fatal) > 0 {
					break
				}
				got = append(got, line)
			}
			if diff := cmp.Diff(tt.lines, got); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if len(rec.fatal) != 1 || !strings.Contains(rec.fatal[0], tt.wantFatal) {
				t.Errorf("Line failed with %q, want one failure containing %q", rec.fatal, tt.wantFatal)
			}
		})
	}
}

func TestWaitReportsExitAndStderr(t *testing.T) {
	p := testutil.Start(t, "fail", testutil.Options{Args: []string{"partial"}})
	err := p.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		t.Fatalf("Wait() = %v, want an *exec.ExitError", err)
	}
	for _, want := range []string{`role "fail"`, "exit status 3", "boom"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Wait() = %q, want it to contain %q", err, want)
		}
	}
	if again := p.Wait(); again != err {
		t.Errorf("second Wait() = %v, want the first result %v", again, err)
	}
	if got := p.ExitCode(); got != 3 {
		t.Errorf("ExitCode() = %d, want 3", got)
	}
	if diff := cmp.Diff("partial", p.Stdout()); diff != "" {
		t.Errorf("Stdout() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("boom\n", p.Stderr()); diff != "" {
		t.Errorf("Stderr() (-want +got):\n%s", diff)
	}
}

func TestStdoutIncludesLinesTaken(t *testing.T) {
	p := testutil.Start(t, "echo", testutil.Options{Args: []string{"a", "b", "c"}})
	if got := p.Line(t); got != "a" {
		t.Errorf("Line() = %q, want a", got)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("a\nb\nc\n", p.Stdout()); diff != "" {
		t.Errorf("Stdout() (-want +got):\n%s", diff)
	}
	if got := p.ExitCode(); got != 0 {
		t.Errorf("ExitCode() = %d, want 0", got)
	}
}

func TestWaitKillsAfterTimeout(t *testing.T) {
	// Long enough for a helper to start on a busy machine, under -race.
	p := testutil.Start(t, "sleep", testutil.Options{Timeout: 5 * time.Second})
	p.Line(t)
	err := p.Wait()
	if err == nil || !strings.Contains(err.Error(), "still running after 5s: killed it") {
		t.Errorf("Wait() = %v, want it to say the helper was killed after 5s", err)
	}
	if got := p.ExitCode(); got != -1 {
		t.Errorf("ExitCode() = %d, want -1", got)
	}
	if err := syscall.Kill(p.PID(), 0); err != syscall.ESRCH {
		t.Errorf("kill(%d, 0) = %v, want ESRCH", p.PID(), err)
	}
}

func TestKillReapsAndIsIdempotent(t *testing.T) {
	p := testutil.Start(t, "sleep", testutil.Options{})
	if got := p.Line(t); got != "ready" {
		t.Fatalf("helper said %q, want ready", got)
	}
	p.Kill()
	p.Kill()
	if err := syscall.Kill(p.PID(), 0); err != syscall.ESRCH {
		t.Errorf("kill(%d, 0) after Kill = %v, want ESRCH: not reaped", p.PID(), err)
	}
	if got := p.ExitCode(); got != -1 {
		t.Errorf("ExitCode() = %d, want -1", got)
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "signal: killed") {
		t.Errorf("Wait() after Kill = %v, want signal: killed", err)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after Kill = %v, want os.ErrProcessDone", err)
	}
}

func TestSignal(t *testing.T) {
	p := testutil.Start(t, "sleep", testutil.Options{})
	p.Line(t)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err == nil || !strings.Contains(err.Error(), "signal: terminated") {
		t.Errorf("Wait() = %v, want signal: terminated", err)
	}
}

func TestCleanupKillsProcessGroup(t *testing.T) {
	sleep := testutil.RequireCommand(t, "sleep")
	var helper, child int
	t.Run("helper starts a child", func(t *testing.T) {
		p := testutil.Start(t, "spawn", testutil.Options{Args: []string{sleep, "1000"}})
		helper = p.PID()
		child, _ = strconv.Atoi(p.Line(t))
		state, pgrp, ok := procState(child)
		if !ok || state == 'Z' {
			t.Fatalf("child %d is not running", child)
		}
		if pgrp != helper {
			t.Fatalf("child %d is in process group %d, want the helper's %d", child, pgrp, helper)
		}
	})
	if child == 0 {
		t.FailNow()
	}
	if err := syscall.Kill(helper, 0); err != syscall.ESRCH {
		t.Errorf("kill(helper %d, 0) after cleanup = %v, want ESRCH", helper, err)
	}
	// The child's parent is gone; whoever inherits it may leave it a zombie.
	waitGone(t, child)
}

func TestWaitReturnsWhileEscapedChildHoldsStdout(t *testing.T) {
	sleep := testutil.RequireCommand(t, "sleep")
	p := testutil.Start(t, "escape", testutil.Options{Args: []string{sleep, "1000"}})
	child, err := strconv.Atoi(p.Line(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	start := time.Now()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Wait took %v with a child of another session holding stdout", d)
	}
	if diff := cmp.Diff(fmt.Sprintf("%d\n", child), p.Stdout()); diff != "" {
		t.Errorf("Stdout() (-want +got):\n%s", diff)
	}
	if state, _, ok := procState(child); !ok || state == 'Z' {
		t.Errorf("child %d of another session was killed; Wait kills only the process group", child)
	}
}

// A helper must not die when the thread that called Start ends: the kernel
// ties the parent-death signal to the forking thread.
func TestHelperOutlivesCallerThread(t *testing.T) {
	// Go ends the thread of a goroutine that exits locked to it, except the
	// main thread. Goroutines that land there hold it until the end so that
	// the next one lands on another thread.
	release := make(chan struct{})
	defer close(release)
	started := make(chan *testutil.Proc)
	for {
		onMain := make(chan bool)
		go func() {
			runtime.LockOSThread() // never unlocked on a thread other than the main one
			if unix.Gettid() == unix.Getpid() {
				onMain <- true
				<-release
				runtime.UnlockOSThread()
				return
			}
			onMain <- false
			started <- testutil.Start(t, "sleep", testutil.Options{})
		}()
		if !<-onMain {
			break
		}
	}
	p := <-started
	if got := p.Line(t); got != "ready" {
		t.Fatalf("helper said %q, want ready", got)
	}
	// The thread is gone once the helper has been handed to a sibling.
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID()))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if f[1] == strconv.Itoa(os.Getpid()) { // ppid: the thread group leader
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper's parent is still thread %s", f[1])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if state, _, ok := procState(p.PID()); !ok || state == 'Z' {
		t.Fatalf("helper %d died with the thread that started it", p.PID())
	}
}

func TestUnknownRoleExits2(t *testing.T) {
	cmd := exec.Command("/proc/self/exe", "x")
	cmd.Env = append(os.Environ(), "PEERCRED_TESTUTIL_ROLE=no-such-role")
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("unknown role: %v, want exit status 2", err)
	}
	if !strings.Contains(string(out), `testutil: unknown helper role "no-such-role" (registered: cat, echo, escape, fail, ids, listen, sleep, spawn)`) {
		t.Errorf("unknown role said %q", out)
	}
}

func TestRegisterPanics(t *testing.T) {
	tests := []struct {
		name string
		role string
		fn   func([]string) int
	}{
		{"on an empty name", "", roleEcho},
		{"on a nil function", "x", nil},
		{"after Main", "late", roleEcho},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", tt.role)
				}
			}()
			testutil.Register(tt.role, tt.fn)
		})
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

func TestNoLeaks(t *testing.T) {
	// Warm up: the first Start may copy the test binary.
	if err := testutil.Start(t, "echo", testutil.Options{}).Wait(); err != nil {
		t.Fatal(err)
	}
	goroutines, fds := runtime.NumGoroutine(), countFDs(t)

	procs := make([]*testutil.Proc, 20)
	for i := range procs {
		opts := testutil.Options{Args: []string{"hi"}}
		if i%2 == 1 {
			// os/exec copies a reader that is not a file in a goroutine.
			opts.Stdin = strings.NewReader("hi\n")
			procs[i] = testutil.Start(t, "cat", opts)
		} else {
			procs[i] = testutil.Start(t, "echo", opts)
		}
	}
	for _, p := range procs {
		if got := p.Line(t); got != "hi" {
			t.Errorf("helper %d said %q, want hi", p.PID(), got)
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}

	// Goroutines that have finished their work take a moment to exit.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	// Fewer is fine: a goroutine of an earlier test may have ended meanwhile.
	if got := runtime.NumGoroutine(); got > goroutines {
		t.Errorf("goroutines: %d after 20 helpers, %d before", got, goroutines)
	}
	if got := countFDs(t); got != fds {
		t.Errorf("descriptors: %d after 20 helpers, %d before", got, fds)
	}
}
