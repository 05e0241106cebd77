package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
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
	privsep.Register("fifo", func(ctx context.Context, w *privsep.Worker) error {
		dir := w.Args()[0]
		if err := syscall.Mkfifo(dir+"/fifo", 0600); err != nil {
			return err
		}
		_, err := w.Open(dir + "/fifo")
		fmt.Printf("denied=%v %v\n", errors.Is(err, privsep.ErrDenied), err)
		return nil
	})
	// broker runs file operations through the parent, one per argument
	// ("op:path[:arg]"), and prints "arg: result".
	privsep.Register("broker", func(ctx context.Context, w *privsep.Worker) error {
		b := w
		for _, arg := range w.Args() {
			fmt.Printf("%s: %s\n", arg, brokerOp(b, arg))
		}
		return nil
	})
	// evil-broker asks for the broker's former channel, then sends a
	// broker request whose header lies about its payload.
	privsep.Register("evil-broker", func(ctx context.Context, w *privsep.Worker) error {
		_, files, err := w.Call(ctx, "file.channel", nil)
		var ce *privsep.CallError
		fmt.Printf("file.channel: refused=%v files=%d\n", errors.As(err, &ce), len(files))
		if err := privsep.RawWrite(w, header(3, 1, "file.stat", 100)); err != nil {
			return err
		}
		<-ctx.Done() // until the parent kills us
		return nil
	})
	// broker-race opens a path n times and counts the outcomes.
	privsep.Register("broker-race", func(ctx context.Context, w *privsep.Worker) error {
		n, _ := strconv.Atoi(w.Args()[0])
		counts := map[string]int{}
		for range n {
			b, err := w.ReadFile(w.Args()[1])
			if err != nil {
				counts[errText(err)]++
			} else {
				counts["content "+string(b)]++
			}
		}
		for k, v := range counts {
			fmt.Printf("%s=%d\n", k, v)
		}
		return nil
	})
	privsep.Register("broker-loop", brokerLoop)
}

func brokerOp(b *privsep.Worker, arg string) string {
	op, rest, _ := strings.Cut(arg, ":")
	path, extra, _ := strings.Cut(rest, ":")
	switch op {
	case "read":
		data, err := b.ReadFile(path)
		if err != nil {
			return errText(err)
		}
		return "ok " + string(data)
	case "write":
		f, err := b.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			return errText(err)
		}
		defer f.Close()
		_, err = io.WriteString(f, extra)
		return errText(err)
	case "create":
		f, err := b.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return errText(err)
		}
		defer f.Close()
		_, err = io.WriteString(f, extra)
		return errText(err)
	case "stat", "lstat":
		stat := b.Stat
		if op == "lstat" {
			stat = b.Lstat
		}
		fi, err := stat(path)
		if err != nil {
			return errText(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.IsDir() { // its size depends on the file system
			return fmt.Sprintf("%s %v uid=%d", fi.Name(), fi.Mode(), st.Uid)
		}
		return fmt.Sprintf("%s %v size=%d uid=%d", fi.Name(), fi.Mode(), fi.Size(), st.Uid)
	case "access":
		mode, _ := strconv.Atoi(extra)
		return errText(b.Access(path, uint32(mode)))
	case "readlink":
		target, err := b.Readlink(path)
		if err != nil {
			return errText(err)
		}
		return "ok " + target
	case "mkdir":
		return errText(b.Mkdir(path, 0o750))
	case "remove":
		return errText(b.Remove(path))
	case "rename":
		return errText(b.Rename(path, extra))
	case "list":
		f, err := b.Open(path)
		if err != nil {
			return errText(err)
		}
		defer f.Close()
		names, err := f.Readdirnames(-1)
		if err != nil {
			return errText(err)
		}
		return strconv.Itoa(len(names)) + " entries"
	}
	return "unknown op " + op
}

// brokerResults runs the broker worker with ops and returns its results,
// in order, as "op: result" lines.
func brokerResults(t *testing.T, s *privsep.Supervisor, ops ...string) []string {
	t.Helper()
	p, out := spawn(t, s, confinedSpec("broker", nil, ops...))
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("broker worker: %v\n%s", err, out)
	}
	return strings.Split(strings.TrimSpace(out.String()), "\n")
}

