//go:build unix && !solaris && !aix

package peercred

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A socket's path is resolved once: Listen opens the directory that holds the
// socket (see openDir) and does every later step through that descriptor or
// through a private directory it makes in it: the stale-socket check and
// removal, bind, chown, chmod, link, and the removal on Close. A user who can
// rename or replace directories on the path (one who owns a directory on it)
// can therefore not make root create, change or remove a file anywhere else.
// How bind and connect reach a name in a directory descriptor is the one
// per-OS part: see bindIn and probeIn in the dirfd_*.go files (on systems
// that cannot, these two resolve the path: dirfd_path.go says what follows).

// socketFile is the socket file Listen created: a name in a directory held
// open, and the file's identity, so that Close removes that file and nothing
// else.
type socketFile struct {
	dir      int    // the socket's directory, opened by openDir
	dirPath  string // the directory as the caller named it: empty or ending in "/"
	name     string // the socket's name in dir
	dev, ino uint64 // the socket file we made; zero until then
}

// listenFile listens on the socket file path. When a mode or owner is asked
// for (or the name is too long for bindIn: maxBindName), the socket is bound
// in a fresh 0700 directory beside path, given its mode and owner there, and
// then hard-linked to path: link(2) never replaces an existing file, and
// nobody can reach the socket before it has its final permissions. It returns the listener and the socket file it made, which
// holds a descriptor of path's directory until its remove method is called.
func listenFile(ctx context.Context, network, path string, mode os.FileMode, uid, gid int) (*net.UnixListener, *socketFile, error) {
	if mode&^os.ModePerm != 0 {
		return nil, nil, listenError(path, fmt.Errorf("mode %v has bits other than permissions", mode))
	}
	if uid <= 0 {
		uid = -1
	}
	if gid <= 0 {
		gid = -1
	}
	dirPath, name := "", path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dirPath, name = path[:i+1], path[i+1:]
	}
	if name == "" || name == "." || name == ".." {
		return nil, nil, listenError(path, fmt.Errorf("%s names a directory, not a socket file", path))
	}
	dir, err := openDir(dirPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil, listenError(path, fmt.Errorf("the socket's directory %s does not exist: %w", dirName(dirPath), err))
		}
		return nil, nil, listenError(path, fmt.Errorf("socket directory: %w", err))
	}
	f := &socketFile{dir: dir, dirPath: dirPath, name: name}
	ul, err := f.listen(ctx, network, mode, uid, gid)
	if err != nil {
		unix.Close(dir)
		return nil, nil, listenError(path, err)
	}
	return ul, f, nil
}

