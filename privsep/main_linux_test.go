package privsep_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// Worker roles of the tests: this test binary is also the workers' binary.
func init() {
	privsep.Register("id", func(ctx context.Context, w *privsep.Worker) error {
		out, err := exec.Command("/usr/bin/id").CombinedOutput()
		fmt.Print(string(out))
		return err
	})
	privsep.Register("open", func(ctx context.Context, w *privsep.Worker) error {
		for _, path := range w.Args() {
			f, err := w.Open(path)
			if err != nil {
				fmt.Printf("%s: denied=%v %v\n", path, errors.Is(err, privsep.ErrDenied), err)
				continue
			}
			b, _ := io.ReadAll(f)
			f.Close()
			fmt.Printf("%s: %s\n", path, b)
		}
		return nil
	})
	privsep.Register("serve-port", func(ctx context.Context, w *privsep.Worker) error {
		l, err := w.Listen(ctx, "tcp", w.Args()[0])
		if err != nil {
			return err
		}
		defer l.Close()
		fmt.Println("listening")
		c, err := l.Accept()
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "hello from pid %d uid %d\n", os.Getpid(), os.Getuid())
		return nil
	})
	privsep.Register("once", func(ctx context.Context, w *privsep.Worker) error {
		for range 2 {
			p, _, err := w.Call(ctx, "token", nil)
			fmt.Printf("token=%q denied=%v\n", p, errors.Is(err, privsep.ErrDenied))
		}
		return nil
	})
	privsep.Register("concurrent", func(ctx context.Context, w *privsep.Worker) error {
		n, _ := strconv.Atoi(w.Args()[0])
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				want := fmt.Sprintf("call %d", i)
				got, _, err := w.Call(ctx, "echo", []byte(want))
				if err != nil || string(got) != want {
					errs <- fmt.Errorf("call %d: got %q, %v", i, got, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return err
		}
		fmt.Println("ok")
		return nil
	})
	privsep.Register("serial", func(ctx context.Context, w *privsep.Worker) error {
		n, _ := strconv.Atoi(w.Args()[0])
		for i := range n {
			if _, _, err := w.Call(ctx, "echo", []byte("y")); err != nil {
				return fmt.Errorf("call %d: %w", i, err)
			}
		}
		fmt.Println("done")
		return nil
	})
	privsep.Register("block", func(ctx context.Context, w *privsep.Worker) error {
		fmt.Println("calling")
		_, _, err := w.Call(ctx, "block", nil)
		return err
	})
	privsep.Register("sleep", func(ctx context.Context, w *privsep.Worker) error {
		fmt.Println("up")
		<-ctx.Done()
		return nil
	})
	privsep.Register("echo-once", func(ctx context.Context, w *privsep.Worker) error {
		p, _, err := w.Call(ctx, "echo", []byte("still here"))
		fmt.Printf("%s %v\n", p, err)
		<-ctx.Done()
		return nil
	})
	privsep.Register("evil", evil)
	privsep.Register("fds", func(ctx context.Context, w *privsep.Worker) error {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			target, _ := os.Readlink("/proc/self/fd/" + e.Name())
			fmt.Println(e.Name(), target)
		}
		return nil
	})
	privsep.Register("fifo", func(ctx context.Context, w *privsep.Worker) error {
		dir := w.Args()[0]
		if err := syscall.Mkfifo(dir+"/fifo", 0600); err != nil {
			return err
		}
		_, err := w.Open(dir + "/fifo")
		fmt.Printf("denied=%v %v\n", errors.Is(err, privsep.ErrDenied), err)
		return nil
	})
	privsep.Register("flood", func(ctx context.Context, w *privsep.Worker) error {
		// Requests, and never a read of the replies.
		privsep.StallReader(w)
		go func() {
			for i := uint32(1); i < 5000; i++ {
				if privsep.RawWrite(w, append(header(3, i, "echo", 1), 'y')) != nil {
					return
				}
			}
		}()
		fmt.Println("flooding")
		<-ctx.Done()
		return nil
	})
	privsep.Register("stubborn", func(ctx context.Context, w *privsep.Worker) error {
		fmt.Println("up")
		select {} // ignores the request to stop
	})
	privsep.Register("whoami", func(ctx context.Context, w *privsep.Worker) error {
		wd, _ := os.Getwd()
		fmt.Printf("pid=%d uid=%d gid=%d wd=%s\n", os.Getpid(), os.Getuid(), os.Getgid(), wd)
		_, _, err := w.Call(ctx, "peer", nil)
		return err
	})

	// testutil roles: processes that are not workers.
	testutil.Register("named-client", func(args []string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w, err := privsep.Dial(ctx, args[0], args[1])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		defer w.Close()
		p, _, err := w.Call(ctx, "echo", []byte("named"))
		if err != nil {
			fmt.Println("call:", err)
			return 1
		}
		fmt.Println(string(p))
		return 0
	})
	testutil.Register("parent", func(args []string) int {
		s := privsep.New(privsep.Config{})
		for range 2 {
			p, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Env: raceEnv})
			if err != nil {
				fmt.Println("spawn:", err)
				return 1
			}
			fmt.Println(p.PID())
		}
		select {} // until killed
	})
}

