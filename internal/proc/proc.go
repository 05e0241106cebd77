// Package proc reads what peercred needs of a process from Linux's /proc:
// the fields of /proc/PID/stat that tell a process apart from a later one
// with the same PID (its start time) and link it to its parent, and the
// fields of /proc/PID/status (its IDs, groups, no_new_privs and seccomp
// mode: see Status).
//
// It is the one parser of /proc/PID/stat in peercred. The file is written
// by the kernel, but its second field, the command name, is chosen by the
// process (prctl(PR_SET_NAME), or the name of the file it executes) and may
// hold spaces, parentheses and newlines: a process could make a naive
// parser read fields of its choice. ParseStat counts the fields after the
// last ')', which the command name (at most 15 bytes, in parentheses) can
// never follow.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Stat holds the fields of /proc/PID/stat that peercred uses (see proc(5)).
type Stat struct {
	PID   int  // field 1: the process ID, in the namespace of the /proc read
	State byte // field 3: R, S, D, Z, T, t, X, I...
	PPID  int  // field 4: the parent's process ID, 0 for none
	// StartTime is field 22: the time the process started, in clock ticks
	// after boot. With the PID, it names one process for good: a later
	// process that reuses the PID starts later.
	StartTime uint64
}

// startTimeField is the index of starttime among the fields after the
// command name: field 22 of the line, the 20th after field 2.
const startTimeField = 22 - 3

// ParseStat parses the contents of a /proc/PID/stat file.
func ParseStat(b []byte) (Stat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return Stat{}, errors.New("no command name in parentheses")
	}
	pid, err := parseInt(bytes.TrimSuffix(b[:open], []byte(" ")))
	if err != nil {
		return Stat{}, fmt.Errorf("pid: %w", err)
	}
	var (
		st   = Stat{PID: pid}
		rest = b[closing+1:]
		n    int
	)
	for n <= startTimeField {
		var f []byte
		if f, rest = nextField(rest); f == nil {
			return Stat{}, fmt.Errorf("%d fields after the command name, want at least %d", n, startTimeField+1)
		}
		switch n {
		case 0:
			if len(f) != 1 {
				return Stat{}, fmt.Errorf("state %q is not one letter", f)
			}
			st.State = f[0]
		case 1:
			if st.PPID, err = parseInt(f); err != nil {
				return Stat{}, fmt.Errorf("ppid: %w", err)
			}
		case startTimeField:
			if st.StartTime, err = strconv.ParseUint(string(f), 10, 64); err != nil {
				return Stat{}, fmt.Errorf("starttime: %w", err)
			}
		}
		n++
	}
	return st, nil
}

// ReadStat reads and parses /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	name := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(name)
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", name, err)
	}
	return st, nil
}

// nextField returns the first field of b, separated by spaces (the kernel
// writes single spaces, and a newline at the end), and what follows it; nil
// when there is none.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\n') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\n' {
		j++
	}
	if i == j {
		return nil, nil
	}
	return b[i:j], b[j:]
}

// parseInt parses a non-negative decimal process ID.
func parseInt(b []byte) (int, error) {
	n, err := strconv.ParseUint(string(b), 10, 31)
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