// checkBroker runs the ops of tests, each "op: result", and compares.
func checkBroker(t *testing.T, s *privsep.Supervisor, tests []string) {
	t.Helper()
	var ops []string
	for _, tt := range tests {
		op, _, _ := strings.Cut(tt, ": ")
		ops = append(ops, op)
	}
	if diff := cmp.Diff(tests, brokerResults(t, s, ops...)); diff != "" {
		t.Errorf("broker results (-want +got):\n%s", diff)
	}
}

func writeFile(t *testing.T, path, content string, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), perm); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
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

func TestBrokerOps(t *testing.T) {
	base := t.TempDir() // 0700: the worker reaches it only through the broker (unless it is the test's user)
	rw, ro, one := filepath.Join(base, "rw"), filepath.Join(base, "ro"), filepath.Join(base, "one")
	writeFile(t, filepath.Join(rw, "old"), "old", 0o600)
	writeFile(t, filepath.Join(ro, "file"), "read me", 0o600)
	writeFile(t, one, "one", 0o600)
	symlink(t, "old", filepath.Join(rw, "link"))
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"broker": {Files: []privsep.PathRule{
			{Path: rw, Beneath: true, Create: true},
			{Path: ro, Beneath: true},
			{Path: one, Write: true},
		}},
	}})
	// A directory goes only to a worker whose root directory is the
	// parent's, which a parent that is not root cannot see (/proc/PID/root
	// of a worker, not dumpable): it refuses, failing closed.
	list := "list:" + rw + "/d: 1 entries"
	if !asRoot {
		list = "list:" + rw + "/d: denied"
	}
	checkBroker(t, s, []string{
		"create:" + rw + "/new:hello: ok",
		"create:" + rw + "/new:again: EEXIST",
		"stat:" + rw + "/new: new -rw-r----- size=5 uid=" + wUIDs, // the worker's, not root's
		"mkdir:" + rw + "/d: ok",
		"lstat:" + rw + "/d: d drwxr-x--- uid=" + wUIDs,
		"rename:" + rw + "/new:" + rw + "/d/moved: ok",
		"read:" + rw + "/d/moved: ok hello",
		list,
		"remove:" + rw + "/d: ENOTEMPTY",
		"remove:" + rw + "/d/moved: ok",
		"remove:" + rw + "/d: ok",
		"lstat:" + rw + "/d: ENOENT",
		"lstat:" + rw + "/link: link Lrwxrwxrwx size=3 uid=" + strconv.Itoa(os.Geteuid()), // the test's
		"readlink:" + rw + "/link: ok old",
		"stat:" + rw + "/link: denied", // links are never followed
		"remove:" + rw + ": denied",    // the rule's own directory
		"read:" + ro + "/file: ok read me",
		"access:" + ro + "/file:4: ok",
		"access:" + ro + "/file:2: denied",
		"access:" + ro + "/file:1: denied",
		"access:" + ro + "/missing:0: ENOENT",
		"write:" + ro + "/file:x: denied",
		"create:" + ro + "/new:x: denied",
		"mkdir:" + ro + "/d: denied",
		"rename:" + rw + "/old:" + ro + "/old: denied",
		"write:" + one + ":two: ok",
		"read:" + one + ": ok two",
		"create:" + one + ":x: denied",
		"read:" + base + "/two: denied",
	})
	fi, err := os.Stat(filepath.Join(rw, "old"))
	if err != nil || fi.Size() != 3 {
		t.Errorf("the refused rename moved %s: %v", filepath.Join(rw, "old"), err)
	}
	for _, want := range []string{"op=file.open", "rule " + ro + " does not allow creating (PathRule.Create)", "has a symbolic link"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestBrokerEscapes: every way out of an allowed directory is refused and
// logged with role, pid, uid, path and reason.
func TestBrokerEscapes(t *testing.T) {
	base := t.TempDir()
	allowed := filepath.Join(base, "allowed")
	secret := filepath.Join(base, "secret")
	writeFile(t, filepath.Join(allowed, "file"), "inside", 0o600)
	writeFile(t, filepath.Join(allowed, "sub", "inner"), "inner", 0o600)
	writeFile(t, secret, "SECRET", 0o600)
	symlink(t, secret, filepath.Join(allowed, "abs-link"))
	symlink(t, "../secret", filepath.Join(allowed, "rel-link"))
	symlink(t, "/proc/self/root"+secret, filepath.Join(allowed, "proc-link"))
	symlink(t, "file", filepath.Join(allowed, "inside-link"))
	symlink(t, base, filepath.Join(allowed, "dir-link"))
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"broker": {Files: []privsep.PathRule{
			{Path: allowed, Beneath: true, Create: true},
			{Path: "/proc/self", Beneath: true}, // the parent's: magic links beneath
		}},
	}})
	checkBroker(t, s, []string{
		"read:" + allowed + "/file: ok inside",
		"read:" + allowed + "/sub/inner: ok inner",
		"read:" + allowed + "/../secret: denied",
		"read:" + allowed + "/sub/../../secret: denied",
		"read:" + secret + ": denied",
		"read:" + allowed + "/abs-link: denied",
		"read:" + allowed + "/rel-link: denied",
		"read:" + allowed + "/proc-link: denied",
		"read:" + allowed + "/inside-link: denied",
		"read:" + allowed + "/dir-link/secret: denied",
		"read:/proc/self/root" + secret + ": denied",
		"read:/proc/self/cwd" + secret + ": denied",
		"read:/proc/self/fd/0: denied",
		"read:allowed/file: denied",
		"create:" + allowed + "/dir-link/new:x: denied",
		"rename:" + allowed + "/file:" + base + "/stolen: denied",
		"rename:" + allowed + "/file:" + allowed + "/../x: denied",
	})
	if _, err := os.Stat(filepath.Join(base, "new")); err == nil {
		t.Error("a file was created through dir-link")
	}
	for _, want := range []string{
		`level=WARN msg="privsep: call refused" role=broker pid=`,
		"uid=" + wUIDs + " op=file.open",
		secret + "\\\": no rule of role \\\"broker\\\" allows it",
		allowed + "/abs-link\\\": has a symbolic link",
		"/proc/self/root" + secret + "\\\": has a symbolic link",
		allowed + "/../secret\\\": path must be absolute and clean",
	} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestBrokerViolation: the broker has no channel of its own any more (its
// calls share the worker's connection), and a worker that breaks the
// protocol in a broker request is killed, as for any other call.
func TestBrokerViolation(t *testing.T) {
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"evil-broker": {Files: []privsep.PathRule{{Path: t.TempDir(), Beneath: true}}},
	}})
	warmUp(t, s)
	before := openFDs(t)
	p, out := spawn(t, s, privsep.Spec{Role: "evil-broker", UID: wUID, GID: wGID})
	waitDone(t, p)
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("worker ended with %v, want killed\n%s", err, out)
	}
	if want := "file.channel: refused=true files=0\n"; out.String() != want {
		t.Errorf("worker output %q, want %q", out, want)
	}
	if !strings.Contains(log.String(), "protocol violation; worker disconnected") || !strings.Contains(log.String(), "datagram of 25 bytes, header says 125") {
		t.Errorf("no log of the violation:\n%s", log)
	}
	waitFor(t, "the session's descriptors closed", 10*time.Second, func() bool { return openFDs(t) == before })
}

