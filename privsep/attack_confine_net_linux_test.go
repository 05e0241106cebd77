package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// Ways around Landlock's TCP port rules (issue 13, attack 5): listen(2) on
// an unbound socket binds an ephemeral port Landlock never sees, and
// MSG_FASTOPEN connects in sendto/sendmsg/sendmmsg, where Landlock's connect
// hook is not called.

func init() {
	// net-paths tries each of its arguments ("name" or "name:addr") and
	// prints "name: result". A successful listen prints the port it got
	// and keeps the socket until the worker is stopped.
	privsep.Register("net-paths", func(ctx context.Context, w *privsep.Worker) error {
		var keep []int
		for _, arg := range w.Args() {
			name, param, _ := strings.Cut(arg, ":")
			res, fd := netPath(name, param)
			if fd >= 0 {
				keep = append(keep, fd)
			}
			fmt.Printf("%s: %s\n", name, res)
		}
		fmt.Println("done")
		if len(keep) > 0 {
			<-ctx.Done()
		}
		for _, fd := range keep {
			unix.Close(fd)
		}
		return nil
	})
}

// netPath tries one path to the network; a listening socket it made is
// returned (fd >= 0) for the caller to keep open.
func netPath(name, param string) (string, int) {
	if name == "listen-unix" {
		// A pathname socket the worker binds, then listens on.
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socket " + errText(err), -1
		}
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: param}); err != nil {
			unix.Close(fd)
			return "bind " + errText(err), -1
		}
		err = unix.Listen(fd, 8)
		unix.Close(fd)
		return errText(err), -1
	}
	if name == "connect-unix" {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return "socket " + errText(err), -1
		}
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: param})
		unix.Close(fd)
		return errText(err), -1
	}
	var sa unix.Sockaddr
	if param != "" {
		ap, err := netip.ParseAddrPort(param)
		if err != nil {
			return err.Error(), -1
		}
		sa = &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "socket " + errText(err), -1
	}
	switch name {
	case "listen-unbound":
		if err := unix.Listen(fd, 8); err != nil {
			unix.Close(fd)
			return errText(err), -1
		}
		got, err := unix.Getsockname(fd)
		if err != nil {
			unix.Close(fd)
			return "getsockname " + errText(err), -1
		}
		return fmt.Sprintf("ok port %d", got.(*unix.SockaddrInet4).Port), fd
	case "connect":
		err = unix.Connect(fd, sa)
	case "fastopen-connect":
		// TCP_FASTOPEN_CONNECT defers the SYN to the first write, but the
		// destination is set, and checked by Landlock, in connect.
		if err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_FASTOPEN_CONNECT, 1); err == nil {
			if err = unix.Connect(fd, sa); err == nil {
				_, err = unix.Write(fd, []byte("x"))
			}
		}
	case "fastopen-sendto":
		err = unix.Sendto(fd, []byte("x"), unix.MSG_FASTOPEN, sa)
	case "fastopen-sendmsg":
		_, err = unix.SendmsgN(fd, []byte("x"), nil, sa, unix.MSG_FASTOPEN)
	case "fastopen-sendmmsg":
		err = sendmmsgFastOpen(fd, sa.(*unix.SockaddrInet4))
	default:
		err = errors.New("unknown path " + name)
	}
	unix.Close(fd)
	return errText(err), -1
}

// sendmmsgFastOpen sends one message to sa with sendmmsg(2) and
// MSG_FASTOPEN in its flags.
func sendmmsgFastOpen(fd int, sa *unix.SockaddrInet4) error {
	raw := unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: sa.Addr}
	raw.Port = uint16(sa.Port>>8) | uint16(sa.Port&0xff)<<8 // network order
	data := []byte("x")
	iov := unix.Iovec{Base: &data[0]}
	iov.SetLen(len(data))
	var msgs [1]unix.Mmsghdr
	msgs[0].Hdr.Name = (*byte)(unsafe.Pointer(&raw))
	msgs[0].Hdr.Namelen = unix.SizeofSockaddrInet4
	msgs[0].Hdr.Iov = &iov
	msgs[0].Hdr.SetIovlen(1)
	_, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), 1, unix.MSG_FASTOPEN, 0, 0)
	return errnoErr(e)
}

// attackSpec is a net-paths worker's spec: as UID 1234 when the test runs
// as root, as the test's own user otherwise (a parent that is not root
// spawns workers as itself; Landlock and seccomp need no privilege).
func attackSpec(c *confine.Config, args ...string) privsep.Spec {
	spec := confinedSpec("net-paths", c, args...)
	if os.Geteuid() != 0 {
		spec.UID, spec.GID = uint32(os.Geteuid()), uint32(os.Getegid())
	}
	return spec
}

