package peercred

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"unsafe"

	"github.com/peercred/peercred/internal/proc"
	"golang.org/x/sys/unix"
)

// attest is Cred.Attest on Linux: see there.
func attest(c *Cred, opts AttestOptions) (*Process, error) {
	if c.PID <= 0 {
		return nil, errors.New("no pid (peer outside our PID namespace?)")
	}
	pidfd, err := credPidFD(c)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pidfd)

	// /proc must name the peer by its PID: not so when it is the /proc of
	// another PID namespace (a server in a container, or one that made a
	// PID namespace and kept the old /proc). The pidfd's fdinfo there
	// shows the PID that procfs gives the peer.
	if err := procNamesPeer(pidfd, c.PID); err != nil {
		return nil, err
	}
	return readProcess(pidfd, c.PID, opts)
}

// attestPidFD is AttestPidFD on Linux: see there.
func attestPidFD(f *os.File, opts AttestOptions) (*Process, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var (
		p    *Process
		perr error
	)
	// Control holds f open while it runs: a Close meanwhile waits.
	if err := rc.Control(func(fd uintptr) { p, perr = attestPidFDInt(int(fd), opts) }); err != nil {
		return nil, err
	}
	return p, perr
}

func attestPidFDInt(pidfd int, opts AttestOptions) (*Process, error) {
	// The PID procfs gives the process (-1 once it has exited), which
	// must be the one we give it: procfs must be of our PID namespace.
	pid, err := proc.PidFDPid(pidfd)
	if err != nil {
		return nil, err
	}
	if pid <= 0 {
		return nil, fmt.Errorf("process exited, its pid may be another process's now (fdinfo Pid %d)", pid)
	}
	if err := procIsOurs(); err != nil {
		return nil, err
	}
	return readProcess(pidfd, pid, opts)
}

// procIsOurs returns nil if /proc names this process as we do, so that it
// is the /proc of our PID namespace.
func procIsOurs() error {
	buf := make([]byte, 32)
	n, err := unix.Readlink("/proc/self", buf)
	if err != nil {
		return &os.PathError{Op: "readlink", Path: "/proc/self", Err: err}
	}
	if me := strconv.Itoa(unix.Getpid()); string(buf[:n]) != me {
		return fmt.Errorf("/proc names this process %q, not %s: it is not the /proc of our PID namespace", buf[:n], me)
	}
	return nil
}

// readProcess reads what Process says of the process of pidfd, through
// /proc/pid, once /proc is known to name it pid: by its pidfd's fdinfo
// there, or (when that was read before) because /proc is ours.
func readProcess(pidfd, pid int, opts AttestOptions) (*Process, error) {
	// The directory first, then the proof that the peer lived after it
	// was opened: a PID is not reused while its process lives, so the
	// directory is the peer's. Everything else is read through it, and a
	// /proc/PID directory never shows another process than the one it was
	// opened for (once that one is gone, nothing opens in it).
	dir := "/proc/" + strconv.Itoa(pid)
	dirfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(dirfd)
	cgroupID, err := confirmPeer(pidfd, pid)
	if err != nil {
		return nil, err
	}

	p := &Process{PID: pid, CgroupID: cgroupID}
	st, err := readStatAt(dirfd, dir)
	if err != nil {
		return nil, err
	}
	p.StartTime = st.StartTime
	if err := readExecutable(dirfd, dir, &p.Exe, opts); err != nil {
		return nil, err
	}
	if p.Cgroup, p.SystemdCgroup, err = readCgroupAt(dirfd, dir); err != nil {
		return nil, err
	}
	unitPath := p.Cgroup
	if unitPath == "/" && p.SystemdCgroup != "" {
		unitPath = p.SystemdCgroup
	}
	p.Unit, p.Slice, p.UserUnit, p.UserSlice = SystemdUnit(unitPath)
	p.Container = guessContainer(p.Cgroup)
	if err := readNamespaces(dirfd, dir, &p.Namespaces); err != nil {
		return nil, err
	}

	// Still the same process, still alive: what was read is its own.
	st2, err := readStatAt(dirfd, dir)
	if err != nil {
		return nil, err
	}
	if st2.StartTime != st.StartTime {
		return nil, fmt.Errorf("start time changed from %d to %d while reading: another process", st.StartTime, st2.StartTime)
	}
	if _, err := confirmPeer(pidfd, pid); err != nil {
		return nil, err
	}
	return p, nil
}

// credPidFD returns a pidfd for the peer of the connection c was read
// from (SO_PEERPIDFD). The caller closes it.
func credPidFD(c *Cred) (int, error) {
	if c.sock == nil {
		return -1, errors.New("credentials not read from a connection: nothing confirms the pid is still the peer's")
	}
	rc, err := c.sock.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("cannot confirm the pid is still the peer's: %w", err)
	}
	pidfd := -1
	var perr error
	if err := rc.Control(func(fd uintptr) { pidfd, perr = peerPidFD(int(fd)) }); err != nil {
		return -1, fmt.Errorf("cannot confirm the pid is still the peer's (connection closed?): %w", err)
	}
	if errors.Is(perr, errors.ErrUnsupported) {
		return -1, fmt.Errorf("cannot confirm the pid is still the peer's: %w", perr)
	}
	if perr != nil {
		// Kernels before 6.16 refuse a pidfd for a peer that was reaped.
		return -1, fmt.Errorf("peer exited, its pid may be another process's now: %w", perr)
	}
	return pidfd, nil
}