// TestBrokerSwapRace: a directory swapped for a symbolic link (and back)
// while the worker opens a file in it: the worker gets the file inside or a
// refusal, never the file the link points to.
func TestBrokerSwapRace(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	allowed := filepath.Join(base, "allowed")
	writeFile(t, filepath.Join(allowed, "d", "f"), "inside", 0o600)
	writeFile(t, filepath.Join(base, "out", "f"), "SECRET", 0o600)
	symlink(t, filepath.Join(base, "out"), filepath.Join(allowed, "swap"))
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"broker-race": {Files: []privsep.PathRule{{Path: allowed, Beneath: true}}},
	}})
	stop := make(chan struct{})
	swapped := make(chan int)
	go func() {
		n := 0
		defer func() { swapped <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// d and swap trade places atomically: d is a directory, then
			// a link to out, then a directory again.
			if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(allowed, "d"), unix.AT_FDCWD, filepath.Join(allowed, "swap"), unix.RENAME_EXCHANGE); err != nil {
				t.Error(err)
				return
			}
			n++
		}
	}()
	p, out := spawn(t, s, privsep.Spec{Role: "broker-race", UID: wUID, GID: wGID, Args: []string{"3000", filepath.Join(allowed, "d", "f")}})
	waitDone(t, p)
	close(stop)
	n := <-swapped
	t.Logf("%d swaps; outcomes:\n%s", n, out)
	if strings.Contains(out.String(), "SECRET") || !strings.Contains(out.String(), "content inside=") {
		t.Errorf("outcomes over %d swaps:\n%s", n, out)
	}
	if p.Err() != nil {
		t.Errorf("worker: %v", p.Err())
	}
}

