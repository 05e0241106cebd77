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
	"sync/atomic"
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
// Call and Open have a third sub-benchmark, "pair": blocks of benchBlock
// privsep operations and of as many raw ones, each in a worker of its own,
// alternately (see pair), so that both streams meet the same machine.
//
// Baselines use a SOCK_SEQPACKET pair whose far end the parent passed to the
// worker, and blocking read(2)/write(2)/sendmsg(2)/recvmsg(2).

func init() {
	// bench MODE: runs the operations of benchOp's MODE the parent asks
	// for, and answers with its allocations per operation (x1000) and the
	// nanoseconds they took.
	privsep.Register("bench", func(ctx context.Context, w *privsep.Worker) error {
		mode := w.Args()[0]
		raw := -1
		if strings.HasPrefix(mode, "raw-") {
			_, files, err := w.Call(ctx, "bench.rawpair", nil)
			if err != nil {
				return err
			}
			raw = int(files[0].Fd()) // blocking, and kept open by files[0]
			defer files[0].Close()
		}
		op := benchOp(ctx, w, mode, raw)
		for {
			p, _, err := w.Call(ctx, "bench.go", nil)
			if err != nil {
				return err
			}
			n := int(binary.LittleEndian.Uint64(p))
			if n == 0 {
				return nil
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			for range n {
				if err := op(); err != nil {
					return err
				}
			}
			ns := time.Since(start).Nanoseconds()
			runtime.ReadMemStats(&after)
			done := binary.LittleEndian.AppendUint64(nil, (after.Mallocs-before.Mallocs)*1000/uint64(n))
			done = binary.LittleEndian.AppendUint64(done, uint64(ns))
			if _, _, err := w.Call(ctx, "bench.done", done); err != nil {
				return err
			}
		}
	})
}

var benchPayload = []byte("0123456789abcdef") // 16 bytes

// benchBlock is how many operations a pair sub-benchmark asks of one
// worker before it turns to the other: 5-40 ms of them here.
const benchBlock = 256

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
		var y rawYield
		return func() error {
			if _, err := unix.Write(raw, benchPayload); err != nil {
				return err
			}
			y.yield(nil)
			_, err := unix.Read(raw, buf)
			return err
		}
	case "raw-open":
		var y rawYield
		return func() error {
			if _, err := unix.Write(raw, []byte(benchFile)); err != nil {
				return err
			}
			y.yield(nil)
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
	doneCh  chan []byte // the worker's allocations per operation x1000, and nanoseconds
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
	rawServers.Add(1)
	defer rawServers.Add(-1)
	var y rawYield
	buf := make([]byte, 4096)
	for {
		y.yield(fewRawServers)
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

// rawServers counts the rawServe loops of this process.
var rawServers atomic.Int32

// rawYield is what the raw baselines do that privsep's readers do
// (reader.yield in fastpath.go): go through the Go scheduler once every
// 2 ms before a blocking read, on the same terms. A loop that only ever
// blocks in system calls never does, and after its first 10 ms Go's sysmon
// takes it for one that runs too long and polls it every 20 µs: a raw
// stream then costs a third to a half more per call than in its first
// 10 ms (BENCHMARKS.md, "The raw baselines yield; streams in blocks").
// The baselines are raw system calls written as well as privsep's own,
// not a runtime's handicap.
type rawYield struct{ last time.Time }

// yield calls runtime.Gosched if 2 ms have passed since it last did and
// if only is nil or true (rawServe: while its loops are no more than the
// Ps, as privsep's session readers), asking only then.
func (y *rawYield) yield(only func() bool) {
	now := time.Now()
	if now.Sub(y.last) < 2*time.Millisecond {
		return
	}
	y.last = now
	if only == nil || only() {
		runtime.Gosched()
	}
}

// fewRawServers reports whether this process has no more rawServe loops
// than Ps.
func fewRawServers() bool { return int(rawServers.Load()) <= runtime.GOMAXPROCS(0) }

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
	for range workers {
		allocs += binary.LittleEndian.Uint64(<-bp.doneCh)
	}
	b.StopTimer()
	b.ReportMetric(float64(allocs)/1000/float64(workers), "worker-allocs/op")
	for range workers {
		bp.goCh <- 0 // exit
	}
	for _, p := range procs {
		<-p.Done()
	}
	b.StartTimer()
}

// pair times mode (ours) against base in blocks: each block asks block
// operations of each of workers workers of one side at once,
// then a block of the other side (internal/benchpair), about b.N
// operations of each side in all. A block's time per operation is its
// workers' (one worker: the time it measured itself; more: the block's
// wall time over its operations, the same reading as run's). Each side's
// workers run their operations back to back as in run, in processes of
// their own: two modes in one worker would share its Go runtime, whose
// state (sysmon's polling, idle threads) one leaves to the other.
func pair(b *testing.B, mode, base string, workers, block int) {
	b.StopTimer()
	k := min(b.N, block)
	side := func(mode string) benchpair.Op {
		bp := newBenchParent(b)
		for range workers {
			p, err := bp.s.Spawn(context.Background(), privsep.Spec{
				Role: "bench", UID: 1234, GID: 1234, Args: []string{mode}, Env: raceEnv,
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				for {
					select {
					case bp.goCh <- 0: // exit, to whichever worker takes it
					case <-p.Done():
						return
					}
				}
			})
		}
		return func() (time.Duration, error) {
			if workers == 1 {
				bp.goCh <- k
				done := <-bp.doneCh
				return time.Duration(binary.LittleEndian.Uint64(done[8:]) / uint64(k)), nil
			}
			t := time.Now()
			for range workers {
				bp.goCh <- k
			}
			for range workers {
				<-bp.doneCh
			}
			return time.Since(t) / time.Duration(k*workers), nil
		}
	}
	ours, theirs := side(mode), side(base)
	b.StartTimer()
	r, err := benchpair.Run(max(b.N/(k*workers), 1), ours, theirs)
	if err != nil {
		b.Fatal(err)
	}
	r.Report(b, "privsep", "raw")
}

func BenchmarkCall(b *testing.B) {
	testutil.RequireRoot(b)
	b.Run("privsep", func(b *testing.B) { newBenchParent(b).run(b, "call", 1) })
	b.Run("raw", func(b *testing.B) { newBenchParent(b).run(b, "raw-call", 1) })
	b.Run("pair", func(b *testing.B) { pair(b, "call", "raw-call", 1, benchBlock) })
}

func BenchmarkOpen(b *testing.B) {
	testutil.RequireRoot(b)
	b.Run("privsep", func(b *testing.B) { newBenchParent(b).run(b, "open", 1) })
	b.Run("raw", func(b *testing.B) { newBenchParent(b).run(b, "raw-open", 1) })
	b.Run("pair", func(b *testing.B) { pair(b, "open", "raw-open", 1, benchBlock) })
}

// BenchmarkThroughput: 8 workers calling at once; ns/op is per call, so
// calls/s is 1e9 over it. "pair" alternates blocks of eight privsep workers
// and of eight raw ones (pair).
func BenchmarkThroughput(b *testing.B) {
	testutil.RequireRoot(b)
	b.Run("privsep", func(b *testing.B) { newBenchParent(b).run(b, "call", 8) })
	b.Run("raw", func(b *testing.B) { newBenchParent(b).run(b, "raw-call", 8) })
	b.Run("pair", func(b *testing.B) { pair(b, "call", "raw-call", 8, 4*benchBlock) })
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
