package peercred_test

import (
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// connect-exit ADDR: connect and exit at once.
	testutil.Register("connect-exit", func(args []string) int {
		c, err := net.Dial("unix", args[0])
		if err != nil {
			return 1
		}
		c.Close()
		return 0
	})
}

// realPath is the path /proc/PID/exe shows for the program name.
func realPath(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.EvalSymlinks(testutil.RequireCommand(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllowExecutables(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireCommand(t, "nc")
	var log syncBuffer
	l := listen(t, &peercred.ListenConfig{
		Mode:      0666,
		Authorize: peercred.AllowExecutables(realPath(t, "socat")),
		Logger:    slog.New(slog.NewTextHandler(&log, nil)),
	})
	path := l.Addr().String()
	block := strings.NewReader("") // stdin that ends: the clients wait for the server
	refused := testutil.Command(t, testutil.Options{As: other, Stdin: block}, "nc", "-U", path)
	admitted := testutil.Command(t, testutil.Options{As: other, Stdin: strings.NewReader("")}, "socat", "-", "UNIX-CONNECT:"+path)
	c := acceptTimeout(t, l)
	if c.Cred().PID != admitted.PID() {
		t.Errorf("accepted pid %d, want socat's %d (nc is %d)", c.Cred().PID, admitted.PID(), refused.PID())
	}
	waitLog(t, l, &log, "is not in the allowed list")
}

func TestDescendantOf(t *testing.T) {
	var log syncBuffer
	l := listen(t, &peercred.ListenConfig{
		Mode:      0666,
		Authorize: peercred.DescendantOf(os.Getpid()),
		Logger:    slog.New(slog.NewTextHandler(&log, nil)),
	})
	path := l.Addr().String()
	// An orphan: its shell exits at once, so it is reparented away from us.
	exe, env := testutil.HelperExec(t, "connect")
	sh := exec.Command("sh", "-c", `(sleep 0.2; exec "$0" "$1" </dev/null) >/dev/null 2>&1 &`, exe, path)
	sh.Env = append(os.Environ(), env...)
	if err := sh.Run(); err != nil {
		t.Fatal(err)
	}
	child := testutil.Start(t, "connect", testutil.Options{Args: []string{path}, As: otherOrSelf()})
	c := acceptTimeout(t, l)
	if c.Cred().PID != child.PID() {
		t.Errorf("accepted pid %d, want our descendant %d", c.Cred().PID, child.PID())
	}
	waitLog(t, l, &log, "is not pid")
}

// TestProcessAuthorizerRefusesExitedPeer: a peer that exited before it was
// accepted cannot be vouched for by /proc (its PID may be reused): refused.
func TestProcessAuthorizerRefusesExitedPeer(t *testing.T) {
	var log syncBuffer
	l := listen(t, &peercred.ListenConfig{
		Mode:      0666,
		Authorize: peercred.DescendantOf(os.Getpid()),
		Logger:    slog.New(slog.NewTextHandler(&log, nil)),
	})
	p := testutil.Start(t, "connect-exit", testutil.Options{Args: []string{l.Addr().String()}})
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if c, err := l.AcceptContext(ctx); err == nil {
		c.Close()
		t.Fatalf("accepted %v, an exited peer", c.Cred())
	}
	waitLog(t, l, &log, "peer refused")
}

// waitLog accepts (and closes) whatever else connects to l until log says
// want: refusals happen inside Accept.
func waitLog(t *testing.T, l *peercred.Listener, log *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second) // a busy machine's
	for !strings.Contains(log.String(), want) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		if c, err := l.AcceptContext(ctx); err == nil {
			t.Errorf("accepted %v, want it refused", c.Cred())
			c.Close()
		}
		cancel()
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", want, log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
