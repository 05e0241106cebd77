package privsep_test

// Attacks on the file broker's transport and on named-socket sessions
// (issue 13, attacks 3 and 4): one user opening sessions by the thousand,
// each using the broker; a worker that sends broker requests and never reads
// the replies.

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

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// broker-flood sends broker requests and never reads a reply.
	privsep.Register("broker-flood", func(ctx context.Context, w *privsep.Worker) error {
		go privsep.BrokerFlood(w, w.Args()[0], 2000)
		fmt.Println("flooding")
		<-ctx.Done() // until the parent kills us
		return nil
	})
	// named-broker-flood does the same over a named socket (args: socket,
	// role, path), and says how its flood ended.
	testutil.Register("named-broker-flood", func(args []string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w, err := privsep.Dial(ctx, args[0], args[1])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		fmt.Println("flooding")
		err = privsep.BrokerFlood(w, args[2], 2000)
		fmt.Printf("flood ended: %v\n", err)
		return 0
	})
	// broker-sessions opens n named-socket sessions one after the other
	// (args: socket, role, path, n), makes broker calls on each one it
	// gets, keeps them open, reports, and waits to be killed.
	testutil.Register("broker-sessions", func(args []string) int {
		n, _ := strconv.Atoi(args[3])
		var workers []*privsep.Worker
		refused, unavailable := 0, 0
		var firstErr error
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			w, err := privsep.Dial(ctx, args[0], args[1])
			cancel()
			if err != nil {
				refused++
				if errors.Is(err, privsep.ErrUnavailable) {
					unavailable++
				}
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			workers = append(workers, w)
			for range 5 {
				if _, err := w.Stat(args[2]); err != nil {
					fmt.Println("stat:", err)
					return 1
				}
			}
		}
		fmt.Printf("admitted=%d refused=%d unavailable=%d\n", len(workers), refused, unavailable)
		fmt.Printf("first refusal: %v\n", firstErr)
		select {} // the sessions stay open until we are killed
	})
}

// sendmsgThreads counts this process's threads that are in sendmsg(2).
func sendmsgThreads(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	want := strconv.Itoa(unix.SYS_SENDMSG) + " "
	for _, e := range ents {
		b, err := os.ReadFile("/proc/self/task/" + e.Name() + "/syscall")
		if err == nil && strings.HasPrefix(string(b), want) {
			n++
		}
	}
	return n
}

// TestNamedSessionsCapped: one user that opens many named-socket sessions,
// each calling the broker, gets MaxNamedSessionsPerUID of them and no more;
// the rest are refused with an error reply and a log line, rate-limited.
// The parent's threads stay bounded, another user still gets in, so does a
// spawned worker, and the attacker's places come back when its sessions
// end.
func TestNamedSessionsCapped(t *testing.T) {
	requireRoot(t, "the attack needs two users besides the parent's (1234 and 1235)")
	const (
		perUID   = 8
		total    = 12
		attempts = 64 // well past refusalLogBurst refusals
	)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, "content", 0o600)
	s, log := newSupervisor(t, privsep.Config{
		MaxNamedSessions:       total,
		MaxNamedSessionsPerUID: perUID,
		Roles: map[string]privsep.Policy{
			"client": {
				Files: []privsep.PathRule{{Path: file}},
				Ops:   map[string]privsep.OpRule{"echo": {}},
				Claim: peercred.AllowUIDs(1234, 1235),
			},
			"open": {Files: []privsep.PathRule{{Path: file}}},
		},
	})
	s.Handle("echo", echo)
	path := testutil.SocketDir(t) + "/named.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(1234, 1235)); err != nil {
		t.Fatal(err)
	}
	openWorker := func(when string) {
		t.Helper()
		p, out := spawn(t, s, privsep.Spec{Role: "open", UID: 1234, GID: 1234, Args: []string{file}})
		waitDone(t, p)
		if want := file + ": content\n"; out.String() != want {
			t.Errorf("a spawned worker's Open %s: %q, want %q", when, out, want)
		}
	}
	openWorker("before the attack") // also starts the spawner's thread

	before := threads()
	attacker := testutil.Start(t, "broker-sessions", testutil.Options{
		Args: []string{path, "client", file, strconv.Itoa(attempts)},
		As:   &testutil.User{UID: 1234, GID: 1234},
	})
	got := attacker.Line(t)
	t.Logf("attacker: %s; %s", got, attacker.Line(t))
	if want := fmt.Sprintf("admitted=%d refused=%d unavailable=%d", perUID, attempts-perUID, attempts-perUID); got != want {
		t.Errorf("attacker's sessions: %q, want %q", got, want)
	}
	// The bound: every admitted session of the attacker holds a thread of
	// the parent at most while its reader waits in recvmsg (10 ms after a
	// request) or its handler runs, and the attacker makes one call at a
	// time per session: perUID threads. The slack is for what else makes
	// threads meanwhile: the runtime's (a P handed off while another
	// thread is in a system call) and testutil's wait for the helper
	// process (one thread in waitid). Without the cap or with a thread per
	// session the count grows with the attempts (64), far above.
	after := threads()
	t.Logf("parent threads: %d before, %d with the attacker's sessions open", before, after)
	if bound := before + perUID + 16; after > bound {
		t.Errorf("parent threads: %d before, %d after %d session attempts, want at most %d", before, after, attempts, bound)
	}

	// Another user gets in while the attacker holds its share: four more
	// sessions make the total.
	other := testutil.Start(t, "broker-sessions", testutil.Options{
		Args: []string{path, "client", file, "6"},
		As:   &testutil.User{UID: 1235, GID: 1235},
	})
	if got, want := other.Line(t), fmt.Sprintf("admitted=%d refused=2 unavailable=2", total-perUID); got != want {
		t.Errorf("another user's sessions: %q, want %q", got, want)
	}
	if got := other.Line(t); !strings.Contains(got, "(MaxNamedSessions)") {
		t.Errorf("another user's refusal: %q, want the total cap named", got)
	}
	openWorker("under the attack")

	// attempts-perUID+2 refusals: the supervisor logs its first 20, then
	// one in 100, whoever is refused.
	refusals := strings.Count(log.String(), "named-socket peer refused")
	if refusals < 1 || refusals > 21 {
		t.Errorf("%d refusal log lines for %d refusals, want 1 to 21", refusals, attempts-perUID+2)
	}
	if want := "uid=1234 gid=1234 reason=\"role \\\"client\\\": uid 1234 has 8 named-socket sessions, the most allowed (MaxNamedSessionsPerUID)\" count=1\n"; !strings.Contains(log.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, log)
	}

	// The places are counted until the sessions end, and freed then.
	attacker.Kill()
	other.Kill()
	waitFor(t, "a session of the attacker's uid after its sessions ended", 10*time.Second, func() bool {
		c := testutil.Start(t, "named-client", testutil.Options{Args: []string{path, "client"}, As: &testutil.User{UID: 1234, GID: 1234}})
		c.Wait()
		return strings.TrimSpace(c.Stdout()) == "named"
	})
}

