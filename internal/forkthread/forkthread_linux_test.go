package forkthread_test

import (
	"errors"
	"fmt"
	"io"
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

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/forkthread"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

const childEnv = "FORKTHREAD_TEST_CHILD"

// TestMain makes the test binary a child when childEnv is set: one that
// waits to be killed ("sleep") or prints its no_new_privs ("nonewprivs").
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "sleep":
		fmt.Println("ready")
		time.Sleep(time.Hour)
		os.Exit(0)
	case "nonewprivs":
		v, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(v)
		os.Exit(0)
	}
	os.Exit(2)
}

func newThread(t *testing.T, opts forkthread.Options) *forkthread.Thread {
	t.Helper()
	th, err := forkthread.New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	t.Cleanup(th.Close)
	return th
}

// tid returns the ID of the thread th runs functions on.
func tid(t *testing.T, th *forkthread.Thread) int {
	t.Helper()
	var id int
	if err := th.Do(func() error { id = unix.Gettid(); return nil }); err != nil {
		t.Fatalf("Do: %v", err)
	}
	return id
}

// taskExists says whether thread id of this process is alive.
func taskExists(id int) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(id))
	return err == nil
}

// threadNames returns the names (comm) of every thread of this process.
func threadNames(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/self/task/*/comm")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // the thread ended meanwhile
		}
		names = append(names, strings.TrimSpace(string(b)))
	}
	return names
}

func TestDoRunsEveryFunctionOnTheOneThread(t *testing.T) {
	th := newThread(t, forkthread.Options{})
	want := tid(t, th)
	if want == unix.Getpid() {
		t.Fatalf("the thread is the main thread (tid %d)", want)
	}
	const goroutines, calls = 8, 50
	var (
		running atomic.Int32
		mu      sync.Mutex
		seen    = map[int]int{}
		overlap atomic.Bool
		wg      sync.WaitGroup
	)
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				err := th.Do(func() error {
					if running.Add(1) != 1 {
						overlap.Store(true)
					}
					defer running.Add(-1)
					runtime.Gosched() // a locked goroutine keeps its thread
					id := unix.Gettid()
					mu.Lock()
					seen[id]++
					mu.Unlock()
					return nil
				})
				if err != nil {
					t.Errorf("Do: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	if overlap.Load() {
		t.Error("two functions ran at once")
	}
	if diff := cmp.Diff(map[int]int{want: goroutines * calls}, seen); diff != "" {
		t.Errorf("threads the functions ran on, with counts (-want +got):\n%s", diff)
	}
}

func TestThreadKeepsItsStateUntilClosed(t *testing.T) {
	th, err := forkthread.New(forkthread.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer th.Close()
	const name = "forkthread-test" // 15 bytes: PR_SET_NAME's most
	id := tid(t, th)
	if err := th.Do(func() error {
		p, err := unix.BytePtrFromString(name)
		if err != nil {
			return err
		}
		return unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(p)), 0, 0, 0)
	}); err != nil {
		t.Fatalf("PR_SET_NAME: %v", err)
	}
	// Work that makes the runtime start, park and end other threads.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // exits locked: the runtime ends this thread
			runtime.GC()
		}()
	}
	wg.Wait()
	var got string
	err = th.Do(func() error {
		if id2 := unix.Gettid(); id2 != id {
			return fmt.Errorf("now on thread %d, was on %d", id2, id)
		}
		b, err := os.ReadFile("/proc/thread-self/comm")
		got = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != name {
		t.Errorf("thread name = %q, want %q: the thread lost its state", got, name)
	}

	th.Close()
	testutil.WaitFor(t, fmt.Sprintf("thread %d to end", id), time.Minute, func() bool { return !taskExists(id) })
	for _, n := range threadNames(t) {
		if n == name {
			t.Errorf("a thread named %q is still running after Close: the state outlived the thread", name)
		}
	}
}

func TestNewNeverTakesTheMainThreadAndCloseLeavesNoGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 100 {
		th, err := forkthread.New(forkthread.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// Whichever thread the runtime gave the goroutine first, it is
		// never the main one, which the runtime would not end.
		if id := tid(t, th); id == unix.Getpid() {
			t.Fatalf("the thread is the main thread (tid %d)", id)
		}
		th.Close()
	}
	testutil.WaitFor(t, "the goroutine count to come back", time.Minute, func() bool {
		return runtime.NumGoroutine() <= before
	})
}

func TestNoNewPrivs(t *testing.T) {
	had, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if had != 0 {
		t.Skip("this process has no_new_privs already")
	}
	for _, tc := range []struct {
		name string
		opts forkthread.Options
		want int
	}{
		{"without the option the thread has none", forkthread.Options{}, 0},
		{"NoNewPrivs sets it on the thread", forkthread.Options{NoNewPrivs: true}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			th, err := forkthread.New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer th.Close()
			var got int
			if err := th.Do(func() (err error) {
				got, err = unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("no_new_privs on the thread = %d, want %d", got, tc.want)
			}
			// A child forked from the thread inherits it.
			var out []byte
			if err := th.Do(func() (err error) {
				cmd := childCmd(t, "nonewprivs")
				out, err = cmd.Output()
				return err
			}); err != nil {
				t.Fatalf("child: %v", err)
			}
			if got, want := strings.TrimSpace(string(out)), strconv.Itoa(tc.want); got != want {
				t.Errorf("no_new_privs in a child forked from the thread = %s, want %s", got, want)
			}
			th.Close()
			// The thread ended with it: no thread of ours has it.
			if got, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || got != 0 {
				t.Errorf("no_new_privs on the test's thread = %d (%v), want 0", got, err)
			}
			testutil.WaitFor(t, "no thread of the process to have no_new_privs", time.Minute, func() bool {
				return tasksWithNoNewPrivs(t) == 0
			})
		})
	}
}

// tasksWithNoNewPrivs counts the threads of this process that have
// no_new_privs.
func tasksWithNoNewPrivs(t *testing.T) int {
	t.Helper()
	files, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread ended meanwhile
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "NoNewPrivs:"); ok && strings.TrimSpace(v) == "1" {
				n++
			}
		}
	}
	return n
}

// childCmd returns a command that runs this test binary as the child
// mode.
func childCmd(t *testing.T, mode string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

// The parent-death signal of a child forked from the thread comes when the
// Thread is closed, not when the goroutine that asked for the fork, or its
// thread, ends.
func TestParentDeathSignalFollowsTheThread(t *testing.T) {
	th := newThread(t, forkthread.Options{})
	cmd := childCmd(t, "sleep")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// Ask from a goroutine whose thread then ends: it exits locked. Not
	// if it runs on the main thread, which Go never ends (it parks it
	// instead): then the next goroutine cannot be there.
	var caller int
	errc := make(chan error, 1)
	for caller == 0 {
		callerTID := make(chan int, 1)
		go func() {
			runtime.LockOSThread()
			if tid := unix.Gettid(); tid == unix.Getpid() {
				callerTID <- 0
				return
			}
			callerTID <- unix.Gettid()
			errc <- th.Do(cmd.Start)
		}()
		caller = <-callerTID
	}
	if err := <-errc; err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	buf := make([]byte, 6)
	if _, err := io.ReadFull(stdout, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("child said %q (%v), want ready", buf, err)
	}
	testutil.WaitFor(t, fmt.Sprintf("the caller's thread %d to end", caller), time.Minute, func() bool { return !taskExists(caller) })
	// The child lives on: signal 0 reaches it, and it is not a zombie.
	if st := procState(cmd.Process.Pid); st == "" || st == "Z" {
		t.Fatalf("child state %q after the caller's thread ended, want it running", st)
	}

	th.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("child ended with %v, want killed by SIGKILL", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("child still running a minute after Close: no parent-death signal")
	}
}

// procState returns the state letter of process pid, or "" if it is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

func TestErrors(t *testing.T) {
	th, err := forkthread.New(forkthread.Options{})
	if err != nil {
		t.Fatal(err)
	}
	errMine := errors.New("mine")
	if err := th.Do(func() error { return fmt.Errorf("wrapped: %w", errMine) }); !errors.Is(err, errMine) {
		t.Errorf("Do returned %v, want the function's error", err)
	}
	if err := th.Do(func() error { return nil }); err != nil {
		t.Errorf("Do after a failed function: %v, want nil: one error does not stick", err)
	}
	th.Close()
	th.Close() // idempotent
	ran := false
	if err := th.Do(func() error { ran = true; return nil }); !errors.Is(err, forkthread.ErrClosed) {
		t.Errorf("Do after Close returned %v, want ErrClosed", err)
	}
	if ran {
		t.Error("Do ran a function after Close")
	}
}

// Calls waiting for their turn when the Thread is closed either ran or
// return ErrClosed; none hangs.
func TestCloseWhileCallsWait(t *testing.T) {
	th, err := forkthread.New(forkthread.Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	started := make(chan struct{})
	go th.Do(func() error { close(started); <-release; return nil })
	<-started
	var ran atomic.Int32
	results := make(chan error, 10)
	for range cap(results) {
		go func() { results <- th.Do(func() error { ran.Add(1); return nil }) }()
	}
	closed := make(chan struct{})
	go func() { th.Close(); close(closed) }()
	close(release)
	<-closed
	nClosed := int32(0)
	for range cap(results) {
		select {
		case err := <-results:
			if errors.Is(err, forkthread.ErrClosed) {
				nClosed++
			} else if err != nil {
				t.Errorf("Do: %v, want nil or ErrClosed", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("a Do still waits a minute after Close")
		}
	}
	if got := ran.Load() + nClosed; got != int32(cap(results)) {
		t.Errorf("%d calls ran and %d returned ErrClosed, want %d in all", ran.Load(), nClosed, cap(results))
	}
}
