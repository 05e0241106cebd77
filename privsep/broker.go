//go:build linux

package privsep

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"

	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// Names of the file broker's operations.
const (
	opFileOpen     = wire.OpFileOpen
	opFileStat     = wire.OpFileStat
	opFileLstat    = wire.OpFileLstat
	opFileAccess   = wire.OpFileAccess
	opFileReadlink = wire.OpFileReadlink
	opFileMkdir    = wire.OpFileMkdir
	opFileRemove   = wire.OpFileRemove
	opFileRename   = wire.OpFileRename
)

func isFileOp(op string) bool { return strings.HasPrefix(op, "file.") }

// brokerOpenFlags are the open flags the broker passes on; any other is
// refused (O_PATH, O_TMPFILE, O_NOATIME, O_ASYNC, O_DIRECT, ...).
const brokerOpenFlags = unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_APPEND |
	unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_LARGEFILE |
	unix.O_DIRECTORY | unix.O_SYNC | unix.O_DSYNC

// resolveFlags are how the broker resolves every path beneath its rule.
const resolveFlags = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// file serves the file broker's operations. A policy refusal is an
// ErrDenied error (logged by handle with role, pid, uid, op and the reason,
// which names the path); the kernel's answer to an allowed operation (such
// as ENOENT) is a reply with its errno.
func (ss *session) file(req *Request) ([]byte, []*os.File, error) {
	r, err := wire.DecodeFile(req.Payload)
	if err != nil || len(req.Files) != 0 {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrBadRequest, req.Op, err)
	}
	need := FileReadOnly
	switch req.Op {
	case opFileStat, opFileLstat, opFileReadlink:
	case opFileOpen:
		if r.Flag&^brokerOpenFlags != 0 {
			return nil, nil, fmt.Errorf("%w: %q: open flags %#x not allowed through the broker", ErrDenied, r.Path, r.Flag&^brokerOpenFlags)
		}
		if r.Flag&unix.O_ACCMODE == unix.O_ACCMODE {
			return nil, nil, fmt.Errorf("%w: %q: invalid access mode", ErrBadRequest, r.Path)
		}
		if r.Flag&unix.O_ACCMODE != unix.O_RDONLY || r.Flag&(unix.O_TRUNC|unix.O_APPEND) != 0 {
			need = FileReadWrite
		}
		if r.Flag&(unix.O_CREAT|unix.O_EXCL) != 0 {
			need = FileReadWriteCreate
		}
	case opFileAccess:
		if r.Flag&^(unix.R_OK|unix.W_OK|unix.X_OK) != 0 {
			return nil, nil, fmt.Errorf("%w: %q: access mode %#x", ErrBadRequest, r.Path, r.Flag)
		}
		if r.Flag&unix.X_OK != 0 {
			return nil, nil, fmt.Errorf("%w: %q: X_OK: the broker grants no execution", ErrDenied, r.Path)
		}
		if r.Flag&unix.W_OK != 0 {
			need = FileReadWrite
		}
	case opFileMkdir, opFileRemove, opFileRename:
		need = FileReadWriteCreate
	default:
		return nil, nil, fmt.Errorf("%w %q", ErrUnknownOp, req.Op)
	}
	if req.Op != opFileRename && r.Path2 != "" {
		return nil, nil, fmt.Errorf("%w: %q: a second path for %s", ErrBadRequest, r.Path, req.Op)
	}
	at, err := ss.fileRule(r.Path, need)
	if err != nil {
		return nil, nil, err
	}
	defer at.close()

	var (
		files []*os.File
		data  []byte
	)
	switch req.Op {
	case opFileOpen:
		var f *os.File
		if f, err = at.open(r.Flag, r.Mode, ss.peer); err == nil {
			files = []*os.File{f}
		}
	case opFileStat, opFileLstat:
		flag := unix.O_PATH
		if req.Op == opFileLstat {
			flag |= unix.O_NOFOLLOW
		}
		var fd int
		if fd, err = at.openat(flag, 0); err == nil {
			var st unix.Stat_t
			err = unix.Fstat(fd, &st)
			unix.Close(fd)
			if err == nil {
				data = wire.AppendStat(nil, statWire(&st))
			}
		}
	case opFileAccess:
		var fd int
		if fd, err = at.openat(unix.O_PATH, 0); err == nil {
			unix.Close(fd)
		}
	case opFileReadlink:
		var fd int
		if fd, err = at.openat(unix.O_PATH|unix.O_NOFOLLOW, 0); err == nil {
			buf := make([]byte, 256)
			for {
				var n int
				n, err = unix.Readlinkat(fd, "", buf)
				if err != nil || n < len(buf) {
					data = buf[:max(n, 0)]
					break
				}
				buf = make([]byte, 2*len(buf))
			}
			unix.Close(fd)
		}
	case opFileMkdir:
		err = at.inParent(func(dir int, name string) error {
			if err := unix.Mkdirat(dir, name, r.Mode&0o777); err != nil {
				return err
			}
			return chownNew(dir, name, ss.peer)
		})
	case opFileRemove:
		err = at.inParent(func(dir int, name string) error {
			err := unix.Unlinkat(dir, name, 0)
			if err == nil {
				return nil
			}
			// As os.Remove: a directory, then.
			err1 := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
			if err1 == nil {
				return nil
			}
			if err1 != unix.ENOTDIR {
				err = err1
			}
			return err
		})
	case opFileRename:
		if !cleanAbs(r.Path2) {
			return nil, nil, fmt.Errorf("%w: %q: new path %q must be absolute and clean", ErrDenied, r.Path, r.Path2)
		}
		to, derr := ss.fileRule(r.Path2, FileReadWriteCreate)
		if derr != nil {
			return nil, nil, derr
		}
		defer to.close()
		err = at.inParent(func(odir int, oname string) error {
			return to.inParent(func(ndir int, nname string) error {
				return unix.Renameat(odir, oname, ndir, nname)
			})
		})
	}
	if err != nil {
		var d *deniedPath
		if errors.As(err, &d) {
			return nil, nil, err
		}
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return nil, nil, fmt.Errorf("%s %q: %w", req.Op, r.Path, err)
		}
		return wire.AppendFileResult(nil, uint32(errno), nil), nil, nil
	}
	return wire.AppendFileResult(nil, 0, data), files, nil
}