// TestBrokerStalledReaderKilled: a spawned worker that sends broker requests
// and stops reading the replies is killed after WriteTimeout, and no thread
// of the parent stays in sendmsg.
func TestBrokerStalledReaderKilled(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, "x", 0o600)
	s, log := newSupervisor(t, privsep.Config{
		WriteTimeout: 500 * time.Millisecond,
		Roles:        map[string]privsep.Policy{"broker-flood": {Files: []privsep.PathRule{{Path: file}}}},
	})
	warmUp(t, s)
	goroutines := runtime.NumGoroutine()
	p, out := spawn(t, s, privsep.Spec{Role: "broker-flood", UID: wUID, GID: wGID, Args: []string{file}})
	waitLine(t, out, "flooding")
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second): // 40 times the write timeout
		t.Fatalf("a worker that does not read its broker replies is alive 20s later (WriteTimeout 500ms); parent threads in sendmsg: %d", sendmsgThreads(t))
	}
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("worker ended with %v, want killed", err)
	}
	if !strings.Contains(log.String(), "does not read its replies") {
		t.Errorf("no log line for the worker that does not read:\n%s", log)
	}
	waitFor(t, "no parent thread in sendmsg", 10*time.Second, func() bool { return sendmsgThreads(t) == 0 })
	waitFor(t, "the session's goroutines gone", 10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines })
}

// TestNamedBrokerStalledReaderDisconnected: the same over a named socket:
// the client is disconnected after WriteTimeout.
func TestNamedBrokerStalledReaderDisconnected(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, "x", 0o600)
	s, log := newSupervisor(t, privsep.Config{
		WriteTimeout: 500 * time.Millisecond,
		Roles: map[string]privsep.Policy{"client": {
			Files: []privsep.PathRule{{Path: file}},
			Claim: peercred.AllowUIDs(wUID),
		}},
	})
	path := testutil.SocketDir(t) + "/named.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(wUID)); err != nil {
		t.Fatal(err)
	}
	warmUp(t, s)
	goroutines := runtime.NumGoroutine()
	c := testutil.Start(t, "named-broker-flood", testutil.Options{
		Args:    []string{path, "client", file},
		As:      asWorker(),
		Timeout: 20 * time.Second, // 40 times the write timeout
	})
	if got := c.Line(t); got != "flooding" {
		t.Fatalf("client: %q", got)
	}
	got := c.Line(t)
	t.Logf("client: %s", got)
	if !strings.HasPrefix(got, "flood ended: ") || strings.HasSuffix(got, "<nil>") || strings.Contains(got, "timeout") {
		t.Errorf("client: %q, want its flood cut off by the parent", got)
	}
	if !strings.Contains(log.String(), "does not read its replies") {
		t.Errorf("no log line for the client that does not read:\n%s", log)
	}
	waitFor(t, "no parent thread in sendmsg", 10*time.Second, func() bool { return sendmsgThreads(t) == 0 })
	c.Wait()
	waitFor(t, "the session's goroutines gone", 10*time.Second, func() bool { return runtime.NumGoroutine() <= goroutines })
}

// warmUp spawns a worker that makes no call and waits for its end, so that
// what the package starts once per process (the parker's goroutine and
// epoll descriptor, the spawner's thread) is there before a test counts.
func warmUp(t *testing.T, s *privsep.Supervisor) {
	t.Helper()
	p, _ := spawn(t, s, privsep.Spec{Role: "id", UID: wUID, GID: wGID})
	waitDone(t, p)
}
