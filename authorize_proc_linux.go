package peercred

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// peerExe reads /proc/PID/exe.
func peerExe(pid int) (string, error) {
	if pid <= 0 {
		return "", errors.New("no pid (peer outside our PID namespace?)")
	}
	return os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
}

// descends reports whether pid is root or one of its descendants, walking
// the parent links of /proc/PID/stat.
func descends(pid, root int) (bool, error) {
	if pid <= 0 {
		return false, errors.New("no pid (peer outside our PID namespace?)")
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

// parentOf reads the parent PID from /proc/PID/stat: "pid (comm) S ppid ...",
// where comm may hold spaces and parentheses, so parse after the last ')'.
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	return strconv.Atoi(string(f[1]))
}

// peerAlive returns an error if c is the Cred of a conn a Listener is
// authorizing and that conn's peer has exited: then its PID may have been
// reused, and what was read under it is not the peer's. A peer that is
// still there (or a zombie) held its PID all along. Without SO_PEERPIDFD
// (Linux before 6.5), or for a Cred from elsewhere, it cannot tell.
func peerAlive(c *Cred) error {
	v, ok := authorizing.Load(c)
	if !ok {
		return nil
	}
	conn := v.(*Conn)
	pidfd, err := conn.PidFD()
	if errors.Is(err, errors.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pid %d exited before it was authorized: %v: %w", c.PID, err, ErrUnauthorized)
	}
	defer pidfd.Close()
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), 0, nil, 0) }); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("pid %d exited before it was authorized: %v: %w", c.PID, serr, ErrUnauthorized)
	}
	return nil
}
