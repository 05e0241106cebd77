package privsep

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// checkNotDumpable checks from the kernel that the worker pid, our unreaped
// child, is not dumpable: the kernel owns the entries of /proc/PID of a
// process that is not dumpable to the root of the user namespace its memory
// belongs to (task_dump_owner), and those of a dumpable one to its effective
// UID and GID. (Not /proc/PID itself: world-readable directories keep the
// effective IDs, for ps.) /proc/PID/fd is the door to its descriptors.
//
// A worker without Spec.UserNS lives in our user namespace: not dumpable,
// /proc shows it owned by our root (0:0), or by the overflow IDs if our
// namespace does not map root. With Spec.UserNS, its namespace's root is
// Spec.UID outside, which is also what a dumpable worker shows: /proc cannot
// tell, and nothing is checked. Such a worker does not depend on it: made by
// a root parent, it has capabilities in its namespace that processes of its
// UID outside lack; made by another, its namespace's owner has
// CAP_SYS_PTRACE over it whether it is dumpable or not (doc.go).
func checkNotDumpable(spec *Spec, pid int) error {
	if spec.UserNS {
		return nil
	}
	path := "/proc/" + strconv.Itoa(pid) + "/fd"
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	want, err := rootOwner()
	if err != nil {
		return err
	}
	if st.Uid != want[0] || st.Gid != want[1] {
		return fmt.Errorf("dumpable: %s is owned by %d:%d, want %d:%d (not dumpable: prctl PR_SET_DUMPABLE 0)",
			path, st.Uid, st.Gid, want[0], want[1])
	}
	return nil
}

// rootOwner is the owner, UID and GID, that /proc shows of a process of
// our user namespace that is not dumpable: root, or the overflow IDs when
// the namespace does not map root.
var rootOwner = sync.OnceValues(func() ([2]uint32, error) {
	var owner [2]uint32
	for i, f := range []struct{ idMap, overflow string }{
		{"/proc/self/uid_map", "/proc/sys/kernel/overflowuid"},
		{"/proc/self/gid_map", "/proc/sys/kernel/overflowgid"},
	} {
		mapped, err := mapsRoot(f.idMap)
		if err != nil {
			return owner, err
		}
		if mapped {
			continue // 0
		}
		b, err := os.ReadFile(f.overflow)
		if err != nil {
			return owner, err
		}
		id, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		if err != nil {
			return owner, fmt.Errorf("%s: %w", f.overflow, err)
		}
		owner[i] = uint32(id)
	}
	return owner, nil
})

// mapsRoot reports whether the ID map at path (/proc/self/uid_map) maps
// ID 0 of our namespace.
func mapsRoot(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "inside outside count"
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(fields[0], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 64)
		if err1 == nil && err2 == nil && inside == 0 && count > 0 {
			return true, nil
		}
	}
	return false, sc.Err()
}
