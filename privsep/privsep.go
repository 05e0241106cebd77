package privsep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
	"github.com/peercred/peercred/privsep/confine"
)

// Errors callers branch on. Errors returned to a worker by [Worker.Call] are
// [*CallError] values that match these with errors.Is.
var (
	// ErrDenied: the role's policy does not allow the operation (or allowed
	// it once, and it was used).
	ErrDenied = errors.New("privsep: denied by policy")
	// ErrUnknownOp: the parent has no handler for the operation.
	ErrUnknownOp = errors.New("privsep: unknown operation")
	// ErrBadRequest: the request's payload is not valid for the operation.
	ErrBadRequest = errors.New("privsep: bad request")
	// ErrUnavailable: the supervisor is shutting down, or (a [Dial]'s
	// error) serves as many named-socket sessions as it may
	// (Config.MaxNamedSessions): try again later.
	ErrUnavailable = errors.New("privsep: supervisor shutting down")
	// ErrVerify: a spawned worker's identity or confinement is not the
	// spec's; it was killed.
	ErrVerify = errors.New("privsep: worker verification failed")
	// ErrParentGone: the worker's connection to the parent ended.
	ErrParentGone = errors.New("privsep: parent gone")
	// ErrWorkerGone: the worker exited or was disconnected; calls in
	// flight in the parent see it as the cause of their context's end.
	ErrWorkerGone = errors.New("privsep: worker gone")
	// ErrProtocol: a peer broke the wire protocol and was disconnected.
	ErrProtocol = errors.New("privsep: protocol violation")
)

// Config configures a [Supervisor]. The zero value is usable but admits no
// operation for any role.
type Config struct {
	// Roles maps a role name to its policy. A role that is not listed has
	// the zero Policy: every operation is refused. New copies the
	// policies: changing them later has no effect.
	Roles map[string]Policy

	// Logger receives every call (at debug level, with role, pid and uid),
	// every refusal and protocol violation (warn), and worker lifecycle
	// events. Nil means slog.Default().
	Logger *slog.Logger

	// MaxPayload is the largest request or reply payload, in bytes;
	// 0 means 64 KiB. MaxFiles is the largest number of descriptors in one
	// message; 0 means 16. Both apply to both directions.
	MaxPayload int
	MaxFiles   int

	// MaxInFlight is how many requests of one worker are handled at the
	// same time; further requests wait. 0 means 64.
	MaxInFlight int

	// WriteTimeout is how long a reply may wait for a worker to make room
	// in its socket before the worker is taken for one that stopped
	// reading, and killed (a named-socket peer: disconnected). 0 means 5s;
	// raise it for workers that may be stopped for a while (a debugger, a
	// frozen cgroup).
	WriteTimeout time.Duration

	// MaxNamedSessions caps the named-socket sessions
	// ([Supervisor.ListenUnix]) served at once, counted from a client's
	// admission to the end of its session; MaxNamedSessionsPerUID caps
	// those of one UID, so that one user cannot take them all. A client
	// beyond either cap gets an error reply and is disconnected: its
	// [Dial] fails with an error matching [ErrUnavailable]. Refusals are
	// logged, the first 20 and then one in 100. 0 means 256 and 32.
	//
	// An idle session costs the parent two descriptors (its socket and
	// the client's pidfd) and about 20 KiB; a busy one also a thread while
	// it waits for its next request (10 ms at most) and one per handler
	// in a system call. The defaults keep that far below Go's thread
	// limit (10,000) and the usual descriptor limits, and let eight users
	// share the total.
	MaxNamedSessions       int
	MaxNamedSessionsPerUID int
}