// confirmPeer returns nil if the process of pidfd is alive (a zombie
// counts: it still holds its PID) and has the PID pid in our namespace. It
// also returns the process's cgroup ID where the kernel reports it
// (PIDFD_GET_INFO, Linux 6.13+), or 0.
func confirmPeer(pidfd, pid int) (cgroupID uint64, err error) {
	info := unix.PidfdInfo{Mask: unix.PIDFD_INFO_PID | unix.PIDFD_INFO_CGROUPID}
	err = ioctlPtr(pidfd, unix.PIDFD_GET_INFO, unsafe.Pointer(&info))
	switch {
	case err == nil:
		if info.Mask&unix.PIDFD_INFO_PID == 0 || int(info.Pid) != pid {
			return 0, fmt.Errorf("the peer's pidfd names pid %d, not %d", info.Pid, pid)
		}
		if info.Tgid != info.Pid {
			return 0, fmt.Errorf("the pidfd names thread %d of process %d, not a process", info.Pid, info.Tgid)
		}
		if info.Mask&unix.PIDFD_INFO_CGROUPID != 0 {
			cgroupID = info.Cgroupid
		}
		return cgroupID, nil
	case err == unix.ESRCH:
		return 0, fmt.Errorf("peer exited, its pid may be another process's now: %w", os.NewSyscallError("ioctl PIDFD_GET_INFO", err))
	case err != unix.ENOTTY && err != unix.EINVAL:
		return 0, os.NewSyscallError("ioctl PIDFD_GET_INFO", err)
	}
	// Before Linux 6.13: a signal 0 fails with ESRCH once the process is
	// gone.
	switch err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err {
	case nil, unix.EPERM: // EPERM: it exists, but is not ours to signal
		return 0, nil
	default:
		return 0, fmt.Errorf("peer exited, its pid may be another process's now: %w", os.NewSyscallError("pidfd_send_signal", err))
	}
}

// procNamesPeer returns nil if /proc shows the process of pidfd as pid
// (see procPid).
func procNamesPeer(pidfd, pid int) error {
	got, err := proc.PidFDPid(pidfd)
	if err != nil {
		return err
	}
	name := "/proc/self/fdinfo/" + strconv.Itoa(pidfd)
	switch {
	case got == pid:
		return nil
	case got <= 0:
		return fmt.Errorf("peer exited, its pid may be another process's now (%s: Pid %d)", name, got)
	default:
		return fmt.Errorf("/proc names the peer %d, not %d: it is not the /proc of our PID namespace", got, pid)
	}
}

// ioctlPtr is ioctl(2) with a pointer argument.
func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if e != 0 {
		return e
	}
	return nil
}

// maxProcFile bounds what is read of a /proc file (stat, cgroup): both
// are a line or a few, the cgroup path at most PATH_MAX per hierarchy.
const maxProcFile = 64 << 10

// readFileAt reads the file name beneath dirfd (whose path is dir, for
// errors; with dirfd AT_FDCWD, the file dir/name), at most maxProcFile
// bytes.
func readFileAt(dirfd int, dir, name string) ([]byte, error) {
	rel := name
	if dirfd == unix.AT_FDCWD {
		rel = dir + "/" + name
	}
	fd, err := unix.Openat(dirfd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir + "/" + name, Err: err}
	}
	defer unix.Close(fd)
	// Read by hand, not through an os.File: procfs files are never
	// non-blocking, and os.NewFile would ask (fcntl) for each.
	b := make([]byte, 0, 512)
	for {
		if len(b) == cap(b) {
			if len(b) > maxProcFile {
				return nil, fmt.Errorf("%s/%s: longer than %d bytes", dir, name, maxProcFile)
			}
			b = slices.Grow(b, len(b))
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: dir + "/" + name, Err: err}
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	if len(b) > maxProcFile {
		return nil, fmt.Errorf("%s/%s: longer than %d bytes", dir, name, maxProcFile)
	}
	return b, nil
}

