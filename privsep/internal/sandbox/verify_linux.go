package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/peercred/peercred/internal/proc"
	"github.com/peercred/peercred/privsep/confine"
)

// Verify checks a worker confined as c that said hello with payload (what
// [Apply] returned): its report, then what /proc shows of every thread, its
// limits and its namespaces, against c. The worker is the caller's
// unreaped child, so pid is still its own. An error says what did not
// match; the caller kills the worker.
func Verify(c *confine.Config, pid int, payload []byte) (*confine.Verified, error) {
	v := &confine.Verified{}
	rep := &report{}
	// The worker's report first, for a worker that says why it failed;
	// then the kernel's view, whatever the report says.
	if len(payload) > 0 {
		dec := json.NewDecoder(bytes.NewReader(payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(rep); err != nil {
			return nil, fmt.Errorf("confinement report: %w", err)
		}
		if rep.Err != "" {
			return nil, fmt.Errorf("worker could not confine itself: %s", rep.Err)
		}
	}

	// The kernel's view, thread by thread.
	wantFilters := parentSeccompFilters() + 1
	wantSeccomp := rep.Seccomp || !c.BestEffort
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		return nil, err
	}
	v.NoNewPrivs, v.Seccomp, v.SeccompFilters = true, true, -1
	for _, t := range tasks {
		st, err := readTaskStatus("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/status")
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // the thread exited meanwhile
		}
		if err != nil {
			return nil, err
		}
		v.Threads++
		if st.noNewPrivs != "1" {
			return nil, fmt.Errorf("thread %s: NoNewPrivs is %q, want 1", t.Name(), st.noNewPrivs)
		}
		if v.SeccompFilters < 0 || st.filters < v.SeccompFilters {
			v.SeccompFilters = st.filters
		}
		if st.seccomp != "2" {
			v.Seccomp = false
			if wantSeccomp {
				return nil, fmt.Errorf("thread %s: Seccomp is %q, want 2 (filter)", t.Name(), st.seccomp)
			}
		}
		if wantSeccomp && st.filters < wantFilters {
			return nil, fmt.Errorf("thread %s: Seccomp_filters is %d, want at least %d", t.Name(), st.filters, wantFilters)
		}
	}
	if v.Threads == 0 {
		return nil, errors.New("no thread left in /proc")
	}

	// Limits: core dumps off, and those the spec set, soft and hard.
	lims, err := readLimits(pid)
	if err != nil {
		return nil, err
	}
	for _, l := range []struct {
		name string
		want uint64
		set  bool
		got  *uint64
	}{
		{"Max core file size", 0, true, &v.Core},
		{"Max open files", c.NoFile, c.NoFile != 0, &v.NoFile},
		{"Max file size", c.FileSize, c.FileSize != 0, &v.FileSize},
		{"Max address space", c.AddressSpace, c.AddressSpace != 0, &v.AddressSpace},
	} {
		lim, ok := lims[l.name]
		if !ok {
			return nil, fmt.Errorf("/proc limits has no %q", l.name)
		}
		*l.got = lim[0]
		if l.set && (lim[0] != l.want || lim[1] != l.want) {
			return nil, fmt.Errorf("%s is %s/%s (soft/hard), want %d", l.name, limitText(lim[0]), limitText(lim[1]), l.want)
		}
	}

	// Namespaces the parent asked the kernel for at clone.
	for _, ns := range []struct {
		name string
		want bool
	}{{"ipc", c.NewIPC}, {"mnt", c.NewMount}, {"net", c.NewNet}} {
		if !ns.want {
			continue
		}
		mine, err := parentNamespace(ns.name)
		if err != nil {
			return nil, err
		}
		its, err := nsInode("/proc/" + strconv.Itoa(pid) + "/ns/" + ns.name)
		if err != nil {
			return nil, err
		}
		if its == mine {
			return nil, fmt.Errorf("%s namespace is the parent's, want a new one", ns.name)
		}
		v.Namespaces = append(v.Namespaces, ns.name)
	}

	// What only the worker can say.
	if len(payload) == 0 {
		return nil, errors.New("the hello carries no confinement report: the worker did not confine itself")
	}
	if !c.BestEffort {
		if want := landlockABI(c); rep.LandlockABI < want {
			return nil, fmt.Errorf("worker reports Landlock ABI %d applied, want %d", rep.LandlockABI, want)
		}
		if !rep.Seccomp {
			return nil, errors.New("worker reports no seccomp filter")
		}
	}
	if rep.Seccomp && rep.OnDenied != c.OnDenied.String() {
		return nil, fmt.Errorf("worker reports on_denied %q, want %q", rep.OnDenied, c.OnDenied)
	}
	rep.keep(v)
	return v, nil
}

// parentSeccompFilters is how many seccomp filters this process had when
// first asked: a worker inherits them, and has its own on top.
var parentSeccompFilters = sync.OnceValue(func() int {
	st, err := readTaskStatus("/proc/self/status")
	if err != nil {
		return 0
	}
	return st.filters
})

// parentNamespaces are the inodes of this process's namespaces.
var parentNamespaces sync.Map // name → uint64

func parentNamespace(name string) (uint64, error) {
	if ino, ok := parentNamespaces.Load(name); ok {
		return ino.(uint64), nil
	}
	ino, err := nsInode("/proc/self/ns/" + name)
	if err == nil {
		parentNamespaces.Store(name, ino)
	}
	return ino, err
}

// taskStatus is what verification reads of /proc/.../status.
type taskStatus struct {
	noNewPrivs, seccomp string
	filters             int
}

// readTaskStatus reads the fields of a status file that verification
// checks.
func readTaskStatus(path string) (taskStatus, error) {
	s, err := proc.ReadStatus(path)
	if err != nil {
		return taskStatus{}, err
	}
	var st taskStatus
	st.noNewPrivs, _ = s.Field("NoNewPrivs")
	st.seccomp, _ = s.Field("Seccomp")
	filters, _ := s.Field("Seccomp_filters")
	st.filters, _ = strconv.Atoi(filters)
	return st, nil
}

// readLimits reads /proc/PID/limits: name → soft, hard.
func readLimits(pid int) (map[string][2]uint64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/limits")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	lims := make(map[string][2]uint64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "Max open files            1024                 4096                 files"
		line := sc.Text()
		if len(line) < 26 || !strings.HasPrefix(line, "Max ") {
			continue
		}
		name := strings.TrimSpace(line[:26])
		fields := strings.Fields(line[26:])
		if len(fields) < 2 {
			continue
		}
		var lim [2]uint64
		for i := range 2 {
			if fields[i] == "unlimited" {
				lim[i] = confine.Unlimited
			} else if lim[i], err = strconv.ParseUint(fields[i], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc limits: %q: %w", line, err)
			}
		}
		lims[name] = lim
	}
	return lims, sc.Err()
}

// nsInode returns the inode of a namespace link.
func nsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return st.Ino, nil
}

// limitText is a limit as an error message says it.
func limitText(v uint64) string {
	if v == confine.Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}
