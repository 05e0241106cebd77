package peercred

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/peercred/peercred/internal/proc"
	"golang.org/x/sys/unix"
)

// fileID names a file: its device and inode.
type fileID struct{ dev, ino uint64 }

func (id fileID) String() string {
	return fmt.Sprintf("device %d:%d inode %d", unix.Major(id.dev), unix.Minor(id.dev), id.ino)
}

// statID returns the fileID of the file at path, following links.
//
// AT_STATX_DONT_SYNC: device and inode number never change, and a file
// system that would ask a server for fresh attributes (FUSE, NFS) is not
// asked. A peer can run from a FUSE file system of its own that never
// answers; a stat waiting for it would hold the caller (an accept loop, a
// privsep Claim) for good.
func statID(path string) (fileID, error) {
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &st); err != nil {
		return fileID{}, &os.PathError{Op: "statx", Path: path, Err: err}
	}
	return fileID{unix.Mkdev(st.Dev_major, st.Dev_minor), st.Ino}, nil
}

// procDir returns "/proc/PID" for a PID we can look up.
func procDir(pid int) (string, error) {
	if pid <= 0 {
		return "", errors.New("no pid (peer outside our PID namespace?)")
	}
	return "/proc/" + strconv.Itoa(pid), nil
}

// fsView is what a process resolves paths in: its mount namespace and its
// root directory.
type fsView struct{ mnt, root fileID }

// fsViewOf reads the fsView of the process whose /proc directory is dir.
func fsViewOf(dir string) (fsView, error) {
	mnt, err := statID(dir + "/ns/mnt")
	if err != nil {
		return fsView{}, fmt.Errorf("mount namespace unknown: %w", err)
	}
	root, err := statID(dir + "/root")
	if err != nil {
		return fsView{}, fmt.Errorf("root directory unknown: %w", err)
	}
	return fsView{mnt, root}, nil
}

// checkExecutable is the Authorizer of Executables{allowed, anyNS}: see
// there.
func checkExecutable(c *Cred, allowed []string, anyNS bool) error {
	dir, err := procDir(c.PID)
	if err != nil {
		return fmt.Errorf("pid %d: executable unknown: %w: %w", c.PID, err, ErrUnauthorized)
	}
	// The file the process maps: stat follows the magic link to it, in
	// whatever mount namespace it is, deleted or not.
	exe, err := statID(dir + "/exe")
	if err != nil {
		return fmt.Errorf("pid %d: executable unknown: %w: %w", c.PID, err, ErrUnauthorized)
	}
	// For messages only, and quoted there (%q): the peer chose it, and
	// may have put controls and bidirectional overrides in it.
	exePath, _ := os.Readlink(dir + "/exe")
	var view fsView
	if !anyNS {
		if view, err = fsViewOf(dir); err != nil {
			return fmt.Errorf("pid %d: %w: %w", c.PID, err, ErrUnauthorized)
		}
	}
	// What was read above was the peer's only if the peer still lives.
	if err := peerAlive(c); err != nil {
		return err
	}
	if !anyNS {
		ours, err := fsViewOf("/proc/self")
		if err != nil {
			return fmt.Errorf("pid %d: ours: %w: %w", c.PID, err, ErrUnauthorized)
		}
		if view.mnt != ours.mnt {
			return fmt.Errorf("pid %d runs %q in another mount namespace (mnt inode %d, ours %d), where paths are not ours (refused unless AnyMountNamespace): %w",
				c.PID, exePath, view.mnt.ino, ours.mnt.ino, ErrUnauthorized)
		}
		if view.root != ours.root {
			return fmt.Errorf("pid %d runs %q with another root directory (%v, ours %v), where paths are not ours (refused unless AnyMountNamespace): %w",
				c.PID, exePath, view.root, ours.root, ErrUnauthorized)
		}
	}
	for _, p := range allowed {
		if !filepath.IsAbs(p) {
			continue
		}
		if id, err := statID(p); err == nil && id == exe {
			return nil
		}
	}
	return fmt.Errorf("pid %d executable %q (%v) is not in the allowed list %q: %w", c.PID, exePath, exe, allowed, ErrUnauthorized)
}

// checkDescendant is the Authorizer of DescendantOf(root).
func checkDescendant(c *Cred, root int) error {
	ok, err := descends(c.PID, root)
	if err != nil {
		return fmt.Errorf("pid %d: process tree unknown: %w: %w", c.PID, err, ErrUnauthorized)
	}
	if err := peerAlive(c); err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("pid %d is not pid %d or a descendant of it: %w", c.PID, root, ErrUnauthorized)
	}
	return nil
}

// descends reports whether pid is root or one of its descendants, walking
// the parent links of /proc/PID/stat.
func descends(pid, root int) (bool, error) {
	if _, err := procDir(pid); err != nil {
		return false, err
	}
	for range 4096 { // deeper than any real tree: a loop guard
		if pid == root {
			return true, nil
		}
		if pid <= 1 {
			return false, nil
		}
		ppid, err := parentOf(pid)
		if err != nil {
			return false, err
		}
		pid = ppid
	}
	return false, errors.New("process tree too deep")
}

// parentOf reads the parent PID from /proc/PID/stat.
func parentOf(pid int) (int, error) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return st.PPID, nil
}

// peerAlive returns nil if the peer that c describes has not exited and
// /proc names it by c.PID: then it has held its PID since it connected, and
// what was read from /proc under that PID before the call was its own.
// Otherwise (the peer exited, and its PID may be another process's; or
// /proc is that of another PID namespace, where c.PID names another
// process), or if it cannot tell, it returns a refusal.
//
// It asks the kernel through the connection c was read from: SO_PEERPIDFD
// gives a pidfd for the process recorded at connect (never one found by
// PID); the pidfd's fdinfo in /proc shows the PID /proc gives it; and
// PIDFD_GET_INFO (or a signal 0) fails with ESRCH once that process is
// gone. It cannot tell, and so refuses, for a Cred made by hand, a closed
// connection, and on Linux before 6.5 (no SO_PEERPIDFD).
func peerAlive(c *Cred) error {
	pidfd, err := credPidFD(c)
	if err != nil {
		return fmt.Errorf("pid %d: %w: %w", c.PID, err, ErrUnauthorized)
	}
	defer unix.Close(pidfd)
	if err := procNamesPeer(pidfd, c.PID); err != nil {
		return fmt.Errorf("pid %d: %w: %w", c.PID, err, ErrUnauthorized)
	}
	if _, err := confirmPeer(pidfd, c.PID); err != nil {
		return fmt.Errorf("pid %d: %w: %w", c.PID, err, ErrUnauthorized)
	}
	return nil
}
