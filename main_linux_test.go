package peercred_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// Helper roles: the test binary re-executed by testutil as a peer process.
func init() {
	// connect ADDR: connect, say "connected", then hold the connection
	// until the server closes it. Exit 0 either way.
	testutil.Register("connect", func(args []string) int {
		c, err := net.Dial("unix", args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		fmt.Println("connected")
		io.Copy(io.Discard, c)
		return 0
	})
	// serve ADDR: listen with peercred, say "ready", accept one conn and
	// print what the kernel says about its peer as "pid uid gid".
	testutil.Register("serve", func(args []string) int {
		l, err := peercred.Listen(context.Background(), args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer l.Close()
		fmt.Println("ready")
		c, err := l.AcceptPeerCred()
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		cr := c.Cred()
		fmt.Println(cr.PID, cr.UID, cr.GID)
		io.Copy(io.Discard, c)
		return 0
	})
	// peerof FD: print what Get says about the peer of the inherited socket
	// FD, as "pid uid gid".
	testutil.Register("peerof", func(args []string) int {
		fd, _ := strconv.Atoi(args[0])
		f := os.NewFile(uintptr(fd), "inherited")
		c, err := peercred.FileConn(f)
		f.Close()
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		cr := c.Cred()
		fmt.Println(cr.PID, cr.UID, cr.GID)
		io.Copy(io.Discard, c)
		return 0
	})
	// recvfiles: read one message with descriptors from fd 3 and, for each
	// file, print "cloexec=BOOL content" (content read from offset 0).
	testutil.Register("recvfiles", func(args []string) int {
		f := os.NewFile(3, "inherited")
		c, err := peercred.FileConn(f)
		f.Close()
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		buf := make([]byte, 64)
		n, files, err := c.ReadWithFiles(buf)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Printf("data %q\n", buf[:n])
		for _, f := range files {
			fmt.Printf("cloexec=%v %s\n", isCloexec(f), readAll(f))
			f.Close()
		}
		return 0
	})
}

func TestMain(m *testing.M) { testutil.Main(m) }

// readAll reads f from the start and returns its content.
func readAll(f *os.File) string {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return "error: " + err.Error()
	}
	return string(b)
}

// parseCred parses a "pid uid gid" line printed by a helper.
func parseCred(t *testing.T, line string) (pid int, uid, gid uint32) {
	t.Helper()
	if _, err := fmt.Sscan(line, &pid, &uid, &gid); err != nil {
		t.Fatalf("helper printed %q, want \"pid uid gid\": %v", line, err)
	}
	return pid, uid, gid
}

// listen starts a peercred listener on a fresh path and closes it at cleanup.
func listen(t *testing.T, lc *peercred.ListenConfig) *peercred.Listener {
	t.Helper()
	path := testutil.SocketDir(t) + "/s"
	l, err := lc.Listen(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// acceptTimeout accepts with a deadline so a broken test fails instead of hanging.
func acceptTimeout(t *testing.T, l *peercred.Listener) *peercred.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openFDs counts this process's open descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory being read
}

// isCloexec reports whether the descriptor of f (an *os.File or a net.Conn)
// has FD_CLOEXEC set.
func isCloexec(f syscall.Conn) bool {
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var flags int
	var ferr error
	if err := rc.Control(func(fd uintptr) { flags, ferr = unix.FcntlInt(fd, unix.F_GETFD, 0) }); err != nil || ferr != nil {
		return false
	}
	return flags&unix.FD_CLOEXEC != 0
}

// noGoroutineLeak fails the test if, within a second, the number of
// goroutines does not come back to at most before. (Goroutines of earlier
// tests may end meanwhile, so fewer is fine.)
func noGoroutineLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("goroutines: %d before, %d after", before, n)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