// brokerLoop makes n broker calls from 4 goroutines at once (several in
// flight on the worker's connection) and says whether its descriptors and
// goroutines came back to where they were.
func brokerLoop(ctx context.Context, w *privsep.Worker) error {
	n, _ := strconv.Atoi(w.Args()[0])
	path := w.Args()[1]
	b := w
	fds := func() int {
		ents, _ := os.ReadDir("/proc/self/fd")
		return len(ents)
	}
	if _, err := b.Stat(path); err != nil { // warms the connection up
		return err
	}
	before, gbefore := fds(), runtime.NumGoroutine()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 4 {
				var err error
				switch i % 4 {
				case 0, 1:
					var f *os.File
					if f, err = b.Open(path); err == nil {
						f.Close()
					}
				case 2:
					_, err = b.Stat(path)
				case 3:
					if _, err = b.Open(path + ".missing"); errors.Is(err, fs.ErrNotExist) {
						err = nil
					}
				}
				if err != nil {
					errs <- fmt.Errorf("call %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	// Goroutines that finished their work take a moment to exit.
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > gbefore && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	fmt.Printf("fds %d %d goroutines %d %d\n", before, fds(), gbefore, runtime.NumGoroutine())
	return nil
}

func TestBrokerNoLeak(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"broker-loop": {Files: []privsep.PathRule{{Path: dir, Beneath: true}}},
	}})
	p, out := spawn(t, s, privsep.Spec{Role: "broker-loop", UID: wUID, GID: wGID, Args: []string{"1", file}})
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("first worker: %v\n%s", err, out)
	}
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	p, out = spawn(t, s, privsep.Spec{Role: "broker-loop", UID: wUID, GID: wGID, Args: []string{"10000", file}})
	waitDone(t, p)
	if err := p.Err(); err != nil {
		t.Fatalf("worker: %v\n%s", err, out)
	}
	var fb, fa, gb, ga int
	if _, err := fmt.Sscanf(out.String(), "fds %d %d goroutines %d %d", &fb, &fa, &gb, &ga); err != nil || fa != fb || ga > gb {
		t.Errorf("worker after 10,000 broker calls: %q", out)
	}
	// The worker's descriptors in the parent (its broker channel among
	// them) close as the supervisor finishes with it: give that a moment;
	// a leak stays.
	waitFor(t, fmt.Sprintf("parent descriptors back to %d (now %d) after 10,000 broker calls", fds, openFDs(t)), 10*time.Second, func() bool {
		return openFDs(t) == fds
	})
	waitFor(t, fmt.Sprintf("goroutines back to %d (now %d)", goroutines, runtime.NumGoroutine()), 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= goroutines
	})
}

