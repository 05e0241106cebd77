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

// Names of the file operations.
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

// openFlags are the open flags the parent passes on; any other is refused
// (O_PATH, O_TMPFILE, O_NOATIME, O_ASYNC, O_DIRECT, ...).
const openFlags = unix.O_ACCMODE | unix.O_CREAT | unix.O_EXCL | unix.O_TRUNC | unix.O_APPEND |
	unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_LARGEFILE |
	unix.O_DIRECTORY | unix.O_SYNC | unix.O_DSYNC

// access is what a file operation needs of a [PathRule].
type access uint8

const (
	accessRead   access = iota // always allowed
	accessWrite                // PathRule.Write (or Create)
	accessCreate               // PathRule.Create
)

func (a access) String() string {
	switch a {
	case accessRead:
		return "reading"
	case accessWrite:
		return "writing (PathRule.Write)"
	}
	return "creating (PathRule.Create)"
}

// allows reports whether r allows a.
func (r *PathRule) allows(a access) bool {
	switch a {
	case accessRead:
		return true
	case accessWrite:
		return r.Write || r.Create
	}
	return r.Create
}

// fileOp makes the handler of a file operation of the table (ops.go): it
// decodes the request, asks need what the request needs of a rule, finds
// the rule of the role that allows it, and runs do beneath it. A policy
// refusal is an ErrDenied error (logged by handle with role, pid, uid, op
// and the reason, which names the path); the kernel's answer to an allowed
// operation (such as ENOENT) is a reply with its errno.
func fileOp(need func(r *wire.FileRequest) (access, error), do func(ss *session, at *fileAt, r *wire.FileRequest) (data []byte, fd int, err error)) func(*session, *Request) ([]byte, []*os.File, int, error) {
	return func(ss *session, req *Request) ([]byte, []*os.File, int, error) {
		c := new(fileCall) // one allocation for both
		r, at := &c.r, &c.at
		var err error
		if *r, err = wire.DecodeFile(req.Payload); err != nil {
			return nil, nil, -1, fmt.Errorf("%w: %s: %w", ErrBadRequest, req.Op, err)
		}
		if req.Op != opFileRename && r.Path2 != "" {
			return nil, nil, -1, fmt.Errorf("%w: %q: a second path for %s", ErrBadRequest, r.Path, req.Op)
		}
		a, err := need(r)
		if err != nil {
			return nil, nil, -1, err
		}
		if err := ss.fileRule(at, r.Path, a); err != nil {
			return nil, nil, -1, err
		}
		data, fd, err := do(ss, at, r)
		at.close()
		if err == nil {
			if data == nil {
				return fileOK, nil, fd, nil
			}
			return wire.AppendFileResult(nil, 0, data), nil, fd, nil
		}
		var d *deniedPath
		if errors.As(err, &d) {
			return nil, nil, -1, err
		}
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			return nil, nil, -1, fmt.Errorf("%s %q: %w", req.Op, r.Path, err)
		}
		return wire.AppendFileResult(nil, uint32(errno), nil), nil, -1, nil
	}
}

// fileCall is what a file operation works on: the request, and where it
// is allowed.
type fileCall struct {
	r  wire.FileRequest
	at fileAt
}

// fileOK is the result of a file operation that succeeded with no data:
// an empty payload, which the worker takes for errno 0 and no data (and
// need not copy out of its receive buffer).
var fileOK []byte

// needRead is what reading operations need: any rule.
func needRead(*wire.FileRequest) (access, error) { return accessRead, nil }

// needCreate is what operations on the tree need: Mkdir, Remove, Rename.
func needCreate(*wire.FileRequest) (access, error) { return accessCreate, nil }

// needOpen is what an open needs: its flags say.
func needOpen(r *wire.FileRequest) (access, error) {
	if r.Flag&^openFlags != 0 {
		return 0, fmt.Errorf("%w: open %q: flags %#x not allowed", ErrDenied, r.Path, r.Flag&^openFlags)
	}
	switch {
	case r.Flag&unix.O_ACCMODE == unix.O_ACCMODE:
		return 0, fmt.Errorf("%w: %q: invalid access mode", ErrBadRequest, r.Path)
	case r.Flag&(unix.O_CREAT|unix.O_EXCL) != 0:
		return accessCreate, nil
	case r.Flag&unix.O_ACCMODE != unix.O_RDONLY || r.Flag&(unix.O_TRUNC|unix.O_APPEND) != 0:
		return accessWrite, nil
	}
	return accessRead, nil
}

