package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/testutil"
)

// TestPrivsepd runs the built daemon and its client as users would.
func TestPrivsepd(t *testing.T) {
	bin := build(t, "privsepd")
	t.Run("usage and exit codes", func(t *testing.T) { testUsage(t, bin) })
	t.Run("as root", func(t *testing.T) { testRoot(t, bin) })
	t.Run("without root", func(t *testing.T) { testWithoutRoot(t, bin) })
}

func testUsage(t *testing.T, bin string) {
	tests := []struct {
		args   []string
		code   int
		stdout string // a substring
		stderr string // a substring
	}{
		{[]string{"-h"}, 0, "Exit status:", ""},
		{[]string{"-bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{[]string{"extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"ctl", "-h"}, 0, "Usage: privsepd ctl [flags] COMMAND", ""},
		{[]string{"ctl"}, 2, "", "want one COMMAND, got 0"},
		{[]string{"ctl", "reboot"}, 2, "", `unknown command "reboot"`},
		{[]string{"ctl", "-control", "/nonexistent/privsepd.sock", "status"}, 1, "", "cannot reach the daemon"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := runCmd(t, testutil.Options{}, bin, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit code %d, want %d\nstdout (want %q in it):\n%s\nstderr (want %q in it):\n%s",
					code, tt.code, tt.stdout, stdout, tt.stderr, stderr)
			}
		})
	}
}

// daemonProc is a privsepd under test.
type daemonProc struct {
	*testutil.Proc
	bin, control, addr, state string
}

// startDaemon starts privsepd as user as (nil: root) with flags after its
// -http, -state and -control, and waits for its page.
func startDaemon(t *testing.T, bin string, as *testutil.User, addr string, flags ...string) *daemonProc {
	t.Helper()
	dir := testutil.SocketDir(t) // reachable by the other users of the test
	d := &daemonProc{bin: bin, control: filepath.Join(dir, "privsepd.sock"), addr: addr, state: filepath.Join(dir, "state")}
	args := append([]string{"-http", addr, "-state", d.state, "-control", d.control}, flags...)
	d.Proc = startCmd(t, testutil.Options{As: as, Timeout: 30 * time.Second}, bin, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.Stderr())
		}
	})
	waitPage(t, d.Proc, addr)
	return d
}

// ctl runs "privsepd ctl -control ... cmd" as user as (nil: root).
func (d *daemonProc) ctl(t *testing.T, as *testutil.User, cmd string) (code int, stdout, stderr string) {
	t.Helper()
	return runCmd(t, testutil.Options{As: as}, d.bin, "ctl", "-control", d.control, cmd)
}

// status runs "ctl status" as user as, which must succeed, and returns the
// worker's PID.
func (d *daemonProc) status(t *testing.T, as *testutil.User) (pid int, out string) {
	t.Helper()
	code, out, stderr := d.ctl(t, as, "status")
	if code != 0 {
		t.Fatalf("ctl status as %v: exit code %d\n%s", as, code, stderr)
	}
	return workerPID(t, out), out
}

// stopped checks that the daemon exited with status 0 and left no process
// and no socket file behind.
func (d *daemonProc) stopped(t *testing.T, workers ...int) {
	t.Helper()
	if err := d.Wait(); err != nil {
		t.Errorf("daemon: %v, want exit status 0", err)
	}
	if !strings.Contains(d.Stderr(), `msg="privsepd stopped"`) {
		t.Errorf("no \"privsepd stopped\" in the log")
	}
	for _, pid := range workers {
		if !gone(pid) {
			t.Errorf("worker pid %d is still there after the daemon stopped", pid)
		}
	}
	if pids := running(d.bin); len(pids) > 0 {
		t.Errorf("processes of %s still running: %v", d.bin, pids)
	}
	if _, err := os.Lstat(d.control); !os.IsNotExist(err) {
		t.Errorf("control socket after the stop: %v, want it removed", err)
	}
}

