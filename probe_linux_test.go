package peercred_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// serve-netns PATH: in a new network namespace (start it in a new
	// user namespace), listen on the socket file PATH with package net,
	// say "ready", then say "accepted" for every connection.
	testutil.Register("serve-netns", func(args []string) int {
		runtime.LockOSThread() // the socket is made by this thread, in its namespace
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			fmt.Println("error: unshare:", err)
			return 1
		}
		l, err := net.Listen("unix", args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("ready")
		for {
			c, err := l.Accept()
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			fmt.Println("accepted")
			c.Close()
		}
	})
}

// A second Listen on a live socket fails, and the first server does not see
// it as a client: Listen finds the listener in the kernel's socket table
// instead of connecting to it. The first connection the first server
// accepts after the failed Listens is the marker we send, not a probe.
func TestSecondListenIsNoClient(t *testing.T) {
	ctx := context.Background()
	dir := testutil.SocketDir(t)
	for _, first := range []struct {
		name   string
		listen func(path string) (net.Listener, error)
	}{
		{"a peercred listener", func(p string) (net.Listener, error) { return peercred.Listen(ctx, p) }},
		{"a peercred listener with a mode", func(p string) (net.Listener, error) {
			return (&peercred.ListenConfig{Mode: 0o600}).Listen(ctx, p)
		}},
		{"a net listener", func(p string) (net.Listener, error) { return net.Listen("unix", p) }},
	} {
		t.Run(first.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("live%d", len(first.name)))
			l1, err := first.listen(path)
			if err != nil {
				t.Fatal(err)
			}
			defer l1.Close()
			for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0o600}, {Network: "unixpacket"}} {
				l2, err := lc.Listen(ctx, path)
				if err == nil {
					l2.Close()
				}
				if !errors.Is(err, syscall.EADDRINUSE) {
					t.Errorf("second Listen (%+v) on a live socket: %v, want EADDRINUSE", *lc, err)
				}
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatalf("the first listener is gone: %v", err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("marker\n")); err != nil {
				t.Fatal(err)
			}
			if ul, ok := l1.(interface{ SetDeadline(time.Time) error }); ok {
				ul.SetDeadline(time.Now().Add(time.Minute)) // a broken test fails instead of hanging
			}
			sc, err := l1.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer sc.Close()
			line, err := bufio.NewReader(sc).ReadString('\n')
			if line != "marker\n" {
				t.Errorf("the first connection the first server accepted read %q, %v: want our marker, not a probe of the second Listen", line, err)
			}
		})
	}
}

// A server in another network namespace is not in our socket table, but
// its socket file is shared through the file system and clients here can
// connect: Listen still finds it in use (with connect(2)), and never
// removes it as stale.
func TestSecondListenSeesServerInOtherNetNS(t *testing.T) {
	testutil.RequireUserNS(t)
	path := filepath.Join(testutil.SocketDir(t), "s")
	srv := testutil.Start(t, "serve-netns", testutil.Options{Args: []string{path}, UserNS: true})
	if line := srv.Line(t); line != "ready" {
		t.Fatalf("server said %q", line)
	}
	for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0o600}} {
		_, err := lc.Listen(context.Background(), path)
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("Listen (mode %v) on a live socket of another network namespace: %v, want EADDRINUSE", lc.Mode, err)
		}
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("the live socket file was removed: %v", err)
		}
	}
	c, err := peercred.Dial(context.Background(), path)
	if err != nil {
		t.Fatalf("the server in the other namespace is unreachable: %v", err)
	}
	c.Close()
}
