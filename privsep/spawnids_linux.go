package privsep

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// spawnIDs are the group IDs a root parent's spawner thread takes for the
// exec of one worker, so that the worker is not dumpable from execve on
// (doc.go: Workers under one UID).
//
// The kernel makes a new program not dumpable (it sets its dumpable flag to
// fs.suid_dumpable, 0 or 2, instead of 1) when the task that execs has a
// real ID different from the effective one (fs/exec.c, begin_new_exec), and
// the new program then belongs to no other process of its UID: no ptrace,
// pidfd_getfd or /proc access by them. So the worker execs with its real
// GID the spec's, G, and its effective and saved GID another one, the spare
// S (spareGID), which the privsep package's init turns back into G before
// anything of the worker's own runs.
//
// Go's child code, between clone and execve, can give the child such IDs
// only if it lacks CAP_SETGID: with it, setgid(2) sets all four GIDs; without
// it, setgid(S) sets the effective (and file system) GID to S if S is the
// real or saved one. So, on the spawner thread and for the length of
// exec.Cmd.Start: supplementary groups the spec's (the child cannot set them
// without CAP_SETGID), real GID G, saved GID S, effective GID unchanged, and
// CAP_SETGID out of the effective set; the exec.Cmd has Credential{Uid: U,
// Gid: S, NoSetGroups: true}. The child inherits all that, sets its
// effective GID to S, and its UIDs to U with CAP_SETUID, which also drops
// all its capabilities. The thread's UIDs stay 0: no process of U may
// signal or trace it meanwhile, and its effective IDs do not change, so
// neither does this process's dumpable flag.
//
// At execve, the kernel sees real GID G and effective GID S: it makes the
// worker not dumpable, and the exec "secure" (AT_SECURE), which also clears
// the parent-death signal (the worker arms it again). Its
// cap_bprm_creds_from_file keeps S as the effective GID on recent kernels
// (6.18 here); older ones, under no_new_privs, reset the effective GID to
// the real one, G, right away. Either way the worker's IDs end up all U and
// all G, its capabilities empty, and the parent checks it at the hello.
type spawnIDs struct {
	gid    uint32   // the worker's GID: the real GID at exec
	spare  uint32   // the effective and saved GID at exec
	groups []uint32 // the worker's supplementary groups
}

// newSpawnIDs returns the spawnIDs for spec, run by a root parent without
// a user namespace of its own and as a UID other than 0 (a worker as root
// has nothing to gain from it).
//
// The worker's supplementary groups are the spec's and its GID: the exec,
// and whatever runs before privsep's init, use the spare GID as the
// effective one, and a Spec.Dir or Spec.Path reachable only through the
// worker's GID must stay reachable. (A supplementary group that is the
// primary one grants nothing more.)
func newSpawnIDs(spec *Spec) (*spawnIDs, error) {
	spare, err := spareGID(spec.GID, spec.Groups)
	if err != nil {
		return nil, err
	}
	groups := slices.Clone(spec.Groups)
	if !slices.Contains(groups, spec.GID) {
		groups = append(groups, spec.GID)
	}
	return &spawnIDs{gid: spec.GID, spare: spare, groups: groups}, nil
}

// errThreadIDs says that the spawner thread could not take back its own
// IDs: it must not spawn again.
var errThreadIDs = errors.New("the spawner thread cannot take back its own IDs")

