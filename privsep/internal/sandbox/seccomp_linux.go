package sandbox

import (
	"errors"
	"fmt"
	"slices"
	"syscall"

	"github.com/peercred/peercred/internal/seccomp"
	"github.com/peercred/peercred/privsep/confine"
	"golang.org/x/sys/unix"
)

// The system calls of each promise that need no argument check. Names this
// architecture lacks (open on arm64) are skipped.
//
// stdio is what the Go runtime of a worker was measured to call once it
// runs: strace -f -c attached to a worker running thousands of goroutines on
// timers, with GC and calls to its parent, built plain, with cgo (glibc
// threads add clone3, rseq, set_robust_list, mprotect) and with -race; then
// the same load under the filter with SECCOMP_RET_LOG as the default action
// (the kernel logs each call it would refuse: dmesg, audit type 1326), which
// found glibc's malloc opening /sys/devices/system/cpu/online and /proc/stat
// in each new thread. Added by reading the runtime: its crash and profiling
// paths (timer_create, setitimer, kill and tgkill of itself), net's
// descriptor handling (fcntl, dup3, getsockopt, getsockname, epoll_ctl) and
// io.Copy's (sendfile, splice, copy_file_range). TestConfinedRuntimeUnderLoad
// runs the load with confine.DenyKill, with and without -race.
var promiseCalls = map[confine.Promise][]string{
	confine.PromiseStdio: {
		// I/O on descriptors the worker holds.
		"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2",
		"close", "close_range", "lseek", "fstat", "fstatfs", "fsync", "fdatasync", "ftruncate", "fadvise64",
		"sendfile", "splice", "tee", "copy_file_range", "getdents", "getdents64", "flock",
		"dup", "dup2", "dup3", "fcntl", "pipe", "pipe2",
		"recvmsg", "recvfrom", "recvmmsg", "shutdown", // sendmsg, sendto, sendmmsg below
		"getsockopt", "setsockopt", "getsockname", "getpeername", "accept", "accept4",
		// Polling, events, timers.
		"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
		"eventfd", "eventfd2", "poll", "ppoll", "select", "pselect6",
		"nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time",
		"timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
		"setitimer", "getitimer", "alarm", "timerfd_create", "timerfd_settime", "timerfd_gettime",
		// Memory.
		"mmap", "munmap", "mprotect", "madvise", "mremap", "msync", "mincore", "brk",
		// Threads, signals, futexes.
		"futex", "futex_waitv", "futex_wake", "futex_wait", "sched_yield", "sched_getaffinity",
		"set_robust_list", "get_robust_list", "rseq", "set_tid_address", "arch_prctl",
		"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend", "rt_sigtimedwait",
		"sigaltstack", "restart_syscall", "exit", "exit_group", "uprobe", "uretprobe",
		// Who and where it is.
		"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getgroups",
		"getresuid", "getresgid", "getpgrp", "getpgid", "getsid", "getcwd", "umask",
		"getrandom", "uname", "getrusage", "sysinfo", "getrlimit", "getcpu",
	},
	confine.PromiseRpath: {
		"stat", "lstat", "newfstatat", "statx", "statfs", "access", "faccessat", "faccessat2",
		"readlink", "readlinkat", "chdir", "fchdir",
	},
	confine.PromiseWpath: {"truncate"},
	confine.PromiseCpath: {
		"mkdir", "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2",
		"link", "linkat", "symlink", "symlinkat",
	},
	confine.PromiseFattr: {
		"chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "fchownat", "lchown",
		"utime", "utimes", "utimensat", "futimesat",
	},
	confine.PromiseUnix: {"bind", "connect"}, // listen below
	confine.PromiseInet: {"bind", "connect"},
	confine.PromiseUDP:  {"bind", "connect"},
	confine.PromiseProc: {
		"fork", "vfork", "wait4", "waitid", "tkill", "pidfd_open", "pidfd_send_signal",
		"setpgid", "setsid",
	},
	confine.PromiseExec: {"execve", "execveat"},
}

// promises are the known promises, in the order their calls are added.
var promises = []confine.Promise{confine.PromiseStdio, confine.PromiseRpath, confine.PromiseWpath, confine.PromiseCpath,
	confine.PromiseFattr, confine.PromiseUnix, confine.PromiseInet, confine.PromiseUDP, confine.PromiseProc, confine.PromiseExec}