// readStatAt reads and parses the stat file beneath dirfd.
func readStatAt(dirfd int, dir string) (proc.Stat, error) {
	b, err := readFileAt(dirfd, dir, "stat")
	if err != nil {
		return proc.Stat{}, err
	}
	st, err := proc.ParseStat(b)
	if err != nil {
		return proc.Stat{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	return st, nil
}

// readExecutable fills exe from the exe link beneath dirfd, and its
// SHA-256 if hash is set.
func readExecutable(dirfd int, dir string, exe *Executable, opts AttestOptions) error {
	buf := make([]byte, unix.PathMax)
	n, err := readlinkat(dirfd, "exe", buf)
	if err != nil {
		return &os.PathError{Op: "readlink", Path: dir + "/exe", Err: err}
	}
	if n >= len(buf) {
		return fmt.Errorf("%s/exe: link longer than %d bytes", dir, len(buf)-1)
	}
	exe.Path = string(buf[:n])
	// stat follows the magic link to the file itself; see statID for
	// AT_STATX_DONT_SYNC.
	var st unix.Statx_t
	if err := unix.Statx(dirfd, "exe", unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &st); err != nil {
		return &os.PathError{Op: "statx", Path: dir + "/exe", Err: err}
	}
	exe.Dev, exe.Ino = unix.Mkdev(st.Dev_major, st.Dev_minor), st.Ino
	if !opts.HashExecutable {
		return nil
	}
	max := opts.MaxExecutableSize
	if max <= 0 {
		max = DefaultMaxExecutableSize
	}
	fd, err := unix.Openat(dirfd, "exe", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir + "/exe", Err: err}
	}
	f := os.NewFile(uintptr(fd), dir+"/exe")
	defer f.Close()
	// The same file that was stat'ed: the link cannot change (only
	// prctl PR_SET_MM_EXE_FILE can, see Executables), but compare.
	var fst unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC, unix.STATX_INO|unix.STATX_SIZE, &fst); err != nil {
		return &os.PathError{Op: "statx", Path: f.Name(), Err: err}
	}
	if unix.Mkdev(fst.Dev_major, fst.Dev_minor) != exe.Dev || fst.Ino != exe.Ino {
		return fmt.Errorf("%s/exe: changed while reading it", dir)
	}
	// Refused before reading: any user can run a file of any size.
	if int64(fst.Size) > max {
		return fmt.Errorf("%s/exe: %d bytes, larger than the %d to hash (AttestOptions.MaxExecutableSize)", dir, fst.Size, max)
	}
	h := sha256.New()
	if m, err := io.Copy(h, io.LimitReader(f, max+1)); err != nil {
		return fmt.Errorf("hash %s: %w", f.Name(), err)
	} else if m > max {
		return fmt.Errorf("%s/exe: grew larger than the %d bytes to hash while read", dir, max)
	}
	exe.SHA256 = h.Sum(nil)
	return nil
}

// readCgroupAt returns the cgroup v2 path and the cgroup v1 name=systemd
// path (or "") from the cgroup file beneath dirfd.
func readCgroupAt(dirfd int, dir string) (v2, systemd string, err error) {
	b, err := readFileAt(dirfd, dir, "cgroup")
	if err != nil {
		return "", "", err
	}
	return parseCgroups(b)
}

// parseCgroups returns the path of the "0::PATH" line of a /proc/PID/cgroup
// file, which every kernel with cgroup v2 writes (as "0::/" where nothing
// mounts it), and the path of the "N:name=systemd:PATH" line, or "" if
// there is none.
func parseCgroups(b []byte) (v2, systemd string, err error) {
	found := false
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		_, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return "", "", fmt.Errorf("cgroup line %q has no hierarchy ID", line)
		}
		controllers, p, ok := bytes.Cut(rest, []byte(":"))
		if !ok {
			return "", "", fmt.Errorf("cgroup line %q has no controllers", line)
		}
		if len(p) == 0 || p[0] != '/' {
			return "", "", fmt.Errorf("cgroup path %q is not absolute", p)
		}
		switch {
		case bytes.HasPrefix(line, []byte("0::")):
			if found {
				return "", "", errors.New("two cgroup v2 entries (0::)")
			}
			v2, found = string(p), true
		case string(controllers) == "name=systemd":
			if systemd != "" {
				return "", "", errors.New("two name=systemd entries")
			}
			systemd = string(p)
		}
	}
	if !found {
		return "", "", errors.New("no cgroup v2 entry (0::) in /proc/PID/cgroup")
	}
	return v2, systemd, nil
}

// readNamespaces fills ns from the ns directory beneath dirfd, comparing
// each with ours.
func readNamespaces(dirfd int, dir string, ns *Namespaces) error {
	for _, n := range ns.all() {
		theirs, err := nsID(dirfd, dir, n.name)
		if err != nil {
			return err
		}
		ours, err := nsID(unix.AT_FDCWD, "/proc/self", n.name)
		if err != nil {
			return fmt.Errorf("ours: %w", err)
		}
		n.ns.ID, n.ns.Ours = theirs.ino, theirs == ours
	}
	return nil
}

// nsID returns the fileID of the namespace name beneath dirfd (or dir
// itself when dirfd is AT_FDCWD).
func nsID(dirfd int, dir, name string) (fileID, error) {
	rel := "ns/" + name
	if dirfd == unix.AT_FDCWD {
		rel = dir + "/" + rel
	}
	var st unix.Statx_t
	if err := unix.Statx(dirfd, rel, unix.AT_STATX_DONT_SYNC, unix.STATX_INO, &st); err != nil {
		return fileID{}, &os.PathError{Op: "statx", Path: dir + "/ns/" + name, Err: err}
	}
	return fileID{unix.Mkdev(st.Dev_major, st.Dev_minor), st.Ino}, nil
}