// listen makes the socket file in f's directory and records its identity in
// f. When it fails, it removes what it made wherever it can still find it
// (a private directory that someone renamed stays, empty, under its new name).
func (f *socketFile) listen(ctx context.Context, network string, mode os.FileMode, uid, gid int) (*net.UnixListener, error) {
	stale, err := f.checkStale(ctx, network)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if mode == 0 && uid == -1 && gid == -1 && len(f.name) <= maxBindName {
		// Nothing to apply: bind in place, with the kernel's default mode.
		if stale != nil {
			if err := f.removeStale(stale); err != nil {
				return nil, err
			}
		}
		ul, err := bindIn(ctx, network, f.dir, f.dirPath, f.name)
		if err != nil {
			return nil, err
		}
		// Who can write the directory can swap the socket for another
		// file before this look; Close would then remove that file, a
		// name in the same directory that its owner could remove too.
		if err := unix.Fstatat(f.dir, f.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || uint32(st.Mode)&unix.S_IFMT != unix.S_IFSOCK {
			ul.Close()
			return nil, fmt.Errorf("%s was replaced while listening (%v): %w", f.path(), err, syscall.EADDRINUSE)
		}
		f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
		return ul, nil
	}

	pd, err := newPrivateDir(f.dir, f.dirPath)
	if err != nil {
		return nil, fmt.Errorf("private directory for the socket: %w", err)
	}
	defer pd.remove()
	ul, err := bindIn(ctx, network, pd.fd, pd.path()+"/", "s")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*net.UnixListener, error) {
		ul.Close()
		return nil, err
	}
	// Every change goes through the private directory's descriptor:
	// nobody else can write in it, so "s" is our socket.
	if err := unix.Fstatat(pd.fd, "s", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || uint32(st.Mode)&unix.S_IFMT != unix.S_IFSOCK {
		return fail(fmt.Errorf("the socket is not in the private directory %s (replaced?): %v", pd.path(), err))
	}
	if uid != -1 || gid != -1 {
		if err := unix.Fchownat(pd.fd, "s", uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fail(os.NewSyscallError("fchownat", err))
		}
	}
	if mode != 0 {
		if err := unix.Fchmodat(pd.fd, "s", uint32(mode.Perm()), 0); err != nil {
			return fail(os.NewSyscallError("fchmodat", err))
		}
	}
	if stale != nil {
		if err := f.removeStale(stale); err != nil {
			return fail(err)
		}
	}
	if err := unix.Linkat(pd.fd, "s", f.dir, f.name, 0); err != nil {
		if err == unix.EEXIST {
			// Someone created the path since we looked.
			return fail(fmt.Errorf("%s appeared while listening: %w", f.path(), syscall.EADDRINUSE))
		}
		return fail(&os.LinkError{Op: "linkat", Old: pd.path() + "/s", New: f.path(), Err: err})
	}
	var st2 unix.Stat_t
	if err := unix.Fstatat(f.dir, f.name, &st2, unix.AT_SYMLINK_NOFOLLOW); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino {
		// Not ours after all: leave what is there alone.
		return fail(fmt.Errorf("%s was replaced while listening: %w", f.path(), syscall.EADDRINUSE))
	}
	f.dev, f.ino = uint64(st.Dev), uint64(st.Ino)
	// The listener's own name is the one in the private directory; it is
	// unlinked with the directory, and Close removes the socket file.
	return ul, nil
}

// path is the socket's path as the caller named it, for messages.
func (f *socketFile) path() string { return f.dirPath + f.name }

// remove removes the socket file if the directory still holds the file we
// made under our name, and closes the directory. Only the caller's
// directory is ever touched, and never a directory: unlinkat without
// AT_REMOVEDIR fails on one.
func (f *socketFile) remove() error {
	defer unix.Close(f.dir)
	var st unix.Stat_t
	if err := unix.Fstatat(f.dir, f.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || uint64(st.Dev) != f.dev || uint64(st.Ino) != f.ino {
		return nil // gone or replaced: not ours to remove
	}
	if err := unix.Unlinkat(f.dir, f.name, 0); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "unlinkat", Path: f.path(), Err: err}
	}
	return nil
}

