// Package privsep splits a program into a privileged parent and unprivileged
// workers, in the manner of OpenBSD's privsep daemons and OpenSSH's monitor:
// the parent keeps its privileges and its policy, the workers do the risky
// work as other users, and a worker gets a capability (an open file, a
// listening socket on a privileged port, the result of a privileged
// operation) only by asking the parent, which checks who it is and what its
// role may do.
//
// One binary plays both parts. Call [Main] first thing in main: in a worker
// process it runs the worker's role and exits; in the parent it returns at
// once.
//
//	func main() {
//		privsep.Register("web", web) // the worker's code
//		privsep.Main()               // a worker never returns from here
//
//		s := privsep.New(privsep.Config{Roles: map[string]privsep.Policy{
//			"web": {
//				Files:  []privsep.PathRule{{Path: "/etc/app/secret"}},
//				Listen: []privsep.ListenRule{{Network: "tcp", Address: ":80", Once: true}},
//			},
//		}})
//		defer s.Shutdown(context.Background())
//		p, err := s.Spawn(ctx, privsep.Spec{Role: "web", UID: 65534, GID: 65534})
//		...
//	}
//
//	func web(ctx context.Context, w *privsep.Worker) error {
//		l, err := w.Listen(ctx, "tcp", ":80") // bound by the parent
//		...
//	}
//
// # How a worker is started and proven
//
// Go cannot fork, so [Supervisor.Spawn] re-executes /proc/self/exe with a
// clean environment. The worker's only descriptor besides stdio is its end of
// a close-on-exec SOCK_SEQPACKET socket pair. The kernel sets the worker's
// UID, GID and groups at exec; the worker runs in a new session, with
// no_new_privs set, and dies with the parent (parent-death signal, and EOF
// on its socket).
//
// The kernel reports the creator of a socket pair on both ends, so
// SO_PEERCRED cannot tell the parent who the worker is. Instead the worker's
// first message carries SCM_CREDENTIALS, which the kernel fills in (or checks)
// at the time of sending. The parent admits the worker only if that PID is the
// child it started (held by a pidfd) and the UID and GID are the spec's, and
// only if /proc shows the same IDs, the spec's groups and no_new_privs, and
// that the worker is not dumpable and not traced, and, unless it runs as
// root, that it has no capabilities. Any mismatch: the worker
// is killed and reaped and Spawn returns an error that says what did not
// match. No request is served before. The hello also carries one end of a
// socket pair the worker made once it was not dumpable (SO_PEERCRED on it
// names the worker): the parent serves the worker there, and drops the
// connection the worker was started with, which another process of its UID
// could have copied in the moment after execve.
//
// The parent also records, once, what the kernel says of each worker's
// process beyond its IDs ([Peer].Process: executable, cgroup and systemd
// unit, namespaces, start time; see peercred.Process): a spawned worker's
// through the pidfd of its spawn (peercred.AttestPidFD) after its
// verification, a named-socket worker's through its connection when its
// hello arrives; that reading is the one its role's [Policy.Claim] decides
// by (peercred.AllowUnits("backup.service") and the like) and the one its
// handlers see. Where it cannot be read, Process is nil and the admission's
// log line says why: a root parent attests spawned workers on Linux 5.3 and
// later, named-socket ones on 6.5 and later (SO_PEERPIDFD); a parent that
// is not root cannot read its workers' executables, and records none.
//
// # Workers under one UID
//
// Processes of one UID may trace each other, take each other's descriptors
// with pidfd_getfd(2) and read each other's memory, unless the kernel is
// told otherwise. A worker therefore makes itself not dumpable (prctl
// PR_SET_DUMPABLE 0) as this package initializes, and again first thing in
// [Main]; the parent admits it only if /proc shows it so (its /proc/PID/fd
// owned by root, not by its UID) and traced by nobody (TracerPid 0). Another
// process of its UID, worker or not, can then neither trace it, nor copy its
// descriptors (its connection to the parent, the files it was given), nor
// read its memory. A confined worker cannot undo it: its filter refuses
// PR_SET_DUMPABLE. Signals from its UID still reach it, and it dumps no
// core.
//
// A root parent's worker (not as UID 0, not in a user namespace of its
// own) is not dumpable from execve on. The kernel makes a program exec'd
// with a real ID other than the effective one not dumpable, and its exec
// "secure" (AT_SECURE): the parent execs the worker with the spec's GID as
// its real GID and a spare one as its effective and saved GID: the highest
// GID its user namespace maps, above 65535, that is neither the worker's
// GID nor one of its groups (4294967294 in the initial namespace; with no
// such GID mapped, the worker is spawned as the others below). No file
// should belong to that GID: every such worker holds it from its execve
// until privsep's init. The worker's GID is among its supplementary groups
// too (where it grants nothing more), so that a [Spec.Dir] or [Spec.Path]
// reachable through it stays so. As this package initializes, the worker
// sets all its GIDs to the spec's, arms the parent-death signal again (the
// secure exec cleared it; [Main] then checks that its parent is still the
// one that started it), sets back the traceback level Go's runtime forced
// to "none" (GOTRACEBACK from [Spec.Env], else "single"), and sets back the
// variables of [Spec.Env] that the C library of a cgo worker drops from a
// setgid program's environment (TMPDIR, TZDIR, ...; the parent sends them
// twice). For the length of the exec, the spawner thread holds the
// worker's groups and real GID, and the spare GID as its saved GID,
// without CAP_SETGID; its UIDs stay 0, so no process of the worker's UID
// can signal or trace it. What the secure exec still costs: Go's runtime
// ends a worker on a fatal error (not a panic) with status 2 and no
// traceback; the dynamic loader ignores LD_PRELOAD and LD_LIBRARY_PATH;
// and code that runs before privsep's init (the runtime, and the packages
// Go initializes first: those privsep does not import may come before it,
// in the order of their import paths) runs with the spare GID. Like any
// process that is not dumpable, such a worker cannot open its own
// /proc/self/environ: the race detector reads GORACE there, and a
// race-enabled worker ignores it, except at exit: with atexit_sleep_ms=0
// in its environment, [Main] ends it without the detector's second of
// sleep, with GORACE's exitcode (default 66) if a race was reported.
//
// What stays open:
//
//   - Other workers (a parent that is not root, [Spec.UserNS], or UID 0)
//     are dumpable from execve until this package initializes (the Go
//     runtime's start, the init of the packages privsep imports, and of
//     those Go initializes before it). A
//     process of its UID that watches for new PIDs wins that race easily.
//     What it can copy then is worth nothing (stdio, and the connection the
//     worker was started with, which the parent drops at the hello), but it
//     can also trace the worker, change its code and let go before the
//     hello, and the parent cannot see that (a worker still traced at its
//     hello is refused). Roles that must not reach each other need UIDs of
//     their own, or [Spec.UserNS] (below), or the other roles confined
//     (their filter refuses ptrace and pidfd_getfd).
//   - Role code that calls execve(2), or changes its credentials while
//     fs.suid_dumpable is 1, makes the process dumpable again.
//   - A worker in a user namespace of its own ([Spec.UserNS]) made by a
//     root parent is out of reach of processes of its UID outside from
//     execve on, dumpable or not, as long as it keeps its capabilities in
//     that namespace: the namespace belongs to root, and the kernel's
//     ptrace check (which pidfd_getfd and /proc apply too) refuses a caller
//     that lacks capabilities its target has. The parent cannot check
//     whether such a worker is dumpable: /proc shows it owned by its UID
//     either way (its namespace's root). A namespace made by a parent that
//     is not root belongs to the parent's UID, which is the worker's: every
//     process of that UID has CAP_SYS_PTRACE over the worker, dumpable or
//     not.
//   - A parent that is not root runs its workers as itself, with its own
//     groups (it can do nothing else; a [Spec] asking another UID or GID
//     is refused with an error that says so). Landlock, seccomp,
//     no_new_privs and the resource limits work the same without root.
//     Processes of its UID reach the parent, and all it holds, unless it
//     too makes itself not dumpable. Since such a parent cannot read its
//     (not dumpable) workers' /proc/PID/root, it gives them no
//     directories (see [PathRule]; files it does give).
//   - Root, and any process with CAP_SYS_PTRACE over the worker, reaches it
//     regardless.
//
// # Capabilities and policy
//
// A worker calls operations by name ([Worker.Call]); built-in ones back
// [Worker.Listen] and the file methods ([Worker.Open], [Worker.Stat], ...).
// Policy is per role and deny-by-default: an operation the role's [Policy]
// does not list is refused, with an error to the worker and a warning in the
// parent's log. Operations can be allowed once, like OpenSSH's MON_ONCE. As
// OpenSSH's monitor does with its mon_table, the parent dispatches the
// built-in operations from one table (ops.go): for each, the part of the
// policy whose rules admit it ([Policy.Files], [Policy.Listen]), whether it
// takes descriptors (none does), and its handler.
//
// Processes the supervisor did not start can connect to a named socket
// ([Supervisor.ListenUnix]); they are identified with SO_PEERCRED and admitted
// to a role only if the role's [Policy.Claim] allows them. Their sessions are
// capped, in all and per UID (Config.MaxNamedSessions,
// MaxNamedSessionsPerUID; 256 and 32 by default): a client beyond a cap gets
// an error reply, is disconnected, and is logged (rate-limited). [Dial]
// checks the server in turn, from the credentials the kernel recorded at its
// listen: by default it must run as the caller's UID or as root, since anyone
// can bind an abstract name first; a [Dialer] says otherwise.
//
// # Once
//
// What a role allows once ([OpRule.Once], [PathRule.Once],
// [ListenRule.Once]) is allowed once per process and role: the supervisor
// remembers it across all the connections of the process (closing them all
// and coming back changes nothing) for as long as the process lives, and
// forgets it when the process is gone. A process is known by its PID and
// its start time in /proc, checked through its pidfd, so that a later
// process with the same PID is never taken for it. A spawned worker and the
// same process connected to a named socket share one allowance; a
// restarted worker is a new process and has it again, and so has each
// child a process forks. A named-socket peer whose process cannot be told
// apart from a later one (no SO_PEERPIDFD before Linux 6.5, or a PID
// outside our PID namespace) is refused what is allowed once.
//
// # Confinement, and files through the parent
//
// A spawned worker can confine itself before its hello, as its
// [Spec.Confine] says (package [confine]: resource limits, a Landlock
// domain, a seccomp filter built from pledge-like promises, on every
// thread, and new namespaces). Before admitting the worker, the parent
// checks in /proc what the kernel shows of it, and refuses a worker that is
// not confined as asked; [Process.Confinement] and [Peer.Confinement] say
// what it verified ([confine.Verified]).
//
// A worker reaches files through its parent, which is how a confined one
// reaches any: [Worker.Open], [Worker.OpenFile], [Worker.Stat] and the other
// file methods of [Worker], which mirror package os, have the parent open,
// stat, create, rename and remove paths as the role's [Policy.Files] allow,
// resolved beneath each rule's directory with openat2, so that "..",
// symbolic links and /proc magic links lead nowhere; every refusal is logged.
// Its calls are calls on the worker's connection like any other: no channel,
// goroutine or thread of their own in the parent, and their replies are held
// to Config.WriteTimeout.
//
// A directory descriptor can be walked from (openat(fd, ".."), fchdir), from
// wherever the directory is, whatever the holder's root: the parent hands a
// directory only to a worker whose root directory is the parent's (its
// /proc/PID/root and / are the same device and inode, read under its PID and
// checked through its pidfd afterwards). A chrooted worker is refused it,
// with a log line; the parent never opens with O_PATH, and opens nothing but
// regular files and directories. A handler ([Supervisor.Handle]) that
// returns descriptors of its own should hold to the same rule.
//
// # Failing closed
//
// A worker that breaks the protocol (a malformed or oversize message,
// unexpected descriptors, a message kind it may not send) is disconnected and
// killed, with a log line; the parent and other workers carry on. A
// well-formed request that policy refuses gets an error reply. A worker
// that stops reading its replies, its file calls included, is cut off too:
// once no reply has gone through for Config.WriteTimeout, a spawned worker
// is killed and a named-socket client disconnected. [Supervisor.Shutdown]
// does not wait for such clients: its Stop message goes only where there
// is room for it.
//
// A role's [Policy.Claim] may block (an Authorizer that stats a peer's
// executable on a file system its owner stopped serving): a connection
// keeps its place among those waiting to say hello (8 per UID, 64 in all)
// until its Claim has answered, so Claims a user can hold cost a bounded
// number of goroutines and threads.
//
// # Guarantees, and the attacks that test them
//
// Every guarantee above is played as an attack, by a real process under
// another UID, in the package's tests (files attack_*_test.go): a sibling
// of the same UID that tries to take a worker over, from its execve on; a
// process that claims a role over many connections to get a Once operation
// again; a user that opens sessions beyond the caps, makes its Claims
// block, or stops reading its replies; a confined worker that listens,
// sends with MSG_FASTOPEN or connects to a pathname socket; a chrooted
// worker with a directory from its parent; a squatter of the abstract name Dial
// connects to; a client that hands its connection on and exits before its
// PID is reused; a caller of PID right after Restart. README.md lists
// them with their tests, and what stays out of reach on which kernel.
//
// # What a call costs
//
// After the handshake a connection leaves Go's network poller. A lone
// [Worker.Call] writes its request and reads its own reply in recvmsg(2); in
// the parent the goroutine that read the request runs its handler and writes
// the reply. A round trip is two sendmsg and two recvmsg, as a hand-written
// ping-pong in C is (BENCHMARKS.md has the measurements). While nobody reads
// a connection it is parked in an epoll instance of the package's own (one
// per process), so that an idle worker holds no goroutine and no thread in
// the parent; a worker's exit is awaited through its pidfd the same way.
// Concurrent calls stay concurrent: while a handler runs, a request that
// comes from the same worker is read, within 2 to 4 milliseconds, by
// another goroutine, up to [Config.MaxInFlight]; a worker that calls back to
// back sees a Stop within 40 milliseconds.
//
// While more workers call at once than the parent has Ps (GOMAXPROCS), the
// parent's readers wait in Go's own poller instead, as a Go server waits
// for its connections, and hold no thread meanwhile; a connection there
// holds one more descriptor, a duplicate, until it has been idle for 10
// milliseconds (mind RLIMIT_NOFILE with many named clients). A parent that
// serves more busy workers than it has CPUs, on a machine shared with other
// busy processes, got more of the CPUs, and answered faster than a thread
// per worker by hand, with GOMAXPROCS at least its number of busy workers
// (BENCHMARKS.md); the package leaves GOMAXPROCS to the program.
//
// # Limits worth knowing
//
// The parent-death signal belongs to the thread that exec'd: a worker that
// itself execs another program from a thread other than its main one hands
// that program a process without it. Such a program should arm it again
// (prctl(PR_SET_PDEATHSIG) and a getppid check); the parent kills its workers
// on Shutdown regardless.
//
// A [PathRule] with Beneath on a directory the worker can write lets the
// worker choose what the parent opens there, within the directory. Hard
// links to files elsewhere are what the kernel's fs.protected_hardlinks
// (on by default) keeps a worker from making to files it could not read or
// write itself; rules on worker-writable directories rely on it.
//
// # Other systems
//
// privsep works on Linux only: it depends on SCM_CREDENTIALS, pidfds,
// /proc, prctl, Landlock and seccomp. On the other systems the package
// has the same API, so that a program that uses it builds everywhere, and
// it does nothing: [Main] returns at once (the program goes on as the
// parent); [New] returns a Supervisor whose [Supervisor.Spawn] and
// [Supervisor.ListenUnix] fail, as do [Dial] and [Dialer.Dial], with an
// error that matches errors.ErrUnsupported (Shutdown returns nil). No
// Process or Worker is ever obtained there; their methods fail the same
// way. The policy and configuration types are the same on every system.
// Such a program decides for itself whether to go on unseparated or stop
// (see the example).
package privsep
