package testutil

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CgroupMount returns where the cgroup hierarchy of file system type
// fstype ("cgroup2", or "cgroup" for a v1 hierarchy) is mounted, or "".
// A non-empty option also asks for that super option ("name=systemd"
// finds systemd's v1 hierarchy on a hybrid or legacy host). Only a mount
// of the hierarchy's root counts. On systems without cgroups it returns "".
func CgroupMount(fstype, option string) string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(s.Text(), " - ")
		fields, postFields := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || fields[3] != "/" || len(postFields) < 3 || postFields[0] != fstype {
			continue
		}
		if option == "" || slices.Contains(strings.Split(postFields[2], ","), option) {
			return fields[4]
		}
	}
	return ""
}

// MakeCgroup creates the cgroup v2 group at path (as /proc/PID/cgroup
// shows paths: "/system.slice/app-test.service"), and the missing groups
// above it, and returns its directory. At cleanup it removes what it
// created, once the processes in it are gone (kill and reap them in an
// earlier cleanup, as [Start] does). It skips the test, saying why, when
// cgroup v2 is not mounted or not writable here (not root, or a container
// that mounts it read-only).
//
// Paths are made beneath the hierarchy's root: they read as given only in
// the initial cgroup namespace.
func MakeCgroup(t testing.TB, path string) (dir string) {
	t.Helper()
	mnt := CgroupMount("cgroup2", "")
	if mnt == "" {
		t.Skip("cgroup v2 is not mounted here (no cgroup2 in /proc/self/mountinfo)")
	}
	return MakeCgroupIn(t, mnt, path)
}

// MakeCgroupIn is [MakeCgroup] in the hierarchy mounted at mnt (one that
// [CgroupMount] found).
func MakeCgroupIn(t testing.TB, mnt, path string) (dir string) {
	t.Helper()
	dir = mnt
	for c := range strings.SplitSeq(strings.Trim(path, "/"), "/") {
		dir = filepath.Join(dir, c)
		err := os.Mkdir(dir, 0o755)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			t.Skipf("the cgroup hierarchy at %s is not writable here: %v", mnt, err)
		}
		created := dir
		t.Cleanup(func() {
			// The kernel may take a moment to drop processes just reaped.
			WaitFor(t, "rmdir "+created, 10*time.Second, func() bool {
				err := os.Remove(created)
				return err == nil || errors.Is(err, os.ErrNotExist)
			})
		})
	}
	return dir
}

// MoveToCgroup moves the process pid into the cgroup whose directory is
// dir (one that [MakeCgroup] returned).
func MoveToCgroup(t testing.TB, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
		t.Fatalf("move pid %d into %s: %v", pid, dir, err)
	}
}

// CgroupOf returns the cgroup v2 path of the process pid (the "0::" line
// of /proc/PID/cgroup), failing the test when it has none.
func CgroupOf(t testing.TB, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "0::"); ok {
			return p
		}
	}
	t.Fatalf("no 0:: line in /proc/%d/cgroup: %q", pid, b)
	return ""
}
