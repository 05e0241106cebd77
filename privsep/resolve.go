//go:build linux

// How the parent resolves and opens a worker's path beneath its rule:
// openat2 with RESOLVE_BENEATH, no symbolic or magic link, nothing that
// could block it.

package privsep

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"
)

// resolveFlags are how the parent resolves every path beneath its rule.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// fileAt is a path allowed by a rule: the rule's directory, the path
// relative to it, and, once it was needed, the directory open.
type fileAt struct {
	path string // as asked
	root string // the rule's directory
	rel  string // path relative to root; "." for root itself
	dir  int    // O_PATH descriptor of root; -1 until needed
}

func (at *fileAt) close() {
	if at.dir >= 0 {
		unix.Close(at.dir)
	}
}

// openat opens at.rel beneath the rule's directory. The kernel refuses ".."
// out of it (EXDEV), and any symbolic or magic link (ELOOP): both are
// policy refusals. EAGAIN (a rename raced the resolution) is retried.
//
// It first resolves the whole path from / with no symbolic link allowed
// anywhere: one system call. The path is clean, so it has no "..", and it
// lies beneath the rule's path, so what this resolution finds is what the
// resolution beneath the rule's directory would find. Only if it meets a
// link (which may be in the rule's own path, where links are followed)
// does openat open the rule's directory and resolve beneath it.
func (at *fileAt) openat(flag int, mode uint32) (int, error) {
	if flag&unix.O_CREAT == 0 {
		mode = 0 // openat2 refuses a mode without O_CREAT (EINVAL)
	}
	if at.dir < 0 {
		how := unix.OpenHow{Flags: uint64(flag | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
		for range 8 {
			fd, err := unix.Openat2(unix.AT_FDCWD, at.path, &how)
			switch err {
			case unix.EAGAIN, unix.EINTR:
				continue
			case unix.ELOOP:
			case unix.ENOSYS:
				return -1, fmt.Errorf("openat2 (Linux 5.6): %w", errors.ErrUnsupported)
			default:
				return fd, err
			}
			break
		}
		if err := at.openDir(); err != nil {
			return -1, err
		}
	}
	return openat2Beneath(at.dir, at.rel, at.path, at.root, flag, mode)
}

// openDir opens the rule's directory, following links.
func (at *fileAt) openDir() error {
	if at.dir >= 0 {
		return nil
	}
	dir, err := unix.Open(at.root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%q: rule directory %s: %w", at.path, at.root, err)
	}
	at.dir = dir
	return nil
}

func openat2Beneath(dir int, rel, p, root string, flag int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flag | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveFlags}
	for range 8 {
		fd, err := unix.Openat2(dir, rel, &how)
		switch err {
		case nil:
			return fd, nil
		case unix.EAGAIN, unix.EINTR:
			continue
		case unix.EXDEV:
			return -1, &deniedPath{p, "resolves outside " + root}
		case unix.ELOOP:
			return -1, &deniedPath{p, "has a symbolic link"}
		case unix.ENOSYS:
			return -1, fmt.Errorf("openat2 (Linux 5.6): %w", errors.ErrUnsupported)
		default:
			return -1, err
		}
	}
	return -1, unix.EAGAIN
}

// open opens the file for the peer and returns its descriptor. A file it
// creates belongs to the peer: created with O_EXCL, then chowned through
// its own descriptor.
func (at *fileAt) open(flag int, perm uint32, peer *Peer) (int, error) {
	perm &= 0o777
	if flag&unix.O_CREAT != 0 && os.Geteuid() == 0 {
		fd, err := at.openSafe(flag|unix.O_EXCL, perm, peer)
		if err == nil {
			if err := unix.Fchown(fd, int(peer.UID), int(peer.GID)); err != nil {
				unix.Close(fd)
				return -1, err
			}
			return fd, nil
		}
		if err != unix.EEXIST || flag&unix.O_EXCL != 0 {
			return -1, err
		}
		flag &^= unix.O_CREAT // it exists: open it as it is
	}
	return at.openSafe(flag, perm, peer)
}

// openSafe opens with O_NONBLOCK|O_NOCTTY, so that a FIFO or a device
// planted in the tree cannot hang the parent in open(2) or become its
// terminal, hands out only regular files and directories, and then puts
// the descriptor back in blocking mode unless O_NONBLOCK was asked for. A
// directory goes only to a peer whose root directory is the parent's
// (rootdir.go): a chrooted worker could walk out of its root from it.
func (at *fileAt) openSafe(flag int, perm uint32, peer *Peer) (int, error) {
	fd, err := at.openat(flag|unix.O_NONBLOCK|unix.O_NOCTTY, perm)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if t := st.Mode & unix.S_IFMT; t != unix.S_IFREG && t != unix.S_IFDIR {
		unix.Close(fd)
		return -1, &deniedPath{at.path, fmt.Sprintf("is not a regular file or a directory (mode %#o)", st.Mode)}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := sameRoot(peer); err != nil {
			unix.Close(fd)
			return -1, &deniedPath{at.path, "is a directory, which could lead out of the worker's root directory: " + err.Error()}
		}
	}
	if flag&unix.O_NONBLOCK == 0 {
		// Of the flags F_SETFL sets (O_APPEND, O_ASYNC, O_DIRECT,
		// O_NOATIME, O_NONBLOCK), the open had O_NONBLOCK and, if
		// asked, O_APPEND (openFlags admits none of the others).
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flag&unix.O_APPEND); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, nil
}

// inParent calls fn with the directory holding at's path, open, and the
// path's last element. The rule's directory itself cannot be removed or
// renamed: its parent is outside the rule.
func (at *fileAt) inParent(fn func(dir int, name string) error) error {
	if at.rel == "." {
		return &deniedPath{at.path, "is the rule's own directory"}
	}
	if err := at.openDir(); err != nil {
		return err
	}
	parent, name := path.Split(at.rel)
	if parent == "" {
		return fn(at.dir, name)
	}
	dir, err := openat2Beneath(at.dir, path.Clean(parent), at.path, at.root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	return fn(dir, name)
}

// chownNew gives a directory the parent just made to the peer (when the
// parent is root). It opens it without following links;
// had the peer swapped another directory in meanwhile, it could only be one
// beneath a directory where it may create and remove.
func chownNew(dir int, name string, peer *Peer) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fd, err := openat2Beneath(dir, name, name, "", unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	// A rename racing with us could have put another directory under
	// this name: give away only an empty directory of ours, as mkdir
	// made it.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, err := unix.ReadDirent(fd, buf)
	if err != nil {
		return err
	}
	if _, count, _ := unix.ParseDirent(buf[:n], -1, nil); st.Uid != 0 || st.Nlink != 2 || count != 0 {
		return &deniedPath{name, "was replaced while being created"}
	}
	return unix.Fchown(fd, int(peer.UID), int(peer.GID))
}