// Policy is what one role may do. It denies everything it does not list.
type Policy struct {
	// Files lists the files the role may reach through its parent:
	// [Worker.Open], [Worker.OpenFile], [Worker.Stat] and the other file
	// methods of [Worker].
	Files []PathRule
	// Listen lists the addresses the role may listen on with
	// [Worker.Listen].
	Listen []ListenRule
	// Ops lists the user-defined operations (see [Supervisor.Handle]) the
	// role may call.
	Ops map[string]OpRule
	// Claim decides which processes connecting to a named socket
	// ([Supervisor.ListenUnix]) may take this role. Nil: none; the role
	// is only for workers the supervisor spawns. It runs when the hello
	// arrives; an Authorizer that looks at the process
	// (peercred.AllowExecutables, peercred.DescendantOf) then confirms
	// through the connection's pidfd that the process that connected is
	// still alive, so a client that handed its connection on and exited
	// is refused, whoever has its PID by then.
	//
	// The Cred it gets holds the attestation of the client's process
	// read when the hello arrived (peercred.Cred.WithAttestation):
	// peercred.AllowUnits, AllowCgroups, SameNamespaces and
	// AllowExecutableSHA256 decide by that reading, which the worker's
	// [Peer].Process then is, rather than reading /proc again. A refusal
	// is logged with the fact that did not match, and the process.
	Claim peercred.Authorizer
}

// OpRule allows a user-defined operation.
type OpRule struct {
	// Once allows the operation a single time per process (and role):
	// however many connections the process opens, for as long as it
	// lives. See "Once" in the package documentation.
	Once bool
}

// PathRule allows a worker a file, or everything beneath a directory,
// through its parent ([Worker.Open] and the other file methods of
// [Worker]): the parent opens, stats, creates... with its own privileges
// and sends back the result. Reading (open for reading, Stat, Lstat,
// Readlink, Access with R_OK) is always allowed; Write and Create allow
// more.
//
// The parent resolves every path with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS): "..",
// symbolic links (inside or out) and magic links (/proc/self/root,
// /proc/PID/fd/N) are refused, and a directory swapped for a link meanwhile
// is met by the kernel's resolution, not by an earlier check. Only regular
// files and directories are opened (a FIFO or a device is refused, without
// the parent waiting on it), directories only for a worker whose root
// directory is the parent's.
type PathRule struct {
	// Path is absolute and clean: a file, or with Beneath a directory.
	// A policy with any other Path (an empty one included) is an error:
	// Spawn and ListenUnix fail, naming the rule. Symbolic links on the way to the directory the rule is resolved
	// from (Path with Beneath, else Path's parent) are followed: the
	// policy is trusted. Beneath it none is, not even the file an exact
	// rule names, which the worker could have swapped for a link if it can
	// write the directory.
	Path string
	// Beneath allows everything beneath the directory Path, and Path
	// itself.
	Beneath bool
	// Write allows opening existing files for writing (os.O_WRONLY,
	// os.O_RDWR, os.O_TRUNC, os.O_APPEND) and Access with W_OK.
	Write bool
	// Create allows what Write does, and creating files (os.O_CREATE,
	// os.O_EXCL), Mkdir, Remove and Rename. What the parent creates
	// belongs to the worker's UID and GID (when the parent is root), with
	// the mode asked for, less setuid, setgid and sticky bits and the
	// parent's umask.
	Create bool
	// Once allows a single operation under this rule per process, as
	// [OpRule.Once].
	Once bool
}

// ListenRule allows a listening socket.
type ListenRule struct {
	// Network is "tcp", "tcp4", "tcp6", "unix" or "unixpacket"; Address
	// must match the worker's request exactly (for example
	// "127.0.0.1:80"). A TCP socket is handed over listening; a Unix one
	// bound, and the worker listens on it ([Worker.Listen]), so that its
	// clients see the worker as the server, not the parent.
	Network, Address string
	// Once allows a single listen under this rule per process, as
	// [OpRule.Once].
	Once bool
}

// RestartPolicy says when a worker is started again after it exits.
type RestartPolicy int

