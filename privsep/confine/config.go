package confine

import (
	"fmt"
	"strings"
)

// Config is how a spawned worker confines itself (privsep.Spec.Confine). The
// worker applies it after the kernel has set its credentials and before its
// hello, on every thread of the process: resource limits, then a Landlock
// domain, then a seccomp filter; the parent sets up the namespaces at clone.
// The parent then checks what the kernel shows of it (/proc: no_new_privs
// and the seccomp filter on every thread, the limits, the namespaces) before
// the worker gets anything, and records what the worker reports of the rest
// (its Landlock domain, which /proc does not show): see [Verified].
//
// A worker confined with the zero Config can read and write the
// descriptors it has, run Go, accept on listeners it is given and call its
// parent, and nothing else: no file, no new socket (bar socketpair), no
// process, no signal to another process. Each field grants or restricts
// something more.
//
// Landlock does not cover stat(2), chdir(2), pathname Unix sockets (before
// Landlock ABI 9), UDP (before ABI 10), Multipath TCP, netlink and other
// socket families, io_uring, listen(2) (which binds an unbound TCP socket
// to an ephemeral port) or MSG_FASTOPEN (which connects a TCP socket in
// sendto(2) and sendmsg(2), past Landlock's connect check): the seccomp
// filter keeps those out unless a promise lets them in. Landlock applies
// to paths and ports whatever the descriptor they are reached through: a
// directory descriptor the worker gets from the parent opens nothing
// beneath it that its rules do not allow.
type Config struct {
	// BestEffort applies what the running kernel supports and reports
	// what it could not ([Verified].SelfReported.Skipped). Without it
	// (strict), Spawn fails with an error naming the missing kernel
	// feature, or a rule's path that does not exist.
	BestEffort bool

	// LandlockABI is the Landlock ABI version whose restrictions apply,
	// 1 to 11; 0 means 6 (Linux 6.12): files, TCP ports, and scoping of
	// abstract Unix sockets and signals to the worker's domain. Strict,
	// the kernel must support at least this version (check it with
	// landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION));
	// best effort, the kernel's version applies if lower.
	LandlockABI int
	// Landlock lists the paths the worker may access, and how. It can
	// access no other file (bar those it holds open).
	Landlock []LandlockRule
	// BindTCP and ConnectTCP list the TCP ports the worker may bind and
	// connect to (Landlock ABI 4, with [PromiseInet]). Others are refused
	// with EACCES. Binding port 0 (any) needs port 0 listed. A bound
	// port serves as the source port of a connection: the worker never
	// listens on TCP (see PromiseInet); it gets its listeners from its
	// parent (privsep.Worker.Listen).
	BindTCP, ConnectTCP []uint16

	// Promises add system calls to the filter, in the manner of
	// OpenBSD's pledge(2); [PromiseStdio] is always in.
	Promises []Promise
	// AllowSyscalls are system calls allowed whatever their arguments;
	// DenySyscalls are refused even if a promise allows them. Names are
	// those of the architecture's table ("openat", "ptrace").
	AllowSyscalls, DenySyscalls []string
	// OnDenied is what a refused system call does; the default fails
	// it with EPERM.
	OnDenied DenyAction

	// NoFile, FileSize and AddressSpace set RLIMIT_NOFILE, RLIMIT_FSIZE
	// and RLIMIT_AS (soft and hard limit) if nonzero. RLIMIT_CORE is
	// always 0. RLIMIT_NPROC is never set: the Go runtime needs threads.
	// The race detector reserves terabytes of address space: do not set
	// AddressSpace for a worker built with -race.
	NoFile, FileSize, AddressSpace uint64

	// NewNet, NewMount and NewIPC start the worker in new network (no
	// interface but a down loopback: the worker reaches nothing but its
	// parent and the sockets it is given), mount and IPC namespaces. They
	// need a root parent or privsep.Spec.UserNS.
	NewNet, NewMount, NewIPC bool
}

// LandlockRule allows access to a file, or to a directory and everything
// beneath it.
type LandlockRule struct {
	// Path is absolute. It is opened by the worker, after its credentials
	// are set, to add the rule; symbolic links in it are followed then.
	Path   string
	Access LandlockAccess
	// IgnoreMissing skips the rule if Path does not exist. Otherwise a
	// missing path fails a strict Spawn and is reported as skipped in
	// best effort.
	IgnoreMissing bool
}

// LandlockAccess is a set of rights a [LandlockRule] grants beneath its path.
type LandlockAccess uint8

// Landlock rights. On a file rather than a directory, only reading,
// writing (and truncating) and executing the file apply.
const (
	// LandlockRead: read files, list directories.
	LandlockRead LandlockAccess = 1 << iota
	// LandlockWrite: write and truncate files; create and remove files,
	// directories, symbolic links, sockets and FIFOs (no device nodes, no
	// moving a file to another directory).
	LandlockWrite
	// LandlockExec: execute files.
	LandlockExec
	// LandlockConnect: connect, and send datagrams, to the pathname Unix
	// sockets at or beneath the path ([PromiseUnix] opens the calls).
	// Landlock restricts pathname sockets from ABI 9 only
	// (LANDLOCK_ACCESS_FS_RESOLVE_UNIX); on such a kernel a worker
	// reaches none but those its LandlockConnect rules name (and those
	// made by a process of its own domain), whatever LandlockABI says.
	// Before ABI 9 the rule changes nothing: see [PromiseUnix].
	LandlockConnect
)

