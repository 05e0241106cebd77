package privsep_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/internal/benchpair"
	"github.com/peercred/peercred/internal/scm"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// The benchmarks put each privsep path beside the same work done by hand
// with raw system calls between the same two processes, so the ratio of the
// pair is what to read. The worker side runs the timed loop; the parent
// starts and stops the clock around it:
//
//	worker: n := Call("bench.go") ... n operations ... Call("bench.done")
//	parent: ResetTimer, release "bench.go"; on "bench.done", StopTimer.
//
// Call and Open have a third sub-benchmark, "pair": the worker runs the
// privsep operation and its raw one alternately in one loop and times each
// (internal/benchpair). It is not the one the targets read: alternating
// changes what each side costs, since each operation then follows the
// other kind (BENCHMARKS.md, "Interleaved: Call and Open").
//
// Baselines use a SOCK_SEQPACKET pair whose far end the parent passed to the
// worker, and blocking read(2)/write(2)/sendmsg(2)/recvmsg(2).

func init() {
	// bench MODE: runs the operations the parent asks for. MODE is one of
	// benchOp's, or pair-call or pair-open: call (open) and raw-call
	// (raw-open) alternately, timed here (internal/benchpair).
	privsep.Register("bench", func(ctx context.Context, w *privsep.Worker) error {
		mode := w.Args()[0]
		single, pair := strings.CutPrefix(mode, "pair-")
		raw := -1
		if pair || strings.HasPrefix(mode, "raw-") {
			_, files, err := w.Call(ctx, "bench.rawpair", nil)
			if err != nil {
				return err
			}
			raw = int(files[0].Fd()) // blocking, and kept open by files[0]
			defer files[0].Close()
		}
		var ours, base func() error
		if pair {
			ours, base = benchOp(ctx, w, single, raw), benchOp(ctx, w, "raw-"+single, raw)
		} else {
			ours = benchOp(ctx, w, mode, raw)
		}
		for {
			p, _, err := w.Call(ctx, "bench.go", nil)
			if err != nil {
				return err
			}
			n := int(binary.LittleEndian.Uint64(p))
			if n == 0 {
				return nil
			}
			var done []byte
			if pair {
				r, err := benchpair.Run(n, benchpair.Timed(ours), benchpair.Timed(base))
				if err != nil {
					return err
				}
				done = r.Marshal()
			} else {
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range n {
					if err := ours(); err != nil {
						return err
					}
				}
				runtime.ReadMemStats(&after)
				done = binary.LittleEndian.AppendUint64(nil, (after.Mallocs-before.Mallocs)*1000/uint64(n))
			}
			if _, _, err := w.Call(ctx, "bench.done", done); err != nil {
				return err
			}
		}
	})
}

var benchPayload = []byte("0123456789abcdef") // 16 bytes

// benchOp returns one operation of mode: a call (call), an open through the
// broker (open), or the same by hand over raw, the worker's end of a
// SOCK_SEQPACKET pair the parent serves with rawServe (raw-call, raw-open).
func benchOp(ctx context.Context, w *privsep.Worker, mode string, raw int) func() error {
	buf := make([]byte, 64)
	oob := make([]byte, scm.Space(1))
	switch mode {
	case "call":
		return func() error {
			_, _, err := w.Call(ctx, "bench.echo", benchPayload)
			return err
		}
	case "open":
		return func() error {
			f, err := w.Open(benchFile)
			if err != nil {
				return err
			}
			return f.Close()
		}
	case "raw-call":
		return func() error {
			if _, err := unix.Write(raw, benchPayload); err != nil {
				return err
			}
			_, err := unix.Read(raw, buf)
			return err
		}
	case "raw-open":
		return func() error {
			if _, err := unix.Write(raw, []byte(benchFile)); err != nil {
				return err
			}
			_, oobn, _, _, err := unix.Recvmsg(raw, buf, oob, unix.MSG_CMSG_CLOEXEC)
			if err != nil {
				return err
			}
			fds, _, err := scm.Parse(oob[:oobn])
			if err != nil || len(fds) != 1 {
				return fmt.Errorf("raw open reply: %v %v", fds, err)
			}
			return unix.Close(fds[0])
		}
	}
	return func() error { return fmt.Errorf("bench: unknown mode %q", mode) }
}

// benchFile is the file the open benchmarks open: world-readable, so that
// only the mechanism differs.
var benchFile = "/etc/hostname"

// benchParent runs one timed round of mode in n workers at once.
type benchParent struct {
	s       *privsep.Supervisor
	goCh    chan int
	doneCh  chan []byte // the worker's allocations per operation x1000, or a pair's benchpair.Result
	rawEnds []*os.File
	mu      sync.Mutex
}

