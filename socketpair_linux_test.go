package peercred_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// socketpair returns a connected pair as two Conns, closed at cleanup.
func socketpair(t *testing.T, sotype int) (a, b *peercred.Conn) {
	t.Helper()
	a, f, err := peercred.Socketpair(sotype)
	if err != nil {
		t.Fatal(err)
	}
	b, err = peercred.FileConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// tempFiles creates n files with distinct contents, opened for reading.
func tempFiles(t *testing.T, n int) []*os.File {
	t.Helper()
	dir := t.TempDir()
	files := make([]*os.File, n)
	for i := range files {
		path := filepath.Join(dir, fmt.Sprint(i))
		if err := os.WriteFile(path, []byte(fmt.Sprintf("file %d", i)), 0600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		files[i] = f
	}
	return files
}

// TestSocketpairReportsCreator pins the kernel fact from DESIGN.md: both ends
// of a socket pair report the process that created it, even when the other
// end is held by a child running as another user.
func TestSocketpairReportsCreator(t *testing.T) {
	testutil.RequireRoot(t)
	local, remote, err := peercred.Socketpair(syscall.SOCK_STREAM)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if !isCloexec(remote) {
		t.Error("remote end is not close-on-exec")
	}
	p := testutil.Start(t, "peerof", testutil.Options{Args: []string{"3"}, As: other, ExtraFiles: []*os.File{remote}})
	remote.Close()

	me := &peercred.Cred{PID: os.Getpid(), UID: 0, GID: 0}
	got, err := peercred.Get(local)
	if err != nil {
		t.Fatal(err)
	}
	if got.PID != me.PID || got.UID != me.UID || got.GID != me.GID {
		t.Errorf("Get(local) = %v, want the creator (pid %d uid 0 gid 0), not the child %d running as 1234", got, me.PID, p.PID())
	}
	// The child, uid 1234, is told that its peer is... itself? No: the creator.
	pid, uid, gid := parseCred(t, p.Line(t))
	if pid != os.Getpid() || uid != 0 || gid != 0 {
		t.Errorf("child sees pid=%d uid=%d gid=%d, want the creator pid=%d uid=0 gid=0", pid, uid, gid, os.Getpid())
	}
}

func TestSocketpairTypes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		sotype int
	}{{"stream", syscall.SOCK_STREAM}, {"seqpacket", syscall.SOCK_SEQPACKET}, {"datagram", syscall.SOCK_DGRAM}} {
		t.Run(tt.name, func(t *testing.T) {
			a, b := socketpair(t, tt.sotype)
			if !isCloexec(a) {
				t.Error("local end is not close-on-exec")
			}
			if _, err := a.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 8)
			n, err := b.Read(buf)
			if err != nil || string(buf[:n]) != "ping" {
				t.Fatalf("read %q, %v", buf[:n], err)
			}
		})
	}
	if _, _, err := peercred.Socketpair(syscall.SOCK_RAW); err == nil {
		t.Error("Socketpair(SOCK_RAW) succeeded")
	}
}

// TestPassThreeFiles sends three files in one message to a child process
// running as another user, which finds them readable and close-on-exec.
func TestPassThreeFiles(t *testing.T) {
	testutil.RequireRoot(t)
	local, remote, err := peercred.Socketpair(syscall.SOCK_SEQPACKET)
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	p := testutil.Start(t, "recvfiles", testutil.Options{As: other, ExtraFiles: []*os.File{remote}})
	remote.Close()
	// The files are root's, mode 0600: the child can read them only
	// through the descriptors it is given.
	files := tempFiles(t, 3)
	if _, err := local.WriteWithFiles([]byte("three"), files...); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	want := []string{`data "three"`, "cloexec=true file 0", "cloexec=true file 1", "cloexec=true file 2"}
	got := strings.Split(strings.TrimSpace(p.Stdout()), "\n")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("child's view (-want +got):\n%s", diff)
	}
}

