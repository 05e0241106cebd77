package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// Issue 13, attack 6: pathname Unix sockets ignore network namespaces, and
// Landlock before ABI 9 does not restrict connecting to them, so a worker
// confined with the unix promise reaches any socket its UID may write to,
// such as a root service's mode-0666 socket.

func init() {
	// unix-connect connects to the pathname socket in its argument and
	// prints "connect: " and the result: "ok" or the errno's name.
	privsep.Register("unix-connect", func(ctx context.Context, w *privsep.Worker) error {
		res := "ok"
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: w.Args()[0]})
			unix.Close(fd)
		}
		if errno, ok := err.(unix.Errno); ok {
			res = unix.ErrnoName(errno)
		} else if err != nil {
			res = err.Error()
		}
		fmt.Printf("connect: %s\n", res)
		return nil
	})
}

// TestWebWorkerReachesNoUnixSocket: a worker confined as privsepd confines
// its web worker cannot connect to a service's mode-0666 pathname socket:
// as root, root's socket from a worker as nobody in a new network
// namespace; without root, as privsepd does then, the test user's own
// socket from a worker as that user.
func TestWebWorkerReachesNoUnixSocket(t *testing.T) {
	root := os.Geteuid() == 0
	uid, gid := uint32(65534), uint32(65534)
	if !root {
		uid, gid = uint32(os.Geteuid()), uint32(os.Getegid())
	}
	path := filepath.Join(testutil.SocketDir(t), "root-service.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Close()
			accepted <- struct{}{}
		}
	}()

	s := privsep.New(privsep.Config{Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	out := &testutil.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := s.Spawn(ctx, privsep.Spec{
		Role: "unix-connect", UID: uid, GID: gid,
		Confine: webConfine(root), Args: []string{path},
		Stdout: out, Stderr: io.Discard, Env: []string{"GORACE=atexit_sleep_ms=0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-ctx.Done():
		t.Fatal("the worker did not finish")
	}
	if err := p.Err(); err != nil {
		t.Fatalf("worker: %v\n%s", err, out)
	}
	if got, want := out.String(), "connect: EPERM\n"; got != want {
		t.Errorf("worker: %q, want %q (the filter refuses an AF_UNIX socket)", got, want)
	}
	select {
	case <-accepted:
		t.Error("the root service accepted a connection from the web worker")
	default:
	}
}