// evil plays a worker that breaks the protocol in the way its argument says.
func evil(ctx context.Context, w *privsep.Worker) error {
	var err error
	switch w.Args()[0] {
	case "garbage":
		err = privsep.RawWrite(w, []byte("this is not a message"))
	case "oversize":
		hdr := header(3, 1, "echo", 70<<10)
		err = privsep.RawWrite(w, append(hdr, make([]byte, 70<<10)...))
	case "undeclared-fds":
		// A well-formed request that says 0 descriptors, with 3 attached.
		err = privsep.RawWrite(w, header(3, 1, "echo", 0), pipeFiles(3)...)
	case "too-many-fds":
		err = privsep.RawWrite(w, header(3, 1, "echo", 0), pipeFiles(20)...)
	case "reply-kind":
		// Workers may not send replies.
		err = privsep.RawWrite(w, header(4, 1, "", 0))
	}
	if err != nil {
		return err
	}
	<-ctx.Done() // until the parent kills us
	return nil
}

func echo(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
	// Out of order on purpose: replies must still reach their callers.
	if len(r.Payload) > 0 && r.Payload[len(r.Payload)-1]%2 == 0 {
		time.Sleep(time.Millisecond)
	}
	return r.Payload, nil, nil
}

// header builds a wire header (version 1) with the op appended.
func header(kind byte, id uint32, op string, paylen int) []byte {
	b := make([]byte, 16, 16+len(op))
	b[0], b[1] = 1, kind
	binary.LittleEndian.PutUint32(b[4:], id)
	binary.LittleEndian.PutUint16(b[8:], uint16(len(op)))
	binary.LittleEndian.PutUint32(b[12:], uint32(paylen))
	return append(b, op...)
}

// pipeFiles opens n pipe ends to send.
func pipeFiles(n int) []*os.File {
	var files []*os.File
	for len(files) < n {
		r, w, err := os.Pipe()
		if err != nil {
			panic(err)
		}
		files = append(files, r, w)
	}
	return files[:n]
}

// raceEnv keeps race-enabled workers from sleeping a second at exit, those
// that can read their own /proc/self/environ (see raceExitSleep).
var raceEnv = []string{"GORACE=atexit_sleep_ms=0"}

func TestMain(m *testing.M) {
	// A test worker that changes identity before its hello: only the
	// kernel's view of it can tell the parent.
	if uid := os.Getenv("PRIVSEP_TEST_SETUID"); uid != "" {
		n, _ := strconv.Atoi(uid)
		if err := syscall.Setuid(n); err != nil {
			fmt.Fprintln(os.Stderr, "setuid:", err)
			os.Exit(3)
		}
	}
	privsep.Main()
	testutil.Main(m)
}

// waitLine waits until buf has a line containing want.
func waitLine(t *testing.T, buf *syncBuffer, want string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("output %q (have %q)", want, buf.String()), time.Minute, func() bool {
		return strings.Contains(buf.String(), want)
	})
}

// newSupervisor returns a supervisor logging into a buffer, shut down at
// cleanup.
func newSupervisor(t *testing.T, cfg privsep.Config) (*privsep.Supervisor, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := privsep.New(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if t.Failed() {
			lines := strings.Split(log.String(), "\n")
			t.Logf("supervisor log (last 40 lines):\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	return s, log
}

// spawn starts a worker with output captured.
func spawn(t *testing.T, s *privsep.Supervisor, spec privsep.Spec) (*privsep.Process, *syncBuffer) {
	t.Helper()
	out, errOut := &syncBuffer{}, &syncBuffer{}
	spec.Stdout, spec.Stderr = out, errOut
	t.Cleanup(func() {
		if t.Failed() && errOut.String() != "" {
			t.Logf("%s worker stderr:\n%s", spec.Role, errOut)
		}
	})
	spec.Env = append(spec.Env, raceEnv...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // a busy machine's, under -race
	defer cancel()
	p, err := s.Spawn(ctx, spec)
	if err != nil {
		t.Fatalf("Spawn(%s): %v\nworker output:\n%s%s", spec.Role, err, out, errOut)
	}
	return p, out
}

// waitDone waits for p to finish for good.
func waitDone(t *testing.T, p *privsep.Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(2 * time.Minute): // 10,000 calls under -race on a busy machine
		t.Fatalf("%s worker pid %d did not finish", p.Role(), p.PID())
	}
}

// gone reports whether pid has exited (or is a zombie nobody reaped).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] == 'Z' || s[i+2] == 'X'
}

// openFDs counts this process's descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1
}

// syncBuffer is a buffer the test and a writer can share.
type syncBuffer = testutil.Buffer

// waitFor polls a condition until it holds or the test fails.
var waitFor = testutil.WaitFor