func TestReadWithFiles(t *testing.T) {
	t.Run("no files", func(t *testing.T) {
		a, b := socketpair(t, syscall.SOCK_SEQPACKET)
		if _, err := a.WriteWithFiles([]byte("plain")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		n, files, err := b.ReadWithFiles(buf)
		if err != nil || string(buf[:n]) != "plain" || files != nil {
			t.Fatalf("ReadWithFiles = %q, %v, %v", buf[:n], files, err)
		}
	})
	t.Run("a message longer than the buffer is an error", func(t *testing.T) {
		a, b := socketpair(t, syscall.SOCK_SEQPACKET)
		before := openFDs(t)
		if _, err := a.WriteWithFiles([]byte("longer than four"), tempFiles(t, 1)...); err != nil {
			t.Fatal(err)
		}
		before++ // the file tempFiles opened
		_, got, err := b.ReadWithFiles(make([]byte, 4))
		if err == nil || !strings.Contains(err.Error(), "MSG_TRUNC") || got != nil {
			t.Fatalf("ReadWithFiles = %v, %v; want a truncation error", got, err)
		}
		// More would be a leak; fewer, a descriptor an earlier test's
		// goroutine closed meanwhile (seen as a normal user).
		if after := openFDs(t); after > before {
			t.Errorf("open descriptors: %d expected, %d after", before, after)
		}
	})
	t.Run("files need data", func(t *testing.T) {
		a, _ := socketpair(t, syscall.SOCK_STREAM)
		if _, err := a.WriteWithFiles(nil, tempFiles(t, 1)...); err == nil {
			t.Error("WriteWithFiles with no data succeeded")
		}
	})
	t.Run("too many descriptors are truncated and closed", func(t *testing.T) {
		a, b := socketpair(t, syscall.SOCK_SEQPACKET)
		files := tempFiles(t, peercred.MaxFiles+4)
		before := openFDs(t)
		if _, err := a.WriteWithFiles([]byte("x"), files...); err != nil {
			t.Fatal(err)
		}
		n, got, err := b.ReadWithFiles(make([]byte, 4))
		if err == nil || !strings.Contains(err.Error(), "MSG_CTRUNC") {
			t.Fatalf("ReadWithFiles = %d, %v, %v; want a truncation error", n, got, err)
		}
		if got != nil {
			t.Errorf("files returned with the error: %v", got)
		}
		if after := openFDs(t); after != before {
			t.Errorf("open descriptors: %d before, %d after a truncated message", before, after)
		}
	})
	t.Run("unexpected control message closes the descriptors", func(t *testing.T) {
		a, b := socketpair(t, syscall.SOCK_SEQPACKET)
		// Turn on SO_PASSCRED on the receiver: every message now also
		// carries SCM_CREDENTIALS, which ReadWithFiles does not expect.
		if err := setPassCred(b); err != nil {
			t.Fatal(err)
		}
		before := openFDs(t)
		if _, err := a.WriteWithFiles([]byte("x"), tempFiles(t, 2)...); err != nil {
			t.Fatal(err)
		}
		before += 2 // the two files tempFiles opened
		_, got, err := b.ReadWithFiles(make([]byte, 4))
		if err == nil || got != nil {
			t.Fatalf("ReadWithFiles = %v, %v; want an error and no files", got, err)
		}
		if after := openFDs(t); after != before {
			t.Errorf("open descriptors: %d expected, %d after", before, after)
		}
	})
}

// TestNoLeakOverDescriptorPasses passes 10,000 descriptors and checks the
// descriptor and goroutine counts come back.
func TestNoLeakOverDescriptorPasses(t *testing.T) {
	a, b := socketpair(t, syscall.SOCK_SEQPACKET)
	f := tempFiles(t, 1)[0]
	buf := make([]byte, 8)
	pass := func() {
		if _, err := a.WriteWithFiles([]byte("f"), f); err != nil {
			t.Fatal(err)
		}
		_, files, err := b.ReadWithFiles(buf)
		if err != nil || len(files) != 1 {
			t.Fatalf("ReadWithFiles: %v, %v", files, err)
		}
		files[0].Close()
	}
	pass()
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	for range 10000 {
		pass()
	}
	if got := openFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after 10,000 passes", fds, got)
	}
	noGoroutineLeak(t, goroutines)
}

func TestPidFD(t *testing.T) {
	testutil.RequireRoot(t)
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	p := testutil.Start(t, "connect", testutil.Options{Args: []string{l.Addr().String()}, As: other})
	c := acceptTimeout(t, l)
	pidfd, err := c.PidFD()
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("kernel without SO_PEERPIDFD: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer pidfd.Close()
	if !isCloexec(pidfd) {
		t.Error("pidfd is not close-on-exec")
	}
	// The kernel says which process the pidfd refers to.
	if got := fdinfoPid(t, pidfd); got != p.PID() {
		t.Errorf("pidfd refers to pid %d, want the peer %d", got, p.PID())
	}
	// Once the peer is gone, the pidfd says so instead of reaching another
	// process that reused the number.
	p.Kill()
	if err := unix.PidfdSendSignal(int(pidfd.Fd()), 0, nil, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("signal 0 through the pidfd of a dead peer: %v, want ESRCH", err)
	}
}

// fdinfoPid reads the Pid: line of a pidfd's /proc/self/fdinfo entry.
func fdinfoPid(t *testing.T, f *os.File) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			var pid int
			fmt.Sscan(v, &pid)
			return pid
		}
	}
	t.Fatalf("no Pid: in fdinfo:\n%s", b)
	return 0
}

func setPassCred(c *peercred.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	}); err != nil {
		return err
	}
	return serr
}
