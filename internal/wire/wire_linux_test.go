package wire_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/scm"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// seqpacketPair returns both ends of a SOCK_SEQPACKET socket pair, closed
// at cleanup.
func seqpacketPair(t *testing.T) (a, b int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	return fds[0], fds[1]
}

// pipe returns a pipe's two descriptors, closed at cleanup.
func pipe(t *testing.T) []int {
	t.Helper()
	p := make([]int, 2)
	if err := unix.Pipe2(p, unix.O_CLOEXEC); err != nil {
		t.Fatalf("pipe2: %v", err)
	}
	t.Cleanup(func() { scm.CloseAll(p) })
	return p
}

type received struct {
	b     []byte
	fds   []int
	flags int
}

// recv reads one datagram from fd into a buffer of lim.BufferSize() bytes
// with room for oobFDs descriptors. The descriptors that arrive are closed
// at cleanup.
func recv(t *testing.T, fd int, oobFDs int) received {
	t.Helper()
	buf := make([]byte, lim.BufferSize())
	oob := make([]byte, scm.Space(oobFDs))
	n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		t.Fatalf("recvmsg: %v", err)
	}
	fds, _, err := scm.Parse(oob[:oobn])
	t.Cleanup(func() { scm.CloseAll(fds) })
	if err != nil {
		t.Fatalf("parse control messages: %v", err)
	}
	return received{buf[:n], fds, flags}
}

func TestSeqpacketRequestWithDescriptors(t *testing.T) {
	a, b := seqpacketPair(t)
	p := pipe(t)
	want := wire.Msg{Kind: wire.KindRequest, ID: 77, Op: wire.OpFileOpen, Payload: wire.AppendFile(nil, &wire.FileRequest{Path: "/etc/hosts", Flag: unix.O_RDONLY}), NFiles: len(p)}
	datagram, err := wire.Append(nil, &want, lim)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(a, datagram, scm.Rights(p...), nil, 0); err != nil {
		t.Fatalf("sendmsg: %v", err)
	}
	r := recv(t, b, lim.MaxFiles)
	if r.flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		t.Fatalf("recvmsg flags %#x: truncated", r.flags)
	}
	got, err := wire.Decode(r.b, len(r.fds), lim)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received message (-want +got):\n%s", diff)
	}
}

// TestSeqpacketDroppedDescriptors pins the kernel fact nfds is for: with a
// control buffer too small, the kernel drops descriptors and sets
// MSG_CTRUNC, and Decode refuses the message even if the caller ignored
// the flag.
func TestSeqpacketDroppedDescriptors(t *testing.T) {
	a, b := seqpacketPair(t)
	fds := append(pipe(t), pipe(t)...)
	m := wire.Msg{Kind: wire.KindReply, ID: 1, NFiles: len(fds)}
	datagram, err := wire.Append(nil, &m, lim)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Sendmsg(a, datagram, scm.Rights(fds...), nil, 0); err != nil {
		t.Fatalf("sendmsg: %v", err)
	}
	r := recv(t, b, 1) // room for 1 or 2 descriptors (alignment), not 4
	if r.flags&unix.MSG_CTRUNC == 0 {
		t.Errorf("recvmsg flags %#x, want MSG_CTRUNC", r.flags)
	}
	if len(r.fds) >= len(fds) {
		t.Fatalf("%d descriptors arrived, want fewer than %d", len(r.fds), len(fds))
	}
	_, err = wire.Decode(r.b, len(r.fds), lim)
	if !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("Decode with %d of %d descriptors: err = %v, want ErrMalformed", len(r.fds), len(fds), err)
	}
}

// TestSeqpacketOversize checks that a receive buffer of BufferSize bytes
// tells the largest valid message from anything larger: a datagram one
// byte over fills the buffer, a longer one is cut (MSG_TRUNC), and Decode
// refuses both as too large.
func TestSeqpacketOversize(t *testing.T) {
	largest := wire.Msg{Kind: wire.KindRequest, ID: 1, Op: strings.Repeat("o", wire.MaxOpLen), Payload: make([]byte, lim.MaxPayload)}
	valid, err := wire.Append(nil, &largest, lim)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		datagram  []byte
		wantTrunc bool
		wantErr   error
	}{
		{"the largest valid message", valid, false, nil},
		{"one byte more", append(valid[:len(valid):len(valid)], 0), false, wire.ErrTooLarge},
		{"a hundred bytes more", append(valid[:len(valid):len(valid)], make([]byte, 100)...), true, wire.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := seqpacketPair(t)
			if err := unix.Sendmsg(a, tt.datagram, nil, nil, 0); err != nil {
				t.Fatalf("sendmsg of %d bytes: %v", len(tt.datagram), err)
			}
			r := recv(t, b, 0)
			if got := r.flags&unix.MSG_TRUNC != 0; got != tt.wantTrunc {
				t.Errorf("MSG_TRUNC %v, want %v", got, tt.wantTrunc)
			}
			_, err := wire.Decode(r.b, len(r.fds), lim)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Decode of %d received bytes: err = %v, want %v", len(r.b), err, tt.wantErr)
			}
		})
	}
}
