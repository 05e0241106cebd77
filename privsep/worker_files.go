//go:build linux

package privsep

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"syscall"
	"time"

	"github.com/peercred/peercred/internal/wire"
)

// Open opens name for reading, as os.Open: the parent opens it, as a rule of
// the role's [Policy.Files] allows, and sends the descriptor.
func (w *Worker) Open(name string) (*os.File, error) { return w.OpenFile(name, os.O_RDONLY, 0) }

// Create creates or truncates name, mode 0666 (before the parent's umask);
// it needs a rule with Create.
func (w *Worker) Create(name string) (*os.File, error) {
	return w.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// OpenFile opens name with flag (os.O_RDONLY, ...), creating it with perm
// if the flags and the policy say so.
//
// OpenFile and the other file methods of Worker (Open, Create, ReadFile,
// Stat, Lstat, Access, Readlink, Mkdir, Remove, Rename) reach files through
// the parent, in the manner of Chromium's
// syscall broker: the parent opens, stats, creates... the file with its own
// privileges as the role's [Policy.Files] allow, and sends back the result
// (an open file, metadata). A worker confined with Landlock and seccomp
// reaches no other file, and these only as the policy says. An unconfined
// worker reaches the files its own UID may reach besides, and what a
// descriptor it received allows is the kernel's business, not the rule's:
// it may reopen one through /proc/self/fd/N with any access the file's
// mode grants its UID (writing a 0666 file a rule without Write gave it to
// read, in a directory it could not search itself).
//
// The methods mirror package os. Paths must be absolute and clean. Errors
// are *fs.PathError (*os.LinkError for Rename); a policy refusal matches
// fs.ErrPermission and [ErrDenied] with errors.Is, the kernel's answer its
// errno (fs.ErrNotExist, ...). Symbolic links are never followed: Stat,
// Open and the others refuse a path with one, Lstat and Readlink see it.
// They are safe for concurrent use and end with the worker's context
// ([Worker.Context]). They travel over the worker's connection to its
// parent, as [Worker.Call]'s do: many may be in flight at once, they cost
// the parent no thread of their own, and a worker that stops reading their
// replies meets Config.WriteTimeout.
func (w *Worker) OpenFile(name string, flag int, perm fs.FileMode) (*os.File, error) {
	_, f, err := w.fileCall("open", opFileOpen, &wire.FileRequest{Flag: flag | syscall.O_CLOEXEC, Mode: uint32(perm.Perm()), Path: name})
	return f, err
}

// ReadFile reads the whole of name.
func (w *Worker) ReadFile(name string) ([]byte, error) {
	f, err := w.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// Stat returns name's metadata.
func (w *Worker) Stat(name string) (fs.FileInfo, error) { return w.stat("stat", opFileStat, name) }

// Lstat returns name's metadata, of the link itself if it is one.
func (w *Worker) Lstat(name string) (fs.FileInfo, error) { return w.stat("lstat", opFileLstat, name) }

func (w *Worker) stat(opName, op, name string) (fs.FileInfo, error) {
	data, _, err := w.fileCall(opName, op, &wire.FileRequest{Path: name})
	if err != nil {
		return nil, err
	}
	st, err := wire.DecodeStat(data)
	if err != nil {
		return nil, &fs.PathError{Op: opName, Path: name, Err: fmt.Errorf("%w: %w", ErrProtocol, err)}
	}
	return newFileInfo(path.Base(name), &st), nil
}

// Access reports (nil) whether name exists and the policy allows mode on
// it: a combination of R_OK (4) and W_OK (2), or F_OK (0). The parent grants
// no execution: X_OK is refused.
func (w *Worker) Access(name string, mode uint32) error {
	_, _, err := w.fileCall("access", opFileAccess, &wire.FileRequest{Flag: int(mode), Path: name})
	return err
}

// Readlink returns the target of the symbolic link name.
func (w *Worker) Readlink(name string) (string, error) {
	data, _, err := w.fileCall("readlink", opFileReadlink, &wire.FileRequest{Path: name})
	return string(data), err
}

// Mkdir makes the directory name with perm.
func (w *Worker) Mkdir(name string, perm fs.FileMode) error {
	_, _, err := w.fileCall("mkdir", opFileMkdir, &wire.FileRequest{Mode: uint32(perm.Perm()), Path: name})
	return err
}

// Remove removes the file or empty directory name.
func (w *Worker) Remove(name string) error {
	_, _, err := w.fileCall("remove", opFileRemove, &wire.FileRequest{Path: name})
	return err
}

// Rename renames oldpath to newpath; both need a rule with Create.
func (w *Worker) Rename(oldpath, newpath string) error {
	_, _, err := w.fileCall("rename", opFileRename, &wire.FileRequest{Path: oldpath, Path2: newpath})
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: pe.Err}
	}
	return err
}