// Harmless ioctl requests: descriptor flags, bytes readable, terminal size
// and attributes (isatty). Not TIOCSTI, which types into a terminal.
// The numbers are asm-generic's, those of amd64 and arm64, the
// architectures the filter knows.
var stdioIoctls = []uint32{
	unix.TIOCINQ, // FIONREAD
	0x5421,       // FIONBIO
	0x5451,       // FIOCLEX
	0x5450,       // FIONCLEX
	unix.TCGETS, unix.TIOCGWINSZ,
}

// prctl options a worker may use: none changes its confinement, its
// parent-death signal or who may trace it (PR_SET_DUMPABLE is left out: a
// worker stays not dumpable, worker.go).
var stdioPrctls = []uint32{
	unix.PR_GET_NAME, unix.PR_SET_NAME, unix.PR_GET_NO_NEW_PRIVS, unix.PR_GET_SECCOMP,
	unix.PR_GET_DUMPABLE, unix.PR_CAPBSET_READ, unix.PR_GET_PDEATHSIG, unix.PR_SET_VMA,
}

// nsFlags are the clone flags that make namespaces. (CLONE_NEWTIME shares
// its bit with the exit signal in clone(2); it works with clone3 only.)
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// buildFilter compiles c into a seccomp filter for the worker process pid,
// whose own signals (tgkill, kill) are allowed without confine.PromiseProc.
func buildFilter(c *confine.Config, pid uint32) (*seccomp.Filter, error) {
	if !seccomp.Supported() {
		return nil, fmt.Errorf("seccomp: no system call table for this architecture: %w", errors.ErrUnsupported)
	}
	deny := seccomp.Errno(syscall.EPERM)
	switch c.OnDenied {
	case confine.DenyKill:
		deny = seccomp.KillProcess
	case confine.DenyLog:
		deny = seccomp.Log
	}
	f := seccomp.New(deny)
	has := func(p confine.Promise) bool { return p == confine.PromiseStdio || slices.Contains(c.Promises, p) }
	var err error
	add := func(name string, a seccomp.Action, conds ...seccomp.Cond) {
		if err == nil && seccomp.Known(name) {
			err = f.Add(name, a, conds...)
		}
	}
	allow := seccomp.Allow
	enosys := seccomp.Errno(syscall.ENOSYS)
	added := map[string]bool{}
	for _, p := range promises {
		if !has(p) {
			continue
		}
		for _, name := range promiseCalls[p] {
			if !added[name] {
				added[name] = true
				add(name, allow)
			}
		}
	}

	// clone3 passes its flags in memory, out of the filter's sight:
	// ENOSYS makes glibc's pthread_create fall back to clone(2). Go's
	// os/exec uses clone(2) unless asked for a cgroup or time namespace.
	add("clone3", enosys)
	// openat2 likewise hides its flags in a struct.
	add("openat2", enosys)
	// Threads, and with proc, processes; never namespaces.
	add("clone", allow, seccomp.Masked(0, unix.CLONE_THREAD, unix.CLONE_THREAD), seccomp.Clear(0, nsFlags))
	if has(confine.PromiseProc) {
		add("clone", allow, seccomp.Clear(0, unix.CLONE_THREAD|nsFlags))
		add("kill", allow)
		add("tgkill", allow)
	} else {
		// The runtime signals its own threads (preemption) and itself
		// (crash); the PID is the worker's, in its PID namespace.
		add("tgkill", allow, seccomp.Eq(0, pid))
		add("kill", allow, seccomp.Eq(0, pid))
	}
	// prlimit64 reads the worker's own limits only (new_limit NULL).
	add("prlimit64", allow, seccomp.Eq(0, 0), seccomp.Eq64(2, 0))
	for _, req := range stdioIoctls {
		add("ioctl", allow, seccomp.Eq(1, req))
	}
	for _, opt := range stdioPrctls {
		add("prctl", allow, seccomp.Eq(0, opt))
	}

	// Sending, never with MSG_FASTOPEN: it connects an unconnected TCP
	// socket to the message's address without the LSM hook of
	// connect(2), so Landlock's port rules do not see it. The kernel
	// reads the flags of the call only (those in a msghdr, and in each
	// of sendmmsg's, are ignored).
	add("sendto", allow, seccomp.Clear(3, unix.MSG_FASTOPEN))
	add("sendmsg", allow, seccomp.Clear(2, unix.MSG_FASTOPEN))
	add("sendmmsg", allow, seccomp.Clear(3, unix.MSG_FASTOPEN))
	// listen(2) on an unbound TCP socket binds it to an ephemeral port
	// with no LSM hook on the way (no Landlock bind rule applies), and
	// the filter cannot tell a bound socket from an unbound one, nor a
	// Unix socket from a TCP one. So listen never comes with inet:
	// without inet the worker makes no TCP socket, and one that another
	// process hands it is that process's grant. A worker gets its TCP
	// listeners from its parent, already listening, and its Unix ones
	// bound, to listen on itself (Worker.Listen: a Unix server's
	// credentials are the listener's), which a worker without unix may
	// do too (listen(2) does not bind an unbound Unix socket).
	if !has(confine.PromiseInet) {
		add("listen", allow)
	}

	// Opening files: reading needs rpath, writing wpath, creating cpath,
	// as the flags say. O_TMPFILE counts as creating.
	if has(confine.PromiseRpath) || has(confine.PromiseWpath) || has(confine.PromiseCpath) {
		var conds []seccomp.Cond
		if !has(confine.PromiseRpath) {
			conds = append(conds, seccomp.Masked(2, unix.O_ACCMODE, unix.O_WRONLY))
		}
		if !has(confine.PromiseWpath) {
			conds = append(conds, seccomp.Masked(2, unix.O_ACCMODE, unix.O_RDONLY), seccomp.Clear(2, unix.O_TRUNC))
		}
		if !has(confine.PromiseCpath) {
			conds = append(conds, seccomp.Clear(2, unix.O_CREAT|unix.O_TMPFILE&^unix.O_DIRECTORY))
		}
		add("openat", allow, conds...)
		for i := range conds {
			conds[i].Arg-- // open(path, flags, mode): one argument fewer
		}
		add("open", allow, conds...)
		if has(confine.PromiseWpath) && has(confine.PromiseCpath) {
			add("creat", allow)
		}
	}
	if c.OnDenied == confine.DenyKill {
		// Other opens fail rather than kill: glibc's malloc opens
		// /sys/devices/system/cpu/online, then /proc/stat, in each new
		// thread of a cgo program (arena_get2, get_nprocs), and does
		// without them.
		add("openat", seccomp.Errno(syscall.EPERM))
		add("open", seccomp.Errno(syscall.EPERM))
	}

	// Sockets: socketpair is stdio; socket(2) only of the families and
	// protocols the promises name. Multipath TCP (IPPROTO_MPTCP),
	// netlink, packet and raw sockets are never allowed: Landlock does
	// not see them.
	// Without unix, a datagram pair is refused: sendto(2) with an address
	// on an AF_UNIX datagram socket reaches any socket path the worker's
	// UID may write to (/dev/log, the journal), and Landlock before ABI 9
	// does not see pathname sockets.
	if has(confine.PromiseUnix) {
		add("socketpair", allow, seccomp.Eq(0, unix.AF_UNIX))
	} else {
		for _, t := range []uint32{unix.SOCK_STREAM, unix.SOCK_SEQPACKET} {
			add("socketpair", allow, seccomp.Eq(0, unix.AF_UNIX), seccomp.Masked(1, 0xf, t))
		}
	}
	if has(confine.PromiseUnix) {
		add("socket", allow, seccomp.Eq(0, unix.AF_UNIX))
	}
	for _, family := range []uint32{unix.AF_INET, unix.AF_INET6} {
		if has(confine.PromiseInet) {
			for _, proto := range []uint32{0, unix.IPPROTO_TCP} {
				add("socket", allow, seccomp.Eq(0, family), seccomp.Masked(1, 0xf, unix.SOCK_STREAM), seccomp.Eq(2, proto))
			}
		}
		if has(confine.PromiseUDP) {
			for _, proto := range []uint32{0, unix.IPPROTO_UDP} {
				add("socket", allow, seccomp.Eq(0, family), seccomp.Masked(1, 0xf, unix.SOCK_DGRAM), seccomp.Eq(2, proto))
			}
		}
	}

	for _, name := range c.AllowSyscalls {
		if err == nil {
			err = f.Add(name, allow)
		}
	}
	for _, name := range c.DenySyscalls {
		if err == nil {
			err = f.Remove(name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	return f, nil
}