// needAccess is what access(2) needs: its mode says. The parent grants no
// execution.
func needAccess(r *wire.FileRequest) (access, error) {
	if r.Flag&^(unix.R_OK|unix.W_OK|unix.X_OK) != 0 {
		return 0, fmt.Errorf("%w: %q: access mode %#x", ErrBadRequest, r.Path, r.Flag)
	}
	if r.Flag&unix.X_OK != 0 {
		return 0, fmt.Errorf("%w: %q: X_OK: the parent grants no execution", ErrDenied, r.Path)
	}
	if r.Flag&unix.W_OK != 0 {
		return accessWrite, nil
	}
	return accessRead, nil
}

func doOpen(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	fd, err := at.open(r.Flag, r.Mode, ss.peer)
	return nil, fd, err
}

func doStat(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	return at.stat(unix.O_PATH)
}

func doLstat(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	return at.stat(unix.O_PATH | unix.O_NOFOLLOW)
}

func (at *fileAt) stat(flag int) ([]byte, int, error) {
	fd, err := at.openat(flag, 0)
	if err != nil {
		return nil, -1, err
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	unix.Close(fd)
	if err != nil {
		return nil, -1, err
	}
	return wire.AppendStat(nil, statWire(&st)), -1, nil
}

func doAccess(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	fd, err := at.openat(unix.O_PATH, 0)
	if err == nil {
		unix.Close(fd)
	}
	return nil, -1, err
}

func doReadlink(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	fd, err := at.openat(unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, -1, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return nil, -1, err
		}
		if n < len(buf) {
			return buf[:n], -1, nil
		}
		buf = make([]byte, 2*len(buf))
	}
}

func doMkdir(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	return nil, -1, at.inParent(func(dir int, name string) error {
		if err := unix.Mkdirat(dir, name, r.Mode&0o777); err != nil {
			return err
		}
		return chownNew(dir, name, ss.peer)
	})
}

func doRemove(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	return nil, -1, at.inParent(func(dir int, name string) error {
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
}

func doRename(ss *session, at *fileAt, r *wire.FileRequest) ([]byte, int, error) {
	var to fileAt
	if err := ss.fileRule(&to, r.Path2, accessCreate); err != nil {
		if d, ok := err.(*deniedPath); ok && d.path == r.Path2 {
			d.reason = "new path: " + d.reason
		}
		return nil, -1, err
	}
	defer to.close()
	return nil, -1, at.inParent(func(odir int, oname string) error {
		return to.inParent(func(ndir int, nname string) error {
			return unix.Renameat(odir, oname, ndir, nname)
		})
	})
}

// deniedPath is a refusal met while resolving a path.
type deniedPath struct {
	path, reason string
}

func (e *deniedPath) Error() string {
	return ErrDenied.Error() + ": " + strconv.Quote(e.path) + ": " + e.reason
}
func (e *deniedPath) Unwrap() error { return ErrDenied }

// fileRule finds the first rule of the role that allows a on path p, and
// sets at to p under it. A rule allowed once is used up by this operation.
func (ss *session) fileRule(at *fileAt, p string, a access) error {
	if !cleanAbs(p) {
		return &deniedPath{p, "path must be absolute and clean"}
	}
	var matched *PathRule
	for i := range ss.policy.Files {
		r := &ss.policy.Files[i]
		rel, ok := r.match(p)
		if !ok {
			continue
		}
		if !r.allows(a) {
			if matched == nil {
				matched = r
			}
			continue
		}
		if r.Once {
			if why := ss.takeOnce(onceKey(policyFiles, i)); why != "" {
				return &deniedPath{p, why}
			}
		}
		root := r.Path
		if !r.Beneath {
			root = path.Dir(r.Path)
		}
		*at = fileAt{path: p, root: root, rel: rel, dir: -1}
		return nil
	}
	if matched != nil {
		return &deniedPath{p, fmt.Sprintf("rule %s does not allow %s", matched.Path, a)}
	}
	return &deniedPath{p, fmt.Sprintf("no rule of role %q allows it", ss.peer.Role)}
}

// match reports whether p falls under r, and p relative to the directory r
// is resolved from.
func (r *PathRule) match(p string) (rel string, ok bool) {
	if !cleanAbs(r.Path) {
		return "", false // New refuses such a rule; never match it
	}
	if !r.Beneath {
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
