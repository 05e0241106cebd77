package privsep_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
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
	// connect-pass PATH: connect to the named socket PATH, hand the
	// connection over the socket at descriptor 3 (SCM_RIGHTS), and exit
	// without a word on it.
	testutil.Register("connect-pass", func(args []string) int {
		if err := connectPass(args[0]); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return 0
	})
	// idle: do nothing until killed.
	testutil.Register("idle", func([]string) int {
		time.Sleep(time.Hour)
		return 0
	})
}

func connectPass(path string) error {
	f3 := os.NewFile(3, "relay")
	relay, err := peercred.FileConn(f3)
	f3.Close()
	if err != nil {
		return err
	}
	defer relay.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	conn := os.NewFile(uintptr(fd), "named")
	defer conn.Close()
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return err
	}
	_, err = relay.WriteWithFiles([]byte("c"), conn)
	return err
}

// relayedConn connects a helper (uid 1234) to the named socket at path; the
// helper hands the connection to us and exits, and another helper, which
// runs the same program as a child of ours, takes its PID. It returns the
// connection and that PID.
func relayedConn(t *testing.T, path string) (net.Conn, int) {
	t.Helper()
	for attempt := 1; attempt <= 20; attempt++ {
		local, remote, err := peercred.Socketpair(syscall.SOCK_STREAM)
		if err != nil {
			t.Fatal(err)
		}
		p := testutil.Start(t, "connect-pass", testutil.Options{
			Args:       []string{path},
			As:         &testutil.User{UID: 1234, GID: 1234},
			ExtraFiles: []*os.File{remote},
		})
		remote.Close()
		local.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, files, err := local.ReadWithFiles(make([]byte, 1))
		local.Close()
		if err != nil || len(files) != 1 {
			t.Fatalf("receive the connection: %v (%d files)", err, len(files))
		}
		if err := p.Wait(); err != nil { // reaped: its PID is free
			t.Fatal(err)
		}
		conn, err := net.FileConn(files[0])
		files[0].Close()
		if err != nil {
			t.Fatal(err)
		}
		if testutil.StartAtPID(t, p.PID(), "idle", testutil.Options{}) != nil {
			t.Cleanup(func() { conn.Close() })
			return conn, p.PID()
		}
		conn.Close()
	}
	t.Fatal("no helper got the PID of an exited client in 20 attempts")
	return nil, 0
}

// TestClaimRefusesReusedPID: a role's Claim that looks at the process
// (DescendantOf, AllowExecutables) is checked, as the listener's
// Authorizer is, against the process that connected, not against whatever
// has its PID when the hello comes. The client connects, hands its
// connection to a relay and exits; a process that the Claim would admit
// takes its PID; the relay's hello is refused.
func TestClaimRefusesReusedPID(t *testing.T) {
	testutil.RequireRoot(t)
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
