package privsep_test

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// idle: do nothing until killed.
	testutil.Register("idle", func([]string) int {
		time.Sleep(time.Hour)
		return 0
	})
}

// relayedConn connects a helper (uid 1234) to the named socket at path; the
// helper hands the connection to us and exits, and another helper, which
// runs the same program as a child of ours, takes its PID. It returns the
// connection and that PID.
func relayedConn(t *testing.T, path string) (net.Conn, int) {
	t.Helper()
	return testutil.HandedOffConn(t, "unixpacket", path, testutil.Options{As: &testutil.User{UID: 1234, GID: 1234}})
}

// TestClaimRefusesReusedPID: a role's Claim that looks at the process
// (DescendantOf, AllowExecutables) is checked, as the listener's
// Authorizer is, against the process that connected, not against whatever
// has its PID when the hello comes. The client connects, hands its
// connection to a relay and exits; a process that the Claim would admit
// takes its PID; the relay's hello is refused.
func TestClaimRefusesReusedPID(t *testing.T) {
	requireRoot(t, "a PID is handed to another process through ns_last_pid")
	helper, _ := testutil.HelperExec(t, "idle") // the program every helper runs
	echoOnly := map[string]privsep.OpRule{"echo": {}}
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"by-tree": {Ops: echoOnly, Claim: peercred.DescendantOf(os.Getpid())},
		"by-exe":  {Ops: echoOnly, Claim: peercred.AllowExecutables(helper)},
	}})
	s.Handle("echo", echo)
	path := testutil.SocketDir(t) + "/privsep.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(1234)); err != nil {
		t.Fatal(err)
	}
	for _, role := range []string{"by-tree", "by-exe"} {
		t.Run(role, func(t *testing.T) {
			conn, pid := relayedConn(t, path)
			if _, err := conn.Write(header(1, 0, role, 0)); err != nil { // the hello
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			buf := make([]byte, 256)
			n, err := conn.Read(buf)
			if n > 1 && buf[1] == 2 {
				t.Fatalf("relayed hello as %q welcomed: pid %d, now another process, was vouched for", role, pid)
			}
			if err != io.EOF {
				t.Errorf("after the hello: %d bytes, %v; want EOF (refused)", n, err)
			}
			waitFor(t, "the refusal in the log", 10*time.Second, func() bool {
				for _, line := range strings.Split(log.String(), "\n") {
					if strings.Contains(line, "named-socket peer refused") && strings.Contains(line, "pid="+strconv.Itoa(pid)+" ") {
						if !strings.Contains(line, role) {
							t.Fatalf("refused for another reason than the Claim: %s", line)
						}
						return true
					}
				}
				return false
			})
		})
	}
}