func testRoot(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	var (
		allowed  = &testutil.User{UID: 1234, GID: 1234}
		admin    = &testutil.User{UID: 2345, GID: 2345}
		stranger = &testutil.User{UID: 3456, GID: 3456}
		nobody   = "65534 65534 65534 65534" // /proc status Uid and Gid of the worker
	)
	addr := freePrivilegedPort(t)
	d := startDaemon(t, bin, nil, addr, "-allow-uid", "1234", "-admin-uid", "2345")

	// The worker: not root, with the secret only the parent could open.
	pid, status := d.status(t, nil)
	for _, f := range []string{"Uid", "Gid"} {
		if got := procField(t, pid, f); got != nobody {
			t.Errorf("worker pid %d: /proc status %s %q, want %q", pid, f, got, nobody)
		}
	}
	// Confined by default: no_new_privs and a seccomp filter, as the
	// kernel shows them.
	for f, want := range map[string]string{"NoNewPrivs": "1", "Seccomp": "2"} {
		if got := procField(t, pid, f); got != want {
			t.Errorf("worker pid %d: %s %s, want %s", pid, f, got, want)
		}
	}
	secret, err := os.ReadFile(filepath.Join(d.state, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{d.state: 0o700 | os.ModeDir, filepath.Join(d.state, "secret"): 0o600} {
		if fi, err := os.Lstat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
	page, err := get(addr)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("worker    pid %d, uid %s, gid 65534\n", pid, ids.WithName(65534)),
		fmt.Sprintf("parent    pid %d, uid %s: keeps its privileges", d.PID(), ids.WithName(0)),
		"the worker opening it itself: open " + filepath.Join(d.state, "secret") + ": permission denied\n",
		fmt.Sprintf(`through the parent ("open" call): %d bytes, SHA-256 %x`+"\n", len(secret), sha256.Sum256(secret)),
		"requests  2 served by this worker process", // waitPage's was the first
		"confine   verified: no_new_privs=true seccomp=true",
		"ns=ipc,net", // as root: no network or IPC namespace of the host's
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if want := fmt.Sprintf("http:    http://%s/\n", addr); !strings.Contains(status, want) {
		t.Errorf("status lacks %q:\n%s", want, status)
	}

	// The control socket, by user.
	t.Run("status for an allowed user", func(t *testing.T) {
		got, out := d.status(t, allowed)
		if got != pid || !strings.Contains(out, "admin: no") {
			t.Errorf("status as uid 1234: worker pid %d (want %d), and not an admin:\n%s", got, pid, out)
		}
	})
	t.Run("nothing for another user", func(t *testing.T) {
		code, stdout, stderr := d.ctl(t, stranger, "status")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "is not allowed to use it") {
			t.Errorf("status as uid 3456: exit code %d, stdout %q, stderr:\n%s", code, stdout, stderr)
		}
		waitLog(t, d, `msg="peercred: peer refused"`, "uid=3456")
	})
	t.Run("restart-worker refused to a non-admin", func(t *testing.T) {
		code, stdout, stderr := d.ctl(t, allowed, "restart-worker")
		if code != 1 || stdout != "" || !strings.Contains(stderr, "restart-worker: denied: uid 1234 is not an admin") {
			t.Errorf("restart-worker as uid 1234: exit code %d, stdout %q, stderr:\n%s", code, stdout, stderr)
		}
		waitLog(t, d, `msg="control command refused" cmd=restart-worker`, "uid=1234")
		if got, _ := d.status(t, nil); got != pid {
			t.Errorf("worker pid %d after a refused restart, want %d unchanged", got, pid)
		}
	})
	for _, by := range []struct {
		name string
		as   *testutil.User
	}{{"root", nil}, {"an -admin-uid user", admin}} {
		as := by.as
		t.Run("restart-worker by "+by.name, func(t *testing.T) {
			code, stdout, stderr := d.ctl(t, as, "restart-worker")
			if code != 0 {
				t.Fatalf("restart-worker: exit code %d\n%s", code, stderr)
			}
			next, _ := d.status(t, nil)
			if want := fmt.Sprintf("web worker restarted: pid %d -> %d\n", pid, next); next == pid || stdout != want {
				t.Errorf("restart-worker printed %q; then the worker is pid %d (was %d)", stdout, next, pid)
			}
			if !gone(pid) {
				t.Errorf("old worker pid %d is still running", pid)
			}
			if got := procField(t, next, "Uid"); got != nobody {
				t.Errorf("new worker pid %d: Uid %q, want %q", next, got, nobody)
			}
			page, err := get(addr) // served at once by the new worker
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("worker    pid %d,", next); !strings.Contains(page, want) || !strings.Contains(page, "requests  1 served") {
				t.Errorf("page after the restart lacks %q or a request count of 1:\n%s", want, page)
			}
			pid = next
		})
	}
	waitLog(t, d, `msg="control command" cmd=status`, "uid=1234")

	t.Run("ctl refuses a socket served by another user", func(t *testing.T) {
		nc := testutil.RequireCommand(t, "nc")
		squat := filepath.Join(testutil.SocketDir(t), "squat.sock")
		s := testutil.Command(t, testutil.Options{As: allowed}, nc, "-lU", squat)
		waitSocket(t, s, squat)
		code, _, stderr := runCmd(t, testutil.Options{}, bin, "ctl", "-control", squat, "status")
		if want := fmt.Sprintf("is served by uid %s (pid %d), neither root nor you", ids.WithName(1234), s.PID()); code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("ctl on a socket of uid 1234: exit code %d, stderr:\n%s\nwant %q", code, stderr, want)
		}
	})
	t.Run("a second daemon on the same control socket", func(t *testing.T) {
		code, _, stderr := runCmd(t, testutil.Options{}, bin, "-http", freePort(t), "-state", d.state, "-control", d.control)
		if code != 1 || !strings.Contains(stderr, "another privsepd is running") {
			t.Errorf("second daemon: exit code %d, stderr:\n%s", code, stderr)
		}
	})
	t.Run("a control socket another user holds", func(t *testing.T) {
		// Red team: the /tmp names a user without a home gets are
		// squattable; privsepd said "another privsepd is running".
		nc := testutil.RequireCommand(t, "nc")
		squat := filepath.Join(testutil.SocketDir(t), "held.sock")
		s := testutil.Command(t, testutil.Options{As: allowed}, nc, "-lkU", squat)
		waitSocket(t, s, squat)
		code, _, stderr := runCmd(t, testutil.Options{}, bin, "-http", freePort(t), "-state", t.TempDir(), "-control", squat)
		if want := "in use by a socket of uid 1234, not yours"; code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("daemon on uid 1234's socket: exit code %d, stderr:\n%s\nwant %q", code, stderr, want)
		}
	})
	t.Run("a worker as root is refused", func(t *testing.T) {
		code, _, stderr := runCmd(t, testutil.Options{}, bin, "-user", "root", "-http", freePort(t),
			"-state", t.TempDir(), "-control", filepath.Join(testutil.SocketDir(t), "c.sock"))
		if code != 2 || !strings.Contains(stderr, "refusing to run the worker as root") {
			t.Errorf("-user root: exit code %d, stderr:\n%s", code, stderr)
		}
	})

	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.stopped(t, pid)
}