// enter gives the calling thread, which must be locked to its goroutine and
// stay so, the IDs for the exec. leave gives it back the ones it had; call
// it on every path, once the child has exec'd or failed to. If leave fails,
// the thread keeps IDs it must not spawn with again.
func (ids *spawnIDs) enter() (leave func() error, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return nil, os.NewSyscallError("capget", err)
	}
	saved := caps
	rgid, egid, sgid := unix.Getresgid() // this thread's: not cached
	groups, err := unix.Getgroups()
	if err != nil {
		return nil, os.NewSyscallError("getgroups", err)
	}
	savedGroups := make([]uint32, len(groups))
	for i, g := range groups {
		savedGroups[i] = uint32(g)
	}
	leave = func() error {
		// CAP_SETGID back first: the rest needs it.
		h := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		if err := unix.Capset(&h, &saved[0]); err != nil {
			return os.NewSyscallError("capset", err)
		}
		if err := threadSetresgid(rgid, egid, sgid); err != nil {
			return err
		}
		return threadSetgroups(savedGroups)
	}
	fail := func(err error) (func() error, error) {
		if lerr := leave(); lerr != nil {
			return nil, fmt.Errorf("%w (%w: %w)", err, errThreadIDs, lerr)
		}
		return nil, err
	}
	if err := threadSetgroups(ids.groups); err != nil {
		return fail(err)
	}
	if err := threadSetresgid(int(ids.gid), -1, int(ids.spare)); err != nil {
		return fail(err)
	}
	caps[0].Effective &^= 1 << unix.CAP_SETGID // CAP_SETGID < 32
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return fail(os.NewSyscallError("capset", err))
	}
	return leave, nil
}

// threadSetresgid and threadSetgroups change the calling thread's IDs
// only: raw system calls, where syscall.Setresgid and Setgroups change
// those of every thread.
func threadSetresgid(rgid, egid, sgid int) error {
	if _, _, e := syscall.RawSyscall(sysSetresgid, uintptr(rgid), uintptr(egid), uintptr(sgid)); e != 0 {
		return os.NewSyscallError("setresgid", e)
	}
	return nil
}

func threadSetgroups(groups []uint32) error {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if _, _, e := syscall.RawSyscall(sysSetgroups, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return os.NewSyscallError("setgroups", e)
	}
	return nil
}

// spareGID returns the GID a worker of GID gid and groups execs with as its
// effective GID: one that gives it nothing, for the moment from its
// execve until privsep's init. It is the highest GID our user namespace
// maps (4294967294, (gid_t)-2, in the initial one) that is neither gid nor
// one of groups, and above minSpareGID: never a system group (0, the root
// group, in a user namespace that maps few GIDs), nor the overflow GID. No
// file should belong to it: a file of that group is open to every worker
// between its execve and privsep's init. errNoSpareGID: none; the worker
// is then spawned as other workers are (not dumpable from privsep's init).
func spareGID(gid uint32, groups []uint32) (uint32, error) {
	ranges, err := gidRanges()
	if err != nil {
		return 0, err
	}
	for _, r := range ranges {
		for i := uint32(0); i < 64 && r[1]-i >= r[0] && r[1]-i <= r[1]; i++ {
			if id := r[1] - i; id > minSpareGID && id != gid && !slices.Contains(groups, id) {
				return id, nil
			}
		}
	}
	return 0, fmt.Errorf("%w in this user namespace (/proc/self/gid_map) besides gid %d and groups %v", errNoSpareGID, gid, groups)
}

// minSpareGID: a spare GID is above the 16-bit range, where system groups,
// users' groups and the overflow GID (65534) live.
const minSpareGID = 1<<16 - 1

var errNoSpareGID = errors.New("no spare GID above 65535 mapped")

// gidRanges returns the GIDs our user namespace maps, [first, last] ranges
// from the highest down, without (gid_t)-1, which means no GID.
var gidRanges = sync.OnceValues(func() ([][2]uint32, error) {
	f, err := os.Open("/proc/self/gid_map")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ranges [][2]uint32
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "inside outside count"
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		first, err1 := strconv.ParseUint(fields[0], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 64)
		if err1 != nil || err2 != nil || count == 0 {
			continue
		}
		last := min(first+count-1, 1<<32-2)
		if last < first {
			continue
		}
		ranges = append(ranges, [2]uint32{uint32(first), uint32(last)})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	slices.SortFunc(ranges, func(a, b [2]uint32) int { return cmp.Compare(b[1], a[1]) })
	return ranges, nil
})