const (
	// RestartNever leaves an exited worker exited.
	RestartNever RestartPolicy = iota
	// RestartOnFailure restarts a worker that exits with a non-zero
	// status or is killed by a signal.
	RestartOnFailure
	// RestartAlways restarts a worker whenever it exits, until it is
	// stopped or the supervisor shuts down.
	RestartAlways
)

// Spec describes a worker to spawn.
type Spec struct {
	// Role names the function the worker runs ([Register]) and the policy
	// it gets (Config.Roles).
	Role string
	// Args are passed to the worker, see [Worker.Args].
	Args []string
	// Env lists KEY=VALUE entries for the worker's otherwise empty
	// environment.
	Env []string

	// UID, GID and Groups are the worker's credentials, set by the kernel
	// at exec. UID 0 or GID 0 is refused unless AllowRoot is set. A parent
	// that is not root can only spawn workers as itself, with its own
	// groups.
	UID, GID  uint32
	Groups    []uint32
	AllowRoot bool

	// Chroot, if set, is the worker's root directory; Path must then name
	// the worker binary inside it. Dir is the working directory (inside
	// the chroot); the default is "/".
	Chroot string
	Path   string
	Dir    string

	// UserNS starts the worker in a new user namespace in which it is
	// UID 0, mapped to UID and GID outside (no groups); PIDNS starts it
	// in a new PID namespace.
	UserNS, PIDNS bool

	// Stdout and Stderr receive the worker's output; nil means the
	// parent's standard error.
	Stdout, Stderr io.Writer

	// Restart says when to start the worker again; restarts wait
	// RestartDelay (default 100ms), doubling after each quick failure up
	// to MaxRestartDelay (default 30s).
	Restart         RestartPolicy
	RestartDelay    time.Duration
	MaxRestartDelay time.Duration

	// HelloTimeout bounds the time from exec to a verified worker; 0
	// means 10s.
	HelloTimeout time.Duration

	// Confine, if set, confines the worker (Landlock, seccomp, limits,
	// namespaces) before its hello; the parent verifies it before
	// admitting the worker. See package [confine].
	Confine *confine.Config
	// confineEnv is the Confine as the worker gets it, with its compiled
	// filter (confine_linux.go), set by checkSpec.
	confineEnv []string
}

// Peer is a verified worker, as the parent's handlers see it.
type Peer struct {
	Role string
	PID  int
	UID  uint32
	GID  uint32
	// Groups are the worker's supplementary groups, as /proc (spawned
	// workers) or SO_PEERGROUPS (named-socket workers) report them.
	Groups []uint32
	// PidFD refers to the worker process itself, immune to PID reuse; nil
	// if the kernel gave none. It belongs to the supervisor: do not close.
	PidFD *os.File
	// Named is true for a process that connected to a named socket
	// rather than being spawned.
	Named bool
	// Confinement is what the parent verified and the worker reported
	// of its confinement; nil without [Spec.Confine].
	Confinement *confine.Verified
	// Process is what the kernel said of the worker's process (its
	// executable, cgroup and systemd unit, namespaces, start time: see
	// peercred.Process, not to be confused with a supervised [Process]),
	// read once when the parent admitted it, and the same for all its
	// requests: for a spawned worker through the pidfd of its spawn
	// (peercred.AttestPidFD) right after its verification, for a
	// named-socket worker through its connection at its admission, the
	// very reading its role's [Policy.Claim] decided by
	// (peercred.Cred.WithAttestation). It is not read again: the process
	// may have moved to another cgroup since.
	//
	// It is nil when it could not be read, and the log line that
	// admitted the worker ("worker started", "named-socket worker
	// admitted") says why in its attest_err. The worker is served all
	// the same: its identity is what verification or Claim checked. A
	// handler that decides by Process must refuse a nil one. As root,
	// a spawned worker is attested on Linux 5.3 and later (pidfds); a
	// parent that is not root cannot read its own workers' executables
	// (they are not dumpable), and so gets none. A named-socket worker
	// needs Linux 6.5 (SO_PEERPIDFD), and a parent that may read its
	// /proc/PID/exe (root, or the worker's UID if it is dumpable).
	Process *peercred.Process
}