// checkStale looks at the socket's name. It returns nil when nothing is
// there, the file's Stat_t when it is a socket nobody accepts on, and an
// error when it is a live socket (EADDRINUSE), not a socket (EEXIST) or
// cannot be probed. Only a connect(2) refused (ECONNREFUSED) makes a socket
// stale: the socket table (listeningAt) can only say that it is live.
func (f *socketFile) checkStale(ctx context.Context, network string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(f.dir, f.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "fstatat", Path: f.path(), Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%s is %s, not a socket; not removing it: %w",
			f.path(), fileType(modeType(uint32(st.Mode))), fs.ErrExist)
	}
	// Look first in the kernel's table of listening sockets (Linux):
	// finding one bound to this file answers without connecting, so the
	// server does not accept a connection from us and report it as a
	// client. Not finding one proves nothing (a server in another network
	// namespace is not in our table): then ask the socket itself.
	if live, lerr := listeningAt(uint64(st.Dev), uint64(st.Ino)); lerr == nil && live {
		return nil, fmt.Errorf("%s is in use by a listening process: %w", f.path(), syscall.EADDRINUSE)
	}
	err = probeIn(ctx, network, f.dir, f.dirPath, f.name)
	if err == nil || errors.Is(err, syscall.ECONNREFUSED) {
		// The answer is about the file checked above only if it is
		// still there.
		var now unix.Stat_t
		if serr := unix.Fstatat(f.dir, f.name, &now, unix.AT_SYMLINK_NOFOLLOW); serr != nil || now.Dev != st.Dev || now.Ino != st.Ino {
			return nil, fmt.Errorf("cannot tell whether %s is in use: it was replaced while probed: %w", f.path(), syscall.EADDRINUSE)
		}
	}
	switch {
	case err == nil:
		return nil, fmt.Errorf("%s is in use by a listening process: %w", f.path(), syscall.EADDRINUSE)
	case errors.Is(err, syscall.ECONNREFUSED):
		return &st, nil // stale: the socket exists but nobody listens
	case errors.Is(err, syscall.ENOENT):
		return nil, nil // removed since we looked
	default:
		// EAGAIN (a full backlog), EACCES, EPROTOTYPE (a datagram or
		// seqpacket socket): something may be there; leave it.
		return nil, fmt.Errorf("cannot tell whether %s is in use: %w", f.path(), err)
	}
}

// removeStale removes the stale socket if it is still the file that
// checkStale found.
func (f *socketFile) removeStale(stale *unix.Stat_t) error {
	var st unix.Stat_t
	err := unix.Fstatat(f.dir, f.name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "fstatat", Path: f.path(), Err: err}
	}
	if st.Dev != stale.Dev || st.Ino != stale.Ino {
		return fmt.Errorf("%s was replaced while listening: %w", f.path(), syscall.EADDRINUSE)
	}
	if err := unix.Unlinkat(f.dir, f.name, 0); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove stale socket: %w", &os.PathError{Op: "unlinkat", Path: f.path(), Err: err})
	}
	return nil
}

// dirName is the directory dirPath (empty or ending in "/", as in
// socketFile) for messages.
func dirName(dirPath string) string {
	switch dirPath {
	case "":
		return "."
	case "/":
		return "/"
	}
	return strings.TrimSuffix(dirPath, "/")
}

// checkPathLen refuses a socket path longer than bind(2) and connect(2)
// take: sun_path's size less the NUL that ends a path (107 bytes on Linux,
// 103 on the BSDs and macOS). Listen binds through a short name of the
// directory (see bindIn), so it could bind a longer path, but no client
// could connect to it by that path. Abstract names ("@name") are not
// files and are left to bind(2).
func checkPathLen(addr string) error {
	var sa unix.RawSockaddrUnix
	if limit := len(sa.Path) - 1; !strings.HasPrefix(addr, "@") && len(addr) > limit {
		return fmt.Errorf("socket path is %d bytes, over the kernel's limit of %d (sun_path holds %d with the NUL at the end); use a shorter path (a relative one, or a shorter directory): %w",
			len(addr), limit, len(sa.Path), syscall.ENAMETOOLONG)
	}
	return nil
}

// privateDir is a fresh 0700 directory of ours in the socket's directory,
// held open so that later operations do not depend on its name.
type privateDir struct {
	parent     int    // the socket's directory
	parentPath string // its path as the caller named it: empty or ending in "/"
	name       string
	fd         int
	st         unix.Stat_t
}