func testWithoutRoot(t *testing.T, bin string) {
	// As root, the daemon runs as uid 1234; otherwise as the test's user.
	var user *testutil.User
	uid := os.Geteuid()
	if uid == 0 {
		user, uid = &testutil.User{UID: 1234, GID: 1234}, 1234
	}
	addr := freePort(t)
	d := startDaemon(t, bin, user, addr)
	if !strings.Contains(d.Stderr(), "not running as root: no privilege drop") {
		t.Errorf("the log does not say that there is no privilege drop:\n%s", d.Stderr())
	}
	pid, _ := d.status(t, user)
	if got, want := procField(t, pid, "Uid"), strings.Repeat(fmt.Sprintf(" %d", uid), 4)[1:]; got != want {
		t.Errorf("worker pid %d: Uid %q, want %q", pid, got, want)
	}
	page, err := get(addr)
	if err != nil {
		t.Fatal(err)
	}
	if want := "the same user as this worker (without root, no privilege drop)"; !strings.Contains(page, want) {
		t.Errorf("page lacks %q:\n%s", want, page)
	}
	// Root's ctl trusts only root's sockets and its own.
	if user != nil {
		if code, _, stderr := d.ctl(t, nil, "status"); code != 1 || !strings.Contains(stderr, "neither root nor you") {
			t.Errorf("ctl status as root on uid 1234's daemon: exit code %d, stderr:\n%s", code, stderr)
		}
	}
	// Its own user administers it.
	code, stdout, stderr := d.ctl(t, user, "stop")
	if code != 0 || stdout != "privsepd is stopping\n" {
		t.Errorf("ctl stop: exit code %d, stdout %q, stderr:\n%s", code, stdout, stderr)
	}
	d.stopped(t, pid)
}

// waitLog waits for a line of the daemon's log that contains every one of
// want.
func waitLog(t *testing.T, d *daemonProc, want ...string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("a log line with %q", want), 5*time.Second, func() bool {
		for line := range strings.Lines(d.Stderr()) {
			found := true
			for _, w := range want {
				found = found && strings.Contains(line, w)
			}
			if found {
				return true
			}
		}
		return false
	})
}