// TestBrokerRefusesFIFO: a FIFO in an allowed tree is refused at once, and
// Shutdown stays prompt.
// (The role, review-probe, is in confine_sockets_linux_test.go.)
func TestBrokerRefusesFIFO(t *testing.T) {
	requireLandlock(t)
	base := t.TempDir()
	fifo := filepath.Join(base, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	s := privsep.New(privsep.Config{Roles: map[string]privsep.Policy{
		"review-probe": {Files: []privsep.PathRule{{Path: base, Beneath: true}}},
	}})
	p, out := spawn(t, s, confinedSpec("review-probe", nil, "broker-open:"+fifo))
	waitDone(t, p)
	if got := out.String(); !strings.Contains(got, "fast=true") || strings.Contains(got, "broker-open: ok") {
		t.Errorf("broker open of a FIFO: %q, want a prompt refusal", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil || time.Since(start) > 20*time.Second {
		t.Errorf("Shutdown: %v after %v", err, time.Since(start))
	}
}

// BenchmarkBrokerOpen compares an open through the broker (a call on the
// worker's connection, on the hot path) with a raw request by hand: the path
// over a SOCK_SEQPACKET pair of its own, open(2) in the parent, the
// descriptor back as SCM_RIGHTS. The worker times its loop and reports
// ns/op.
func BenchmarkBrokerOpen(b *testing.B) {
	testutil.RequireRoot(b)
	dir := b.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		b.Fatal(err)
	}
	s := privsep.New(privsep.Config{Logger: slog.New(slog.DiscardHandler), Roles: map[string]privsep.Policy{
		"bench-open": {Files: []privsep.PathRule{{Path: dir, Beneath: true}}, Ops: map[string]privsep.OpRule{"raw-open": {}}},
	}})
	defer s.Shutdown(context.Background())
	s.Handle("raw-open", rawOpenServer)
	for _, mode := range []string{"broker", "raw"} {
		b.Run(mode, func(b *testing.B) {
			out := &syncBuffer{}
			p, err := s.Spawn(context.Background(), privsep.Spec{Role: "bench-open", UID: 1234, GID: 1234,
				Args: []string{mode, strconv.Itoa(b.N), file}, Stdout: out, Env: raceEnv})
			if err != nil {
				b.Fatal(err)
			}
			<-p.Done()
			ns, err := strconv.ParseFloat(strings.TrimSpace(out.String()), 64)
			if err != nil || p.Err() != nil {
				b.Fatalf("worker: %v %v: %q", err, p.Err(), out)
			}
			b.ReportMetric(ns/float64(b.N), "ns/op")
		})
	}
}

func init() {
	privsep.Register("bench-open", func(ctx context.Context, w *privsep.Worker) error {
		mode, path := w.Args()[0], w.Args()[2]
		n, _ := strconv.Atoi(w.Args()[1])
		open := func() error {
			f, err := w.Open(path)
			if err == nil {
				f.Close()
			}
			return err
		}
		if mode == "raw" {
			_, files, err := w.Call(ctx, "raw-open", nil)
			if err != nil {
				return err
			}
			defer files[0].Close()
			fd := int(files[0].Fd()) // blocking, and kept open by files[0]
			buf, oob := make([]byte, 16), make([]byte, unix.CmsgSpace(4))
			var y rawYield
			open = func() error {
				if _, err := unix.Write(fd, []byte(path)); err != nil {
					return err
				}
				y.yield(nil)
				_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
				if err != nil {
					return err
				}
				msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
				if err != nil || len(msgs) != 1 {
					return fmt.Errorf("control message: %v", err)
				}
				fds, err := unix.ParseUnixRights(&msgs[0])
				if err != nil || len(fds) != 1 {
					return fmt.Errorf("rights: %v", err)
				}
				return unix.Close(fds[0])
			}
		}
		start := time.Now()
		for range n {
			if err := open(); err != nil {
				return err
			}
		}
		fmt.Println(time.Since(start).Nanoseconds())
		return nil
	})
}

// rawOpenServer hands the worker one end of a socket pair and serves the
// other by hand: each datagram is a path to open read-only, answered with
// the descriptor.
func rawOpenServer(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	go func() {
		defer unix.Close(fds[0])
		var y rawYield // one worker: its loop is no more than the Ps
		buf := make([]byte, 4096)
		for {
			y.yield(nil)
			n, err := unix.Read(fds[0], buf)
			if err != nil || n == 0 {
				return
			}
			fd, err := unix.Open(string(buf[:n]), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return
			}
			err = unix.Sendmsg(fds[0], []byte{0}, unix.UnixRights(fd), nil, 0)
			unix.Close(fd)
			if err != nil {
				return
			}
		}
	}()
	return nil, []*os.File{os.NewFile(uintptr(fds[1]), "raw-open")}, nil
}