func (a LandlockAccess) String() string {
	var s []string
	for _, x := range []struct {
		bit  LandlockAccess
		name string
	}{{LandlockRead, "read"}, {LandlockWrite, "write"}, {LandlockExec, "exec"}, {LandlockConnect, "connect"}} {
		if a&x.bit != 0 {
			s = append(s, x.name)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, "+")
}

// Promise names a set of system calls, in the spirit of OpenBSD's
// pledge(2) promises. File and network promises open the system calls
// only: Landlock still decides which paths and ports.
type Promise string

// Promises.
const (
	// PromiseStdio: what the Go runtime needs (threads, memory, futexes,
	// timers, signals to its own threads, epoll), I/O on descriptors the
	// worker holds, accept on listeners it holds, socketpair, and calls
	// to the parent. Always in. Sending with MSG_FASTOPEN is refused
	// (sendto, sendmsg, sendmmsg): it connects an unconnected TCP socket
	// where Landlock does not look.
	PromiseStdio Promise = "stdio"
	// PromiseRpath: open files for reading, stat, access, readlink,
	// chdir.
	PromiseRpath Promise = "rpath"
	// PromiseWpath: open files for writing, truncate.
	PromiseWpath Promise = "wpath"
	// PromiseCpath: create files (O_CREAT), make and remove directories,
	// unlink, rename, link, symlink.
	PromiseCpath Promise = "cpath"
	// PromiseFattr: change file modes, owners and times. Landlock has no
	// right for these: a worker with fattr can chmod, chown and touch any
	// file its UID owns, anywhere, whatever its Landlock rules say.
	PromiseFattr Promise = "fattr"
	// PromiseUnix: create, bind and connect Unix-domain sockets.
	// listen(2) is allowed to every worker without PromiseInet, with or
	// without this promise (the filter cannot tell a Unix socket from a
	// TCP one; a Unix one must be bound first, which takes this promise
	// or a socket from privsep.Worker.Listen). Binding a pathname socket needs a
	// [LandlockWrite] rule for its directory. Abstract names: the worker
	// reaches only those bound in its own Landlock domain (ABI 6 scope).
	// Pathname sockets: on a kernel with Landlock ABI 9 or later, only
	// those its [LandlockConnect] rules name, or made in its own domain;
	// on an older kernel, every socket its UID may write to (such as a
	// mode-0666 socket of a root service), in whatever network namespace,
	// and nothing but leaving this promise out stops that.
	PromiseUnix Promise = "unix"
	// PromiseInet: TCP over IPv4 and IPv6: bind to the ports of
	// [Config.BindTCP], connect to those of [Config.ConnectTCP]
	// (Landlock ABI 4: without it, any port). No listen(2): on an unbound
	// socket it binds an ephemeral port where no Landlock rule applies,
	// and the filter cannot tell a bound socket from an unbound one; the
	// worker gets its TCP listeners from its parent (privsep.Worker.Listen).
	// TCP_FASTOPEN_CONNECT is allowed: Landlock checks the port at
	// connect(2) still. Multipath TCP is refused: Landlock does not see
	// it (Go's net falls back to TCP). [Config.AllowSyscalls] "listen"
	// opens listen again, ephemeral ports and all. bind(2) is allowed for
	// every socket the worker holds, and the filter cannot see its
	// address: that includes binding an abstract Unix name on an end of
	// the socket pair it has (squatting a name a service of its network
	// namespace would bind later; Landlock does not check binds of
	// abstract names). Give such a worker its own network namespace
	// ([Config.NewNet]) where that matters: abstract names are per
	// network namespace.
	PromiseInet Promise = "inet"
	// PromiseUDP: UDP over IPv4 and IPv6, to any port: Landlock does not
	// restrict UDP before ABI 10. bind(2) as with [PromiseInet], abstract
	// Unix names included.
	PromiseUDP Promise = "udp"
	// PromiseProc: fork, wait, signal other processes (Landlock scopes
	// signals to the worker's domain, ABI 6), sessions and process groups.
	PromiseProc Promise = "proc"
	// PromiseExec: execve. The executable needs a [LandlockExec] rule.
	PromiseExec Promise = "exec"
)

// DenyAction is what a system call the filter refuses does.
type DenyAction int

const (
	// DenyEPERM fails the call with EPERM.
	DenyEPERM DenyAction = iota
	// DenyKill kills the worker (SIGSYS): a call outside the policy is a
	// bug or an attack.
	DenyKill
	// DenyLog allows the call and has the kernel log it (audit,
	// SECCOMP_RET_LOG): to find the calls a worker needs, not to confine
	// it. The parent logs a warning for such a worker.
	DenyLog
)

func (d DenyAction) String() string {
	switch d {
	case DenyEPERM:
		return "eperm"
	case DenyKill:
		return "kill"
	case DenyLog:
		return "log"
	}
	return fmt.Sprintf("DenyAction(%d)", int(d))
}