// deniedPath is a refusal met while resolving a path.
type deniedPath struct {
	path, reason string
}

func (e *deniedPath) Error() string {
	return ErrDenied.Error() + ": " + strconv.Quote(e.path) + ": " + e.reason
}
func (e *deniedPath) Unwrap() error { return ErrDenied }

// fileAt is a path resolved to a rule: the rule's directory, open, and the
// path relative to it.
type fileAt struct {
	path string // as asked
	root string // the rule's directory
	dir  int    // O_PATH descriptor of root
	rel  string // "." for root itself
}

func (at *fileAt) close() { unix.Close(at.dir) }

// fileRule finds a rule of the role that allows need on path and opens its
// directory.
func (ss *session) fileRule(p string, need FileAccess) (*fileAt, error) {
	if !cleanAbs(p) {
		return nil, &deniedPath{p, "path must be absolute and clean"}
	}
	var matched *FileRule
	for i := range ss.policy.Files {
		r := &ss.policy.Files[i]
		rel, ok := r.match(p)
		if !ok {
			continue
		}
		if r.Access < need {
			matched = r
			continue
		}
		root := r.Path
		if !r.Recursive {
			root = path.Dir(r.Path)
		}
		dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%q: rule directory %s: %w", p, root, err)
		}
		return &fileAt{path: p, root: root, dir: dir, rel: rel}, nil
	}
	if matched != nil {
		return nil, &deniedPath{p, fmt.Sprintf("rule %s allows %s, %s needed", matched.Path, matched.Access, need)}
	}
	return nil, &deniedPath{p, fmt.Sprintf("no rule of role %q allows it", ss.peer.Role)}
}

// match reports whether p falls under r, and p relative to the directory r
// is resolved from.
func (r *FileRule) match(p string) (rel string, ok bool) {
	if !r.Recursive {
		return path.Base(r.Path), p == r.Path
	}
	if p == r.Path {
		return ".", true
	}
	dir := strings.TrimSuffix(r.Path, "/") // "/" is the one clean path with a trailing slash
	if len(p) <= len(dir)+1 || p[len(dir)] != '/' || p[:len(dir)] != dir {
		return "", false
	}
	return p[len(dir)+1:], true
}

func cleanAbs(p string) bool { return path.IsAbs(p) && path.Clean(p) == p }

// openat opens at.rel beneath the rule's directory. The kernel refuses ".."
// out of it (EXDEV), and any symbolic or magic link (ELOOP): both are
// policy refusals. EAGAIN (a rename raced the resolution) is retried.
func (at *fileAt) openat(flag int, mode uint32) (int, error) {
	return openat2Beneath(at.dir, at.rel, at.path, at.root, flag, mode)
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

// open opens the file for the peer. A file it creates belongs to the peer:
// created with O_EXCL, then chowned through its own descriptor.
func (at *fileAt) open(flag int, perm uint32, peer *Peer) (*os.File, error) {
	perm &= 0o777
	if flag&unix.O_CREAT != 0 && os.Geteuid() == 0 {
		fd, err := at.openSafe(flag|unix.O_EXCL, perm, peer)
		if err == nil {
			if err := unix.Fchown(fd, int(peer.UID), int(peer.GID)); err != nil {
				unix.Close(fd)
				return nil, err
			}
			return os.NewFile(uintptr(fd), at.path), nil
		}
		if err != unix.EEXIST || flag&unix.O_EXCL != 0 {
			return nil, err
		}
		flag &^= unix.O_CREAT // it exists: open it as it is
	}
	fd, err := at.openSafe(flag, perm, peer)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), at.path), nil
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
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err == nil {
			_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_NONBLOCK)
		}
		if err != nil {
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

// chownNew gives a directory the broker just made to the peer (when the
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

// statWire converts a stat result for the wire.
func statWire(st *unix.Stat_t) *wire.Stat {
	return &wire.Stat{
		Dev: uint64(st.Dev), Ino: uint64(st.Ino), Nlink: uint64(st.Nlink), Mode: uint64(st.Mode),
		UID: uint64(st.Uid), GID: uint64(st.Gid), Rdev: uint64(st.Rdev),
		Size: int64(st.Size), Blksize: int64(st.Blksize), Blocks: int64(st.Blocks),
		Atime: wire.Timespec{Sec: int64(st.Atim.Sec), Nsec: int64(st.Atim.Nsec)},
		Mtime: wire.Timespec{Sec: int64(st.Mtim.Sec), Nsec: int64(st.Mtim.Nsec)},
		Ctime: wire.Timespec{Sec: int64(st.Ctim.Sec), Nsec: int64(st.Ctim.Nsec)},
	}
}