// fileCall runs a file operation and returns the result's data and, for
// an open, the file, or a *fs.PathError.
func (w *Worker) fileCall(opName, op string, r *wire.FileRequest) ([]byte, *os.File, error) {
	fail := func(err error) ([]byte, *os.File, error) {
		return nil, nil, &fs.PathError{Op: opName, Path: r.Path, Err: err}
	}
	req := wire.AppendFile(make([]byte, 0, 10+len(r.Path)+len(r.Path2)), r) // one allocation
	payload, files, err := w.Call(w.ctx, op, req)
	if err != nil {
		var ce *CallError
		if errors.As(err, &ce) && ce.Code == wire.CodeDenied {
			return fail(&fileDenied{ce})
		}
		return fail(err)
	}
	var (
		errno uint32
		data  []byte
	)
	if len(payload) != 0 { // empty: success, no data (the parent's fileOK)
		errno, data, err = wire.DecodeFileResult(payload)
	}
	want := 0 // descriptors
	if op == opFileOpen && errno == 0 {
		want = 1
	}
	if err != nil || len(files) != want {
		closeAll(files)
		if err == nil {
			err = fmt.Errorf("errno %d with %d descriptors, want %d", errno, len(files), want)
		}
		return fail(fmt.Errorf("%w: %w", ErrProtocol, err))
	}
	if errno != 0 {
		return fail(syscall.Errno(errno))
	}
	if want == 1 {
		return data, files[0], nil
	}
	return data, nil, nil
}

// fileDenied is a policy refusal: fs.ErrPermission, and the *CallError
// (ErrDenied) beneath.
type fileDenied struct{ ce *CallError }

func (e *fileDenied) Error() string        { return e.ce.Msg }
func (e *fileDenied) Unwrap() error        { return e.ce }
func (e *fileDenied) Is(target error) bool { return target == fs.ErrPermission }

// fileInfo is a fs.FileInfo from the parent's stat; Sys returns a
// *syscall.Stat_t.
type fileInfo struct {
	name string
	mode fs.FileMode
	sys  syscall.Stat_t
}

func newFileInfo(name string, st *wire.Stat) *fileInfo {
	fi := &fileInfo{name: name, mode: fs.FileMode(st.Mode & 0o777)}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFBLK:
		fi.mode |= fs.ModeDevice
	case syscall.S_IFCHR:
		fi.mode |= fs.ModeDevice | fs.ModeCharDevice
	case syscall.S_IFDIR:
		fi.mode |= fs.ModeDir
	case syscall.S_IFIFO:
		fi.mode |= fs.ModeNamedPipe
	case syscall.S_IFLNK:
		fi.mode |= fs.ModeSymlink
	case syscall.S_IFSOCK:
		fi.mode |= fs.ModeSocket
	}
	if st.Mode&syscall.S_ISGID != 0 {
		fi.mode |= fs.ModeSetgid
	}
	if st.Mode&syscall.S_ISUID != 0 {
		fi.mode |= fs.ModeSetuid
	}
	if st.Mode&syscall.S_ISVTX != 0 {
		fi.mode |= fs.ModeSticky
	}
	s := &fi.sys
	// The field types of syscall.Stat_t differ between architectures.
	set(&s.Dev, st.Dev)
	set(&s.Ino, st.Ino)
	set(&s.Nlink, st.Nlink)
	set(&s.Mode, st.Mode)
	set(&s.Uid, st.UID)
	set(&s.Gid, st.GID)
	set(&s.Rdev, st.Rdev)
	set(&s.Size, st.Size)
	set(&s.Blksize, st.Blksize)
	set(&s.Blocks, st.Blocks)
	set(&s.Atim.Sec, st.Atime.Sec)
	set(&s.Atim.Nsec, st.Atime.Nsec)
	set(&s.Mtim.Sec, st.Mtime.Sec)
	set(&s.Mtim.Nsec, st.Mtime.Nsec)
	set(&s.Ctim.Sec, st.Ctime.Sec)
	set(&s.Ctim.Nsec, st.Ctime.Nsec)
	return fi
}

func set[T, V ~int32 | ~int64 | ~uint32 | ~uint64](p *T, v V) { *p = T(v) }

func (fi *fileInfo) Name() string      { return fi.name }
func (fi *fileInfo) Size() int64       { return int64(fi.sys.Size) }
func (fi *fileInfo) Mode() fs.FileMode { return fi.mode }
func (fi *fileInfo) IsDir() bool       { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any          { return &fi.sys }
func (fi *fileInfo) ModTime() time.Time {
	return time.Unix(int64(fi.sys.Mtim.Sec), int64(fi.sys.Mtim.Nsec))
}