func newBenchParent(b *testing.B) *benchParent {
	bp := &benchParent{goCh: make(chan int), doneCh: make(chan []byte, 64)}
	ops := map[string]privsep.OpRule{"bench.go": {}, "bench.done": {}, "bench.echo": {}, "bench.rawpair": {}}
	bp.s = privsep.New(privsep.Config{
		Logger: slog.New(slog.DiscardHandler),
		Roles:  map[string]privsep.Policy{"bench": {Ops: ops, Files: []privsep.PathRule{{Path: benchFile}}}},
	})
	bp.s.Handle("bench.go", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		select {
		case n := <-bp.goCh:
			return binary.LittleEndian.AppendUint64(nil, uint64(n)), nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	bp.s.Handle("bench.done", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		bp.doneCh <- bytes.Clone(r.Payload)
		return nil, nil, nil
	})
	bp.s.Handle("bench.echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		return r.Payload, nil, nil
	})
	bp.s.Handle("bench.rawpair", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, nil, err
		}
		bp.mu.Lock()
		bp.rawEnds = append(bp.rawEnds, os.NewFile(uintptr(fds[0]), "raw"))
		bp.mu.Unlock()
		go rawServe(fds[0])
		return nil, []*os.File{os.NewFile(uintptr(fds[1]), "raw")}, nil
	})
	b.Cleanup(func() {
		bp.s.Shutdown(context.Background())
		for _, f := range bp.rawEnds {
			f.Close()
		}
	})
	return bp
}

// rawServe answers the raw baselines by hand: a 16-byte message is echoed,
// anything else is a path to open and send back with SCM_RIGHTS.
func rawServe(fd int) {
	runtime.LockOSThread()
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil || n == 0 {
			return
		}
		if n == len(benchPayload) {
			unix.Write(fd, buf[:n])
			continue
		}
		f, err := unix.Open(string(buf[:n]), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		unix.Sendmsg(fd, []byte{1}, unix.UnixRights(f), nil, 0)
		unix.Close(f)
	}
}

// run times b.N operations of mode spread over workers.
func (bp *benchParent) run(b *testing.B, mode string, workers int) {
	b.StopTimer()
	var procs []*privsep.Process
	for range workers {
		p, err := bp.s.Spawn(context.Background(), privsep.Spec{
			Role: "bench", UID: 1234, GID: 1234, Args: []string{mode}, Env: raceEnv,
		})
		if err != nil {
			b.Fatal(err)
		}
		procs = append(procs, p)
	}
	per := b.N / workers
	if per == 0 {
		per = 1
	}
	b.StartTimer()
	for range workers {
		bp.goCh <- per
	}
	var allocs uint64
	var pair []byte
	for range workers {
		done := <-bp.doneCh
		if strings.HasPrefix(mode, "pair-") {
			pair = done
		} else {
			allocs += binary.LittleEndian.Uint64(done)
		}
	}
	b.StopTimer()
	if pair != nil {
		r, err := benchpair.Unmarshal(pair)
		if err != nil {
			b.Fatal(err)
		}
		r.Report(b, "privsep", "raw")
	} else {
		b.ReportMetric(float64(allocs)/1000/float64(workers), "worker-allocs/op")
	}
	for range workers {
		bp.goCh <- 0 // exit
	}
	for _, p := range procs {
		<-p.Done()
	}
	b.StartTimer()
}

func BenchmarkCall(b *testing.B) {
	testutil.RequireRoot(b)
	b.Run("privsep", func(b *testing.B) { newBenchParent(b).run(b, "call", 1) })
	b.Run("raw", func(b *testing.B) { newBenchParent(b).run(b, "raw-call", 1) })
	b.Run("pair", func(b *testing.B) { newBenchParent(b).run(b, "pair-call", 1) })
}

func BenchmarkOpen(b *testing.B) {
	testutil.RequireRoot(b)
	b.Run("privsep", func(b *testing.B) { newBenchParent(b).run(b, "open", 1) })
	b.Run("raw", func(b *testing.B) { newBenchParent(b).run(b, "raw-open", 1) })
	b.Run("pair", func(b *testing.B) { newBenchParent(b).run(b, "pair-open", 1) })
}

// BenchmarkThroughput: 8 workers calling at once; ns/op is per call, so
// calls/s is 1e9 over it.
func BenchmarkThroughput(b *testing.B) {
	testutil.RequireRoot(b)
	b.Run("privsep", func(b *testing.B) { newBenchParent(b).run(b, "call", 8) })
	b.Run("raw", func(b *testing.B) { newBenchParent(b).run(b, "raw-call", 8) })
}