// newPrivateDir makes a private directory in parent and checks, through
// its descriptor, that it is ours and closed to others.
func newPrivateDir(parent int, parentPath string) (*privateDir, error) {
	pd := &privateDir{parent: parent, parentPath: parentPath}
	for try := 0; ; try++ {
		pd.name = ".pc" + strconv.FormatUint(uint64(rand.Uint32()), 10)
		err := unix.Mkdirat(parent, pd.name, 0o700)
		if err == nil {
			break
		}
		if err != unix.EEXIST || try == 100 {
			return nil, &os.PathError{Op: "mkdirat", Path: pd.path(), Err: err}
		}
	}
	// O_NOFOLLOW: if someone who can write the directory swapped ours
	// for a symlink already, this fails; if for a directory, the checks
	// below do. Ours is then left where they put it, empty.
	fd, err := unix.Openat(parent, pd.name, dirOpenFlags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: pd.path(), Err: err}
	}
	pd.fd = fd
	if err := unix.Fstat(fd, &pd.st); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fstat", err)
	}
	if int(pd.st.Uid) != os.Geteuid() || pd.st.Mode&0o077 != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a private directory of ours (uid %d, mode %#o)", pd.path(), pd.st.Uid, pd.st.Mode&0o7777)
	}
	return pd, nil
}

func (pd *privateDir) path() string { return pd.parentPath + pd.name }

// remove empties the directory and removes it, if its name in the
// socket's directory still names it.
func (pd *privateDir) remove() {
	unix.Unlinkat(pd.fd, "s", 0)
	var st unix.Stat_t
	if unix.Fstatat(pd.parent, pd.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == pd.st.Dev && st.Ino == pd.st.Ino {
		unix.Unlinkat(pd.parent, pd.name, unix.AT_REMOVEDIR)
	}
	unix.Close(pd.fd)
}

// maxSymlinks bounds the symlinks openDir follows, as the kernel's 40.
const maxSymlinks = 40

// openDir opens the directory dir for the steps that follow, without
// trusting what another user can change: it walks dir one component at a
// time and follows a symlink only if root or the effective user owns it.
// Owning a directory on the path gives a user power over what is below it,
// but not the power to lead root elsewhere: the symlink they would swap in
// is theirs, and is refused. Symlinks of the system (/var/run -> /run) and
// of the caller keep working. Refusing every symlink (RESOLVE_NO_SYMLINKS)
// would break those; following any (open(2)) would let the owner of a
// directory on the path choose the directory root works in.
//
// The returned descriptor is close-on-exec; on Linux it is an O_PATH one.
func openDir(dir string) (int, error) {
	start := "."
	if strings.HasPrefix(dir, "/") {
		start = "/"
	}
	fd, err := unix.Open(start, dirOpenFlags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: start, Err: err}
	}
	walked := strings.TrimSuffix(start, ".") // for messages: the path as followed so far
	rest := strings.Split(dir, "/")
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		at := walked + c
		nfd, err := unix.Openat(fd, c, dirOpenFlags|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
			fd, walked = nfd, at+"/"
			continue
		}
		if err != unix.ENOTDIR && err != unix.ELOOP {
			unix.Close(fd)
			return -1, &os.PathError{Op: "openat", Path: at, Err: err}
		}
		target, owner, ok, lerr := readSymlink(fd, c)
		if lerr != nil || !ok {
			unix.Close(fd)
			if lerr == nil {
				lerr = err
			}
			return -1, &os.PathError{Op: "openat", Path: at, Err: lerr}
		}
		if owner != 0 && int(owner) != os.Geteuid() {
			unix.Close(fd)
			return -1, fmt.Errorf("%s is a symlink of uid %d; only symlinks of root or of the listening uid %d are followed: %w",
				at, owner, os.Geteuid(), fs.ErrPermission)
		}
		if links++; links > maxSymlinks {
			unix.Close(fd)
			return -1, &os.PathError{Op: "openat", Path: at, Err: unix.ELOOP}
		}
		if strings.HasPrefix(target, "/") {
			unix.Close(fd)
			if fd, err = unix.Open("/", dirOpenFlags|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				return -1, &os.PathError{Op: "open", Path: "/", Err: err}
			}
			walked = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return fd, nil
}

// readlinkAt reads the symlink name in dir (name "" for a descriptor of
// the link itself, where the OS allows).
func readlinkAt(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := readlinkat(dir, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size >= 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}
