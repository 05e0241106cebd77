package privsep_test

import (
	"bufio"
	"context"
	"fmt"
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

// Listening: a privileged port through the parent, named-socket workers.

func init() {
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
	// A testutil role: a process that is not a worker.
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
}

func TestListenPrivilegedPort(t *testing.T) {
	requireRoot(t, "a port below 1024")
	addr := freePrivilegedPort(t)
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"serve-port": {Listen: []privsep.ListenRule{{Network: "tcp", Address: addr, Once: true}}},
	}})
	p, out := spawn(t, s, privsep.Spec{Role: "serve-port", UID: 1234, GID: 1234, Args: []string{addr}})
	waitLine(t, out, "listening")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if want := "uid 1234\n"; !strings.HasSuffix(line, want) {
		t.Errorf("served %q, want a worker with %q", line, want)
	}
	waitDone(t, p)
}

// freePrivilegedPort returns a loopback address with a free port below 1024.
func freePrivilegedPort(t *testing.T) string {
	t.Helper()
	for port := 900; port < 1024; port++ {
		addr := "127.0.0.1:" + strconv.Itoa(port)
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
			return addr
		}
	}
	t.Fatal("no free port below 1024")
	return ""
}

func TestNamedSocketWorkers(t *testing.T) {
	t.Parallel()
	requireRoot(t, "clients under three other UIDs")
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.AllowUIDs(1234)},
		"other":  {Ops: map[string]privsep.OpRule{"echo": {}}},
	}})
	s.Handle("echo", echo)
	path := testutil.SocketDir(t) + "/privsep.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(1234, 1235)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		uid  uint32
		role string
		want string
	}{
		{"an admitted uid claiming its role is served", 1234, "client", "named"},
		{"a uid the socket refuses is turned away", 1236, "client", "dial:"},
		{"a uid the role's Claim refuses is turned away", 1235, "client", "dial:"},
		{"a role without Claim cannot be claimed", 1234, "other", "dial:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testutil.Start(t, "named-client", testutil.Options{
				Args: []string{path, tt.role},
				As:   &testutil.User{UID: tt.uid, GID: tt.uid},
			})
			c.Wait()
			if got := strings.TrimSpace(c.Stdout()); !strings.HasPrefix(got, tt.want) {
				t.Errorf("client uid %d as %q: %q, want %q...", tt.uid, tt.role, got, tt.want)
			}
		})
	}
	for _, want := range []string{"uid=1236", "uid 1235 is not in the allowed list", "cannot be claimed over a named socket"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestNamedSocketCapsSilentClients: connections that never say hello are
// capped per user, with a log line, and do not lock out another user.
func TestNamedSocketCapsSilentClients(t *testing.T) {
	requireRoot(t, "a client of another user while the test's hogs its share")
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.AllowUIDs(1234)},
	}})
	s.Handle("echo", echo)
	path := testutil.SocketDir(t) + "/named.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AnyOf(peercred.SameUser(), peercred.AllowUIDs(1234))); err != nil {
		t.Fatal(err)
	}
	for range 80 {
		c, err := net.Dial("unixpacket", path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, "the cap's log line", 5*time.Second, func() bool {
		return strings.Contains(log.String(), "connections waiting to say hello already")
	})
	c := testutil.Start(t, "named-client", testutil.Options{Args: []string{path, "client"}, As: &testutil.User{UID: 1234, GID: 1234}})
	c.Wait()
	if got := strings.TrimSpace(c.Stdout()); got != "named" {
		t.Errorf("another user's client while root hogs its share: %q, want named", got)
	}
}