// BenchmarkSpawn: Spawn until the worker is verified and ready, against
// exec.Cmd starting the same binary until its first byte on a pipe, written
// where a worker's TestMain calls privsep.Main. Stopping either is not
// timed. "pair" runs both in one loop, alternately (internal/benchpair).
func BenchmarkSpawn(b *testing.B) {
	testutil.RequireRoot(b)
	s := privsep.New(privsep.Config{Logger: slog.New(slog.DiscardHandler)})
	defer s.Shutdown(context.Background())
	b.Run("privsep", func(b *testing.B) { benchOps(b, spawnSleeper(b, s)) })
	b.Run("exec", func(b *testing.B) { benchOps(b, execReady(b)) })
	b.Run("pair", func(b *testing.B) {
		r, err := benchpair.Run(b.N, spawnSleeper(b, s), execReady(b))
		if err != nil {
			b.Fatal(err)
		}
		r.Report(b, "privsep", "exec")
	})
}

// benchOps runs op b.N times and reports the mean of the times it
// reports as ns/op.
func benchOps(b *testing.B, op benchpair.Op) {
	var sum time.Duration
	for range b.N {
		d, err := op()
		if err != nil {
			b.Fatal(err)
		}
		sum += d
	}
	b.ReportMetric(float64(sum)/float64(b.N), "ns/op")
}

// spawnSleeper times one Spawn of a "sleep" worker, then stops it with
// b's timer (and allocation count) stopped.
func spawnSleeper(b *testing.B, s *privsep.Supervisor) benchpair.Op {
	return func() (time.Duration, error) {
		t := time.Now()
		p, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: 1234, GID: 1234, Env: raceEnv, Stdout: io.Discard})
		d := time.Since(t)
		if err != nil {
			return 0, err
		}
		b.StopTimer()
		p.Stop(context.Background())
		b.StartTimer()
		return d, nil
	}
}

// execReady times one start of this binary as uid 1234 with exec.Cmd, by
// the same path as Spawn uses, until its first byte, then kills it as
// spawnSleeper stops its worker.
func execReady(b *testing.B) benchpair.Op {
	return func() (time.Duration, error) {
		one := make([]byte, 1)
		t := time.Now()
		cmd := exec.Command("/proc/self/exe")
		cmd.Env = append([]string{benchExecEnv + "=1"}, raceEnv...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1234, Gid: 1234, Groups: []uint32{}}}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return 0, err
		}
		if err := cmd.Start(); err != nil {
			return 0, err
		}
		_, err = io.ReadFull(out, one)
		d := time.Since(t)
		b.StopTimer()
		cmd.Process.Kill()
		cmd.Wait()
		b.StartTimer()
		return d, err
	}
}

// benchExecEnv makes the test binary write one byte and wait: the exec
// baseline's "ready".
const benchExecEnv = "PRIVSEP_BENCH_EXEC"

// TestIdleWorkerMemory measures what an idle worker costs the parent.
func TestIdleWorkerMemory(t *testing.T) {
	s, _ := newSupervisor(t, privsep.Config{})
	const n = 40
	spawnOne := func() *privsep.Process {
		p, err := s.Spawn(context.Background(), privsep.Spec{Role: "sleep", UID: wUID, GID: wGID, Env: raceEnv, Stdout: devNull(t)})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	spawnOne() // warm up: spawner thread, pools
	measure := func() uint64 {
		// Twice: receive buffers wait in a sync.Pool for reuse, and a
		// pool is emptied over two collections. They are as many as
		// reads at once, not workers.
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	before := measure()
	for range n {
		spawnOne()
	}
	time.Sleep(100 * time.Millisecond)
	after := measure()
	per := (int64(after) - int64(before)) / n
	t.Logf("parent memory per idle worker: %d bytes (heap in use + stacks, %d workers)", per, n)
	if per > 64<<10 {
		t.Errorf("an idle worker costs the parent %d bytes, want at most 64 KiB", per)
	}
}

// benchExecReady is the exec baseline's "ready": TestMain calls it where
// it calls privsep.Main, after every init of the binary, as a worker gets
// there.
func benchExecReady() {
	if os.Getenv(benchExecEnv) != "" {
		os.Stdout.Write([]byte{'x'})
		time.Sleep(time.Hour)
		os.Exit(0)
	}
}

// devNull opens /dev/null for a worker's output: an *os.File, so that
// exec.Cmd needs no copying goroutine (and 32 KiB buffer) per worker.
func devNull(t *testing.T) *os.File {
	t.Helper()
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