// tcpListener is a listener on 127.0.0.1 that the tests' workers may not
// reach; accepted reports whether anything connected to it.
func tcpListener(t *testing.T) (*net.TCPListener, func() bool) {
	t.Helper()
	l, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, func() bool {
		// A blocking connect, sendto or sendmsg that connected has
		// finished its handshake before the worker printed its
		// result: the connection waits in the queue by now.
		l.SetDeadline(time.Now().Add(200 * time.Millisecond))
		c, err := l.Accept()
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
}

// TestConfinedTCPPortsNoWayAround: a worker with the inet promise that may
// connect to port 1 only, and bind no port, in the test's network namespace
// (where it could reach the test's listeners if it were allowed), neither
// listens on an ephemeral port nor connects to a port it was not granted,
// by any of the paths the kernel offers.
func TestConfinedTCPPortsNoWayAround(t *testing.T) {
	t.Parallel()
	requireLandlock(t)
	s, _ := newSupervisor(t, privsep.Config{})
	c := &confine.Config{Promises: []confine.Promise{confine.PromiseInet}, ConnectTCP: []uint16{1}}

	t.Run("listen on an unbound socket", func(t *testing.T) {
		p, out := spawn(t, s, attackSpec(c, "listen-unbound"))
		waitLine(t, out, "done")
		got, _, _ := strings.Cut(out.String(), "\n")
		var port int
		if _, err := fmt.Sscanf(got, "listen-unbound: ok port %d", &port); err == nil {
			conn, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
			if err == nil {
				conn.Close()
				t.Errorf("%s; and it accepted a connection on port %d", got, port)
			} else {
				t.Errorf("%s (a connection to it: %v)", got, err)
			}
		} else if got != "listen-unbound: EPERM" {
			t.Errorf("%s, want EPERM", got)
		}
		if err := p.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})

	for _, tt := range []struct {
		path string
		want string
	}{
		{"connect", "EACCES"},          // Landlock
		{"fastopen-connect", "EACCES"}, // Landlock, at connect
		{"fastopen-sendto", "EPERM"},   // the filter
		{"fastopen-sendmsg", "EPERM"},
		{"fastopen-sendmmsg", "EPERM"},
	} {
		t.Run(tt.path+" to a port not granted", func(t *testing.T) {
			l, accepted := tcpListener(t)
			arg := tt.path + ":" + l.Addr().String()
			p, out := spawn(t, s, attackSpec(c, arg))
			waitDone(t, p)
			if err := p.Err(); err != nil {
				t.Fatalf("worker: %v\n%s", err, out)
			}
			got, _, _ := strings.Cut(out.String(), "\n")
			if want := tt.path + ": " + tt.want; got != want {
				t.Errorf("%s, want %s", got, want)
			}
			if accepted() {
				t.Errorf("%s: the listener on %s, which the worker may not reach, got a connection", tt.path, l.Addr())
			}
		})
	}

	t.Run("DenyKill kills a worker that sends with MSG_FASTOPEN", func(t *testing.T) {
		l, accepted := tcpListener(t)
		kc := *c
		kc.OnDenied = confine.DenyKill
		p, out := spawn(t, s, attackSpec(&kc, "fastopen-sendto:"+l.Addr().String()))
		waitDone(t, p)
		var ee *exec.ExitError
		if err := p.Err(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGSYS {
			t.Errorf("worker ended with %v, want SIGSYS\n%s", p.Err(), out)
		}
		if accepted() {
			t.Errorf("the listener on %s got a connection", l.Addr())
		}
	})
}

// TestConfinedListen: which promises let a worker call listen(2) at all.
// With inet, never: the filter cannot tell a bound socket from an unbound
// one. With unix alone, a Unix socket it bound where Landlock lets it
// create one.
func TestConfinedListen(t *testing.T) {
	requireLandlock(t)
	dir := testutil.SocketDir(t)
	if os.Geteuid() == 0 {
		if err := os.Chown(dir, 1234, 1234); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := newSupervisor(t, privsep.Config{})
	rule := []confine.LandlockRule{{Path: dir, Access: confine.LandlockWrite}}
	for _, tt := range []struct {
		name     string
		promises []confine.Promise
		want     string
	}{
		{"unix", []confine.Promise{confine.PromiseUnix}, "ok"},
		{"unix and inet", []confine.Promise{confine.PromiseUnix, confine.PromiseInet}, "EPERM"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sock := fmt.Sprintf("%s/%d.sock", dir, len(tt.promises))
			p, out := spawn(t, s, attackSpec(&confine.Config{Promises: tt.promises, Landlock: rule}, "listen-unix:"+sock))
			waitDone(t, p)
			if got, want := out.String(), "listen-unix: "+tt.want+"\n"; !strings.HasPrefix(got, want) {
				t.Errorf("%q, want %q", got, want)
			}
		})
	}
}

// TestConfinedPathnameSockets: a worker with the unix promise reaches a
// service's mode-0666 pathname socket (root's, when the test runs as root) only through a LandlockConnect
// rule, where the kernel has Landlock ABI 9; the rule spawns, and changes
// nothing, on an older kernel.
func TestConfinedPathnameSockets(t *testing.T) {
	requireLandlock(t)
	path := testutil.SocketDir(t) + "/root-service.sock"
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	s, _ := newSupervisor(t, privsep.Config{})
	run := func(c *confine.Config) string {
		t.Helper()
		p, out := spawn(t, s, attackSpec(c, "connect-unix:"+path))
		waitDone(t, p)
		got, _, _ := strings.Cut(out.String(), "\n")
		return got
	}
	unixOnly := []confine.Promise{confine.PromiseUnix}
	granted := &confine.Config{Promises: unixOnly,
		Landlock: []confine.LandlockRule{{Path: path, Access: confine.LandlockConnect}}}
	if got := run(granted); got != "connect-unix: ok" {
		t.Errorf("with a LandlockConnect rule for it: %s, want ok", got)
	}
	abi, _ := ll.LandlockGetABIVersion()
	if abi < 9 {
		t.Skipf("kernel Landlock ABI %d: pathname sockets are restricted from ABI 9 (PromiseUnix reaches them all here)", abi)
	}
	if got := run(&confine.Config{Promises: unixOnly}); got != "connect-unix: EACCES" {
		t.Errorf("without a LandlockConnect rule (kernel ABI %d): %s, want EACCES", abi, got)
	}
}