func (p *Peer) String() string {
	return fmt.Sprintf("%s worker pid %d uid %d gid %d", p.Role, p.PID, p.UID, p.GID)
}

// Request is one call from a worker.
type Request struct {
	// Peer is the verified worker that called.
	Peer *Peer
	Op   string
	// Payload is the request's data; it belongs to the handler.
	Payload []byte
	// Files are the descriptors sent with the request. They are closed
	// when the handler returns; to keep one, set its entry to nil.
	Files []*os.File
}

// handlerFunc serves a user-defined operation ([Supervisor.Handle]).
type handlerFunc = func(ctx context.Context, req *Request) (payload []byte, files []*os.File, err error)

// CallError is the error a worker's call receives when the parent refused or
// failed it.
type CallError struct {
	Op   string
	Code uint16
	Msg  string
}

func (e *CallError) Error() string {
	return fmt.Sprintf("privsep: %s: %s", e.Op, e.Msg)
}

// Is matches the sentinel error of the code.
func (e *CallError) Is(target error) bool {
	switch e.Code {
	case wire.CodeDenied:
		return target == ErrDenied
	case wire.CodeUnknownOp:
		return target == ErrUnknownOp
	case wire.CodeBadRequest:
		return target == ErrBadRequest
	case wire.CodeUnavailable:
		return target == ErrUnavailable
	}
	return false
}

// limits returns the wire limits of c, or an error for impossible values.
func (c *Config) limits() (wire.Limits, error) {
	lim := wire.DefaultLimits
	if c.MaxPayload != 0 {
		lim.MaxPayload = c.MaxPayload
	}
	if c.MaxFiles != 0 {
		lim.MaxFiles = c.MaxFiles
	}
	return lim, lim.Validate()
}

// roleFunc is the code a worker runs ([Register]).
type roleFunc = func(ctx context.Context, w *Worker) error

var (
	rolesMu sync.Mutex
	roles   = map[string]roleFunc{}
)

// Register makes fn available as role: the code a worker of that role runs.
// fn returns when its work is done or ctx ends (the parent asked the worker
// to stop, or is gone); a nil or context error exits the worker with status
// 0, another error with status 1. Call Register before [Main], from init or
// the start of main. It panics on an empty or duplicate role or a nil fn.
func Register(role string, fn func(ctx context.Context, w *Worker) error) {
	if !validName(role) {
		panic(fmt.Sprintf("privsep: Register: invalid role name %q (want [a-z0-9._-], 1 to %d bytes)", role, wire.MaxOpLen))
	}
	if fn == nil {
		panic("privsep: Register: nil function for role " + role)
	}
	rolesMu.Lock()
	defer rolesMu.Unlock()
	if _, dup := roles[role]; dup {
		panic("privsep: Register: role registered twice: " + role)
	}
	roles[role] = fn
}

// Dialer connects to a supervisor's named socket. Its zero value is usable.
//
// Anyone may bind an abstract name ("@name") first, or a socket file in a
// directory it can write: a process that connects to a named socket must
// check who serves it before it trusts what it is sent, as it checks the
// descriptors of [Worker.Open]. The Dialer checks the credentials the kernel
// recorded for the server at its listen(2), before anything is sent.
type Dialer struct {
	// Authorize decides whether the server may be trusted, from the
	// credentials it listened with. Nil: the server must run as this
	// process's effective UID or as root (UID 0). A refused server's
	// connection is closed before the hello, and Dial's error wraps
	// Authorize's (and so [peercred.ErrUnauthorized] for the built-in
	// Authorizers).
	Authorize peercred.Authorizer
}

// validName reports whether s is a valid role or operation name.
func validName(s string) bool {
	if s == "" || len(s) > wire.MaxOpLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
