package testutil

import (
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// Built-in roles of HandedOffConn, run by runRole like any registered one.
const (
	connectPassRole = "testutil.connect-pass"
	idleRole        = "testutil.idle"
)

func init() {
	builtinRoles[connectPassRole] = connectPass
	builtinRoles[idleRole] = func([]string) int {
		time.Sleep(time.Hour) // until killed
		return 0
	}
}

// HandedOffConn plays a client that connects to the Unix socket at path
// (network "unix" or "unixpacket") as opts.As, hands its connection to
// another process and exits: it returns that connection, whose peer
// credentials still name the exited client, and the client's PID, which
// is by then another process's: a helper of the test (its child, running
// the test binary, idle until the test ends) started at that PID with
// [StartAtPID]. Tests of PID reuse use it: whatever looks at the peer's
// PID now finds the new process. It needs root, and fails the test after
// 20 attempts in which another process took the PID first.
func HandedOffConn(t testing.TB, network, path string, opts Options) (net.Conn, int) {
	t.Helper()
	typ := "stream"
	if network == "unixpacket" {
		typ = "seqpacket"
	}
	for range 20 {
		pair, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		syscall.SetNonblock(pair[0], true) // in the poller, for its deadline
		local, remote := os.NewFile(uintptr(pair[0]), "handoff"), os.NewFile(uintptr(pair[1]), "handoff")
		o := opts
		o.Args = []string{typ, path}
		o.ExtraFiles = []*os.File{remote}
		p := Start(t, connectPassRole, o)
		remote.Close()
		f, err := recvFile(local)
		local.Close()
		if err != nil {
			t.Fatalf("testutil: receive the connection from %s: %v", p.desc, err)
		}
		if err := p.Wait(); err != nil { // reaped: its PID is free
			f.Close()
			t.Fatal(err)
		}
		conn, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if StartAtPID(t, p.PID(), idleRole, Options{}) != nil {
			t.Cleanup(func() { conn.Close() })
			return conn, p.PID()
		}
		conn.Close()
	}
	t.Fatal("testutil: no helper got the PID of the exited client in 20 attempts")
	return nil, 0
}

// connectPass connects a socket of type args[0] to args[1] and sends it
// over descriptor 3, then exits without a word on it.
func connectPass(args []string) int {
	typ := syscall.SOCK_STREAM
	if args[0] == "seqpacket" {
		typ = syscall.SOCK_SEQPACKET
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, typ|syscall.SOCK_CLOEXEC, 0)
	if err == nil {
		err = syscall.Connect(fd, &syscall.SockaddrUnix{Name: args[1]})
	}
	if err == nil {
		err = syscall.Sendmsg(3, []byte("c"), syscall.UnixRights(fd), nil, 0)
	}
	if err != nil {
		fmt.Println("error:", err)
		return 1
	}
	return 0
}

// recvFile receives one descriptor over the stream socket f, within 10s.
func recvFile(f *os.File) (*os.File, error) {
	if err := f.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	oob := make([]byte, syscall.CmsgSpace(4))
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = syscall.Recvmsg(int(fd), make([]byte, 1), oob, syscall.MSG_CMSG_CLOEXEC)
		return rerr != syscall.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("no descriptor (%v)", err)
	}
	var fds []int
	for i := range msgs {
		got, _ := syscall.ParseUnixRights(&msgs[i])
		fds = append(fds, got...)
	}
	if len(fds) != 1 {
		for _, fd := range fds { // every descriptor received is closed
			syscall.Close(fd)
		}
		return nil, fmt.Errorf("want 1 descriptor, got %d", len(fds))
	}
	return os.NewFile(uintptr(fds[0]), "handed-off"), nil
}
