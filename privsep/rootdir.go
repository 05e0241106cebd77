//go:build linux

package privsep

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/peercred/peercred/internal/proc"
	"golang.org/x/sys/unix"
)

// A directory descriptor can be walked from: openat(fd, "..") and
// fchdir(fd) resolve from where the directory is, not from the holder's
// root, so a chrooted process that holds one reaches the whole tree above
// it. The parent therefore hands a directory only to a peer whose root
// directory is its own, where walking leads nowhere a path would not (the
// kernel still checks every step against the peer's credentials, Landlock
// domain and so on). An O_PATH descriptor is walked from the same way; the
// parent never opens with O_PATH (openFlags, files.go).

// sameRoot returns nil if peer's root directory is this process's, or an
// error that says why it is not, or cannot be told.
//
// /proc/PID/root is read under the peer's PID; then its pidfd must still
// show the process there, so that what was read was the peer's and not that
// of a later process that reused the PID.
func sameRoot(peer *Peer) error {
	if peer.PID <= 0 {
		return errors.New("its pid is not visible in our PID namespace")
	}
	if peer.PidFD == nil {
		return fmt.Errorf("pid %d: no pidfd to make sure /proc/%d is still the worker", peer.PID, peer.PID)
	}
	// AT_STATX_DONT_SYNC: a root on a FUSE file system that stopped
	// answering must not hold the parent (device and inode never change).
	var ours, theirs unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, "/", unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &ours); err != nil {
		return os.NewSyscallError("statx /", err)
	}
	root := "/proc/" + strconv.Itoa(peer.PID) + "/root"
	if err := unix.Statx(unix.AT_FDCWD, root, unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &theirs); err != nil {
		return fmt.Errorf("pid %d: %w", peer.PID, os.NewSyscallError("statx "+root, err))
	}
	if err := pidfdAlive(peer.PidFD, peer.PID); err != nil {
		return fmt.Errorf("pid %d exited: %w", peer.PID, err)
	}
	if ours.Dev_major != theirs.Dev_major || ours.Dev_minor != theirs.Dev_minor || ours.Ino != theirs.Ino {
		return fmt.Errorf("pid %d's root directory (dev %d:%d ino %d) is not the parent's (dev %d:%d ino %d): chrooted",
			peer.PID, theirs.Dev_major, theirs.Dev_minor, theirs.Ino, ours.Dev_major, ours.Dev_minor, ours.Ino)
	}
	return nil
}

// pidfdAlive returns nil if the process of pidfd has not been reaped (a
// zombie still holds its PID) and /proc names it pid, else an error: the
// kernel's (ESRCH), or that /proc is not that of our PID namespace (a
// parent that made a PID namespace of its own and kept the /proc it had),
// where /proc/PID is another process.
func pidfdAlive(pidfd *os.File, pid int) error {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		var got int
		if got, serr = proc.PidFDPid(int(fd)); serr != nil {
			return
		}
		if got != pid {
			serr = fmt.Errorf("/proc names it %d, not %d (exited, or /proc is not that of our PID namespace)", got, pid)
			return
		}
		serr = os.NewSyscallError("pidfd_send_signal", unix.PidfdSendSignal(int(fd), 0, nil, 0))
	}); err != nil {
		return err
	}
	return serr
}
