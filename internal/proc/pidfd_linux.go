package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PidFDPid returns the PID that this /proc gives the process of pidfd:
// the "Pid:" line of /proc/self/fdinfo/FD (Linux 5.4+), which procfs
// writes in the numbers of the PID namespace it was mounted for; -1 once
// the process is gone, 0 when it is in no descendant of that namespace.
//
// A caller that reads /proc/PID for a process it holds a pidfd for checks
// that this is PID: otherwise /proc is not that of its PID namespace (a
// process that made a PID namespace of its own and kept the /proc it had),
// and /proc/PID is another process.
func PidFDPid(pidfd int) (int, error) {
	name := "/proc/self/fdinfo/" + strconv.Itoa(pidfd)
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: name, Err: err}
	}
	defer unix.Close(fd)
	// A few short lines: one read gets them all, and read(2) by hand
	// spares the fstat and fcntl an os.File would make.
	var buf [1024]byte
	n, err := unix.Read(fd, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(fd, buf[:])
	}
	if err != nil {
		return 0, &os.PathError{Op: "read", Path: name, Err: err}
	}
	pid, err := FDInfoPid(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	return pid, nil
}

// FDInfoPid returns the number on the "Pid:" line of a pidfd's fdinfo.
func FDInfoPid(b []byte) (int, error) {
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte("\n"))
		if v, ok := bytes.CutPrefix(line, []byte("Pid:")); ok {
			return strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	return 0, errors.New("no Pid line (not a pidfd?)")
}
