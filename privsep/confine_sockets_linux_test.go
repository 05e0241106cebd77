package privsep_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// A confined worker's sockets (regression tests for holes a review found);
// review-probe also serves TestBrokerRefusesFIFO (files_linux_test.go).

func init() {
	privsep.Register("review-probe", func(ctx context.Context, w *privsep.Worker) error {
		for _, arg := range w.Args() {
			name, param, _ := strings.Cut(arg, ":")
			fmt.Printf("%s: %s\n", name, reviewProbe(w, name, param))
		}
		return nil
	})
}

func reviewProbe(w *privsep.Worker, name, param string) string {
	switch name {
	case "dgram-sendto":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socketpair " + errText(err)
		}
		defer unix.Close(fds[0])
		defer unix.Close(fds[1])
		return "sent " + errText(unix.Sendto(fds[0], []byte("INJECTED"), 0, &unix.SockaddrUnix{Name: param}))
	case "stream-pair":
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return errText(err)
		}
		unix.Close(fds[0])
		unix.Close(fds[1])
		return "ok"
	case "broker-open":
		start := time.Now()
		f, err := w.Open(param)
		if err == nil {
			f.Close()
		}
		return fmt.Sprintf("%s fast=%v", errText(err), time.Since(start) < 10*time.Second) // a FIFO's open would block for good
	}
	return "?"
}

// TestConfinedWorkerCannotSendToSocketPaths: without the unix promise, a
// datagram socket pair (whose sendto can name any socket path) is refused;
// a stream pair still works.
func TestConfinedWorkerCannotSendToSocketPaths(t *testing.T) {
	requireLandlock(t)
	sock := filepath.Join(testutil.SocketDir(t), "log.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sock, 0o666)
	s, _ := newSupervisor(t, privsep.Config{})
	p, out := spawn(t, s, confinedSpec("review-probe", &confine.Config{}, "dgram-sendto:"+sock, "stream-pair:"))
	waitDone(t, p)
	if !strings.Contains(out.String(), "dgram-sendto: socketpair ") {
		t.Errorf("a confined worker made a datagram pair:\n%s", out)
	}
	if !strings.Contains(out.String(), "stream-pair: ok") {
		t.Errorf("a confined worker could not make a stream pair:\n%s", out)
	}
	buf := make([]byte, 64)
	if n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT); err == nil {
		t.Errorf("the socket received %q from the worker", buf[:n])
	}
}
