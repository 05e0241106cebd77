package privsep

import (
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// TestPollRecv: a reader that waits in Go's poller (reader.pollRecv, for a
// session's reader while readers outnumber Ps) gets what recvmsg would
// give it, refuses what receive refuses and closes what came with it, and
// leaves the socket blocking for readers that wait in recvmsg; unpoll and
// release give back the descriptor it took.
func TestPollRecv(t *testing.T) {
	local, remote, err := peercred.Socketpair(syscall.SOCK_SEQPACKET)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	mc, err := newMsgConn(local, wire.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.detach(); err != nil {
		t.Fatal(err)
	}
	mc.rd.serve(func() {}, "worker", sweepTick, wire.KindRequest)
	released := false
	defer func() {
		if !released {
			mc.release()
		}
	}()
	detached := fdCount(t)

	// write sends m with files, declaring m.NFiles of them.
	write := func(m *wire.Msg, files ...*os.File) error {
		b, err := wire.Append(nil, m, wire.DefaultLimits)
		if err != nil {
			return err
		}
		var fds []int
		for _, f := range files {
			fds = append(fds, int(f.Fd()))
		}
		var oob []byte
		if len(fds) > 0 {
			oob = unix.UnixRights(fds...)
		}
		return unix.Sendmsg(int(remote.Fd()), b, oob, nil, 0)
	}
	send := func(m *wire.Msg, files ...*os.File) {
		t.Helper()
		m.NFiles = len(files)
		if err := write(m, files...); err != nil {
			t.Fatal(err)
		}
	}
	// recv waits in Go's poller until something comes, as often as it
	// must (each wait ends after hotWait with nothing).
	recv := func() (inMsg, error) {
		t.Helper()
		for start := time.Now(); time.Since(start) < time.Minute; {
			m, ok, err := mc.rd.pollRecv()
			if ok || err != nil {
				return m, err
			}
		}
		t.Fatal("nothing came in a minute")
		return inMsg{}, nil
	}

	// Nothing there: it waits, and says so.
	if m, ok, err := mc.rd.pollRecv(); ok || err != nil || m.Files != nil {
		t.Fatalf("pollRecv with nothing sent: %v, %v, %v", m, ok, err)
	}
	if got := fdCount(t); got != detached+1 {
		t.Errorf("descriptors in Go's poller: %d, want %d (one duplicate)", got, detached+1)
	}
	if fl, err := unix.FcntlInt(uintptr(mc.sk.fd), unix.F_GETFL, 0); err != nil || fl&unix.O_NONBLOCK != 0 {
		t.Errorf("socket flags %#x, %v: want blocking, for readers in recvmsg", fl, err)
	}

	// A request sent while it waits.
	sent := make(chan error, 1)
	go func() {
		time.Sleep(time.Millisecond)
		sent <- write(&wire.Msg{Kind: wire.KindRequest, ID: 7, Op: "echo", Payload: []byte("hello")})
	}()
	m, err := recv()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wire.Msg{Kind: wire.KindRequest, ID: 7, Op: "echo", Payload: []byte("hello")}, m.Msg); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}

	// What the peer may not send, and descriptors it did not declare,
	// are refused as on the other paths, and what came is closed.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name  string
		m     wire.Msg
		files []*os.File
	}{
		{"reply kind", wire.Msg{Kind: wire.KindReply, ID: 1}, nil},
		{"reply kind with descriptors", wire.Msg{Kind: wire.KindReply, ID: 1, NFiles: 2}, []*os.File{r, w}},
		{"undeclared descriptors", wire.Msg{Kind: wire.KindRequest, ID: 2, Op: "echo"}, []*os.File{r, w}},
	} {
		if err := write(&tt.m, tt.files...); err != nil {
			t.Fatal(err)
		}
		_, err := recv()
		var pe *protocolError
		if !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want a protocol violation", tt.name, err)
		}
	}
	r.Close()
	w.Close()
	if got := fdCount(t); got != detached+1 {
		t.Errorf("descriptors after refused messages: %d, want %d: what came was not closed", got, detached+1)
	}

	// Out of Go's poller: the duplicate is gone, and the socket still
	// reads in recvmsg, blocking.
	mc.rd.unpoll(false)
	if got := fdCount(t); got != detached {
		t.Errorf("descriptors after unpoll: %d, want %d", got, detached)
	}
	send(&wire.Msg{Kind: wire.KindRequest, ID: 8, Op: "echo"})
	if m, ok, err := mc.rd.receive(true); !ok || err != nil || m.ID != 8 {
		t.Errorf("receive after unpoll: %v, %v, %v", m.Msg, ok, err)
	}

	// Back in it (a new duplicate, which needs its own deadline: with
	// none, an idle connection's reader would wait there for good),
	// then released as a session's end does.
	back := make(chan struct{})
	go func() {
		mc.rd.pollRecv()
		close(back)
	}()
	select {
	case <-back:
	case <-time.After(time.Minute):
		t.Fatal("pollRecv back in Go's poller did not return with nothing sent: no deadline")
	}
	mc.release()
	released = true
	if got := fdCount(t); got != detached-1 {
		t.Errorf("descriptors after release: %d, want %d (the socket and its duplicate closed)", got, detached-1)
	}
}

func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
