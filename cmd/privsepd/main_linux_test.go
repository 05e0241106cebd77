package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

func TestMain(m *testing.M) {
	privsep.Main() // the workers of attack_unix_linux_test.go
	testutil.Main(m)
}

// build compiles the command in the current directory for the tests,
// into a directory other UIDs can reach (see testutil.Build).
func build(t *testing.T, name string) string {
	t.Helper()
	return testutil.Build(t, ".", name)
}

// waitSocket waits for the socket file path to appear: the servers link it
// only once they listen.
func waitSocket(t *testing.T, p *testutil.Proc, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no socket at %s after 10s; server stderr:\n%s", path, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runCmd runs bin to its end, as startCmd starts it, and returns its exit
// code, stdout and stderr.
func runCmd(t *testing.T, opts testutil.Options, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	p := startCmd(t, opts, bin, args...)
	p.Wait()
	return p.ExitCode(), p.Stdout(), p.Stderr()
}

// freePrivilegedPort returns a loopback address with a free port below 1024.
func freePrivilegedPort(t *testing.T) string {
	t.Helper()
	// From a random place: two runs at once (two checkouts, a user's and
	// CI's) would otherwise both pick the first free port, and one daemon
	// could answer the other's test.
	start := rand.IntN(224)
	for i := range 224 {
		addr := "127.0.0.1:" + strconv.Itoa(800+(start+i)%224)
		if l, err := net.Listen("tcp", addr); err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port below 1024")
	return ""
}

// freePort returns a loopback address with a free unprivileged port.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// get fetches the page at addr, on a new connection.
func get(addr string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET http://%s/: %s", addr, resp.Status)
	}
	return string(b), err
}

// waitPage waits for the daemon d to serve its page on addr and returns it.
func waitPage(t *testing.T, d *testutil.Proc, addr string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		page, err := get(addr)
		if err == nil {
			return page
		}
		if time.Now().After(deadline) {
			t.Fatalf("no page at %s after 20s: %v\ndaemon log:\n%s", addr, err, d.Stderr())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var workerRE = regexp.MustCompile(`(?m)^worker:  web, pid (\d+), uid (\d+)`)

// workerPID returns the worker's PID from the output of "ctl status".
func workerPID(t *testing.T, status string) int {
	t.Helper()
	m := workerRE.FindStringSubmatch(status)
	if m == nil {
		t.Fatalf("no worker in the status:\n%s", status)
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// procField returns a field of /proc/PID/status, with its whitespace
// collapsed.
func procField(t *testing.T, pid int, field string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("pid %d: %v", pid, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	t.Fatalf("pid %d: no %s in its status", pid, field)
	return ""
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

// running returns the PIDs of the processes that run the executable bin.
func running(bin string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == bin && !gone(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// waitFor polls a condition until it holds or the test fails.
var waitFor = testutil.WaitFor

// startCmd starts a built command (testutil.Command spares -race
// binaries the race detector's exit sleep).
var startCmd = testutil.Command
