package privsep

import (
	"errors"
	"syscall"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// TestReleaseAfterFailedDetach: when detach fails before the
// descriptor is set (F_DUPFD_CLOEXEC at RLIMIT_NOFILE: EMFILE), mc.sk is
// left as {fd: 0, refs: 0, gone: false}. spawn.go's fail() then calls
// mc.release(), whose sk.get/sk.put pair drops refs to 0 and closes
// descriptor 0 — whatever it is by then (stdin, or a reused number).
func TestReleaseAfterFailedDetach(t *testing.T) {
	// Put a descriptor of our own at 0, and put the original back after.
	saved, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 10)
	if err != nil {
		t.Skipf("no descriptor 0: %v", err)
	}
	defer func() { unix.Dup3(saved, 0, 0); unix.Close(saved) }()
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup3(efd, 0, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(efd)

	local, remote, err := peercred.Socketpair(syscall.SOCK_SEQPACKET)
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	mc, err := newMsgConn(local, wire.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}

	// Run out of descriptors, as a busy parent may.
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = 256
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	var fill []int
	for {
		fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			break
		}
		fill = append(fill, fd)
	}
	derr := mc.detach()
	for _, fd := range fill {
		unix.Close(fd)
	}
	unix.Setrlimit(unix.RLIMIT_NOFILE, &lim)
	if derr == nil || !errors.Is(derr, unix.EMFILE) {
		t.Fatalf("detach: %v, want EMFILE", derr)
	}

	mc.release() // as spawn.go's fail() does after a failed detach

	if _, err := unix.FcntlInt(0, unix.F_GETFD, 0); err != nil {
		t.Errorf("release after a failed detach closed descriptor 0: %v", err)
	}
}
