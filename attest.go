package peercred

import (
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Process is what the kernel says about a peer's process beyond its
// credentials, read by [Cred.Attest] at one moment and confirmed to be the
// peer's (Linux only). Every field comes from the kernel; the peer chose
// some of them (the path it ran, the name of a cgroup it could create), and
// the docs of each say how far it can be trusted.
type Process struct {
	// PID is the peer's process ID in our PID namespace, as in its Cred.
	PID int
	// StartTime is when the process started, in clock ticks after boot
	// (field 22 of /proc/PID/stat). With PID it names one process for
	// good, in a log line for example: a later process with the same PID
	// starts later.
	StartTime uint64

	// Exe is the file the process runs.
	Exe Executable

	// Cgroup is the process's cgroup v2 path (the "0::" line of
	// /proc/PID/cgroup), such as "/system.slice/foo.service", as seen
	// from our cgroup namespace. It is "/" on a host without cgroup v2
	// (every process is in its root there).
	Cgroup string
	// SystemdCgroup is the process's path in the cgroup v1 "name=systemd"
	// hierarchy, on a host that has one (systemd's hybrid and legacy
	// modes), and "" elsewhere. On a legacy host, where systemd tracks
	// units there only, Cgroup is "/" and Unit and Slice come from this.
	SystemdCgroup string
	// CgroupID is the cgroup's ID (the inode number of its directory in
	// the cgroup v2 file system), from PIDFD_GET_INFO (Linux 6.13+);
	// 0 where the kernel does not say.
	CgroupID uint64
	// Unit and Slice are the systemd unit the cgroup path implies and the
	// slice it is in: see [SystemdUnit]. They come from Cgroup, or from
	// SystemdCgroup when Cgroup is "/" and SystemdCgroup is not.
	Unit, Slice string
	// UserUnit and UserSlice are, for a process under a user's service
	// manager (.../user@1000.service/app.slice/x.scope), the unit and
	// slice within it ("x.scope", "app.slice"); Unit is then
	// "user@1000.service". That user's processes can create and name
	// these as they like: never trust them beyond that user.
	UserUnit, UserSlice string

	// Namespaces are the process's namespaces, and whether each is ours.
	Namespaces Namespaces

	// Container is the container runtime and container ID that the cgroup
	// path suggests, or the zero value: see [ContainerGuess].
	Container ContainerGuess
}

// Executable describes the file a process runs: the one the kernel maps
// for it, reached through /proc/PID/exe, which leads to that file even in
// another mount namespace or once it has been deleted.
type Executable struct {
	// Path is the file's path as the process sees it (the text of the
	// /proc/PID/exe link), with " (deleted)" appended by the kernel when it
	// has been removed. The process chose it: in its own mount namespace
	// any path can lead to any file. Quote it (%q) in logs. Use Dev and
	// Ino, or SHA256, to tell which file it is.
	Path string
	// Dev and Ino are the device and inode number of the file.
	Dev, Ino uint64
	// SHA256 is the SHA-256 of the file's contents, read through
	// /proc/PID/exe, when asked for (AttestOptions.HashExecutable);
	// otherwise nil.
	SHA256 []byte
}

// Namespace is one of a process's namespaces.
type Namespace struct {
	// ID is the namespace's inode number, as in "net:[4026531840]" of
	// ls -l /proc/PID/ns.
	ID uint64
	// Ours says that it is the namespace this process is in.
	Ours bool
}

// Namespaces are a process's namespaces (/proc/PID/ns/*). PID is the PID
// namespace the process is in (not pid_for_children).
type Namespaces struct {
	User, PID, Mount, Net, Cgroup Namespace
}

// all lists the namespaces with their names in /proc/PID/ns.
func (n *Namespaces) all() [5]struct {
	name string
	ns   *Namespace
} {
	return [5]struct {
		name string
		ns   *Namespace
	}{{"user", &n.User}, {"pid", &n.PID}, {"mnt", &n.Mount}, {"net", &n.Net}, {"cgroup", &n.Cgroup}}
}

// ContainerGuess is the container a process seems to run in, guessed from
// the names container runtimes give cgroups (docker-ID.scope,
// cri-containerd-ID.scope, crio-ID.scope, libpod-ID.scope, /docker/ID,
// lxc.payload.NAME). It is a guess: any process that may create cgroups
// (root, or a user in a delegated subtree such as its user@.service) can
// make one with such a name. Never authorize by it; log it.
type ContainerGuess struct {
	// Runtime is "docker", "containerd", "cri-o", "podman" or "lxc";
	// "" when the path looks like no container.
	Runtime string
	// ID is the container ID (or, for lxc, its name).
	ID string
}

// AttestOptions say what [Cred.Attest] reads beyond the facts it always
// reads. The zero value (or nil) reads no file contents.
type AttestOptions struct {
	// HashExecutable reads the whole executable through /proc/PID/exe and
	// fills Executable.SHA256. An executable over MaxExecutableSize is an
	// error, unread. Reading takes a second or so for a large file, and
	// forever on a file system the peer serves itself (FUSE, in its own
	// user namespace): ask for it only from peers that cannot do that, or
	// off the accept path.
	HashExecutable bool
	// MaxExecutableSize is the largest executable, in bytes, that
	// HashExecutable reads; a larger one is an error, found before
	// reading. 0 means DefaultMaxExecutableSize.
	MaxExecutableSize int64
}

// DefaultMaxExecutableSize is the largest executable [Cred.Attest] hashes
// unless told otherwise (AttestOptions.MaxExecutableSize), and the largest
// [AllowExecutableSHA256] reads: 256 MiB, well above real programs, and a
// second or so of hashing. Any user can run an executable of any size (a
// sparse copy of a program, extended), which would hold the reader for as
// long as it is large.
const DefaultMaxExecutableSize = 256 << 20

// Attest reads what the kernel says about the peer's process (see
// [Process]) and confirms that it is the peer's: a process that reused the
// peer's PID is never described. opts may be nil.
//
// It takes a pidfd for the peer from the connection c was read from
// (SO_PEERPIDFD, never pidfd_open by PID), checks in that pidfd's fdinfo
// that /proc names the peer by c.PID (it does not if /proc belongs to
// another PID namespace than ours), opens /proc/PID, and then confirms
// through the pidfd that the peer is alive and has that PID, so that the
// directory is the peer's. Every fact is read through that directory (in
// which nothing can be opened once its process has exited), and the
// peer's start time and liveness are checked again at the end. It fails,
// and describes nothing, when any fact cannot be read:
//   - the peer exited (its PID may be another process's by now);
//   - c was not read from a connection (made by hand), or its connection
//     is closed: nothing can confirm the PID;
//   - PID 0 (a peer outside our PID namespace), no /proc, or a /proc of
//     another PID namespace;
//   - we may not read the peer's /proc/PID/exe or ns (another UID's
//     process, without CAP_SYS_PTRACE);
//   - Linux before 6.5 (no SO_PEERPIDFD): the error then also satisfies
//     errors.Is(err, errors.ErrUnsupported).
//
// CgroupID is read with PIDFD_GET_INFO, on Linux 6.13 and later.
//
// The peer is the process the kernel recorded for the connection: for
// either end of a [Socketpair], the process that created the pair.
//
// On other systems it returns an error that satisfies
// errors.Is(err, errors.ErrUnsupported).
func (c *Cred) Attest(opts *AttestOptions) (*Process, error) {
	if c == nil {
		return nil, fmt.Errorf("peercred: attest: nil Cred")
	}
	var o AttestOptions
	if opts != nil {
		o = *opts
	}
	var (
		p   *Process
		err error
	)
	if c.attested != nil {
		p, err = c.attested.get(c, o)
	} else {
		p, err = attest(c, o)
	}
	if err != nil {
		return nil, fmt.Errorf("peercred: attest pid %d: %w", c.PID, err)
	}
	return p, nil
}

// WithAttestation returns a copy of c (as [Cred.Clone]) that holds the
// attestation of its peer, or the error reading it, read now as
// [Cred.Attest] reads it with opts: the copy's Attest returns that reading
// (a copy of it) or that error, rather than reading /proc again, and so do
// the Authorizers that decide by it ([AllowUnits], [AllowCgroups],
// [SameNamespaces], [AllowExecutableSHA256]). Several Authorizers, and the
// log of what they admitted, then speak of the same reading, and it is
// read once.
//
// The reading stays what it was: the peer may since have exited, moved to
// another cgroup or changed its executable (PR_SET_MM_EXE_FILE). Use the
// copy for one decision, not for the life of a connection. An Attest of
// the copy that asks for the executable's SHA-256, when the reading has
// none, hashes the executable through the peer's /proc/PID/exe then, and
// fails unless that is still the same process running the same file.
//
// A Cred made by hand, or whose connection is closed, holds the error
// that Attest returns for it: nothing gives it a description.
func (c *Cred) WithAttestation(opts *AttestOptions) *Cred {
	if c == nil {
		return nil
	}
	var o AttestOptions
	if opts != nil {
		o = *opts
	}
	a := new(attestation)
	if c.attested != nil {
		a.p, a.err = c.attested.get(c, o)
	} else {
		a.p, a.err = attest(c, o)
	}
	n := *c
	n.attested = a
	return &n
}

// attestation is a reading of Cred.WithAttestation. It is never changed
// once made: Creds that share it (Clone) read it from any goroutine.
type attestation struct {
	p   *Process
	err error
}

// get returns a copy of the reading a, for an Attest of c with opts.
func (a *attestation) get(c *Cred, opts AttestOptions) (*Process, error) {
	if a.err != nil {
		return nil, a.err
	}
	if a.p.PID != c.PID { // a copy whose PID was changed
		return nil, fmt.Errorf("the attestation is of pid %d, not %d", a.p.PID, c.PID)
	}
	p := a.p.clone()
	if !opts.HashExecutable || p.Exe.SHA256 != nil {
		return p, nil
	}
	h, err := attest(c, opts)
	if err != nil {
		return nil, err
	}
	if h.PID != p.PID || h.StartTime != p.StartTime || h.Exe.Dev != p.Exe.Dev || h.Exe.Ino != p.Exe.Ino {
		return nil, fmt.Errorf("executable to hash is dev %d ino %d of pid %d start %d, not the attested dev %d ino %d of pid %d start %d",
			h.Exe.Dev, h.Exe.Ino, h.PID, h.StartTime, p.Exe.Dev, p.Exe.Ino, p.PID, p.StartTime)
	}
	p.Exe.SHA256 = h.Exe.SHA256
	return p, nil
}

// clone returns a copy of p that shares nothing with it.
func (p *Process) clone() *Process {
	n := *p
	n.Exe.SHA256 = slices.Clone(p.Exe.SHA256)
	return &n
}

// AttestPidFD reads what the kernel says about the process that pidfd
// refers to (see [Process]), as [Cred.Attest] does for a peer: for a
// process known by the pidfd that started it (exec.Cmd's
// SysProcAttr.PidFD, os.StartProcess's), such as a child whose end of a
// [Socketpair] reports its parent, the pair's creator, instead of it.
// pidfd must refer to a process, not to one of its threads (PIDFD_THREAD,
// which Linux 6.13 and later let AttestPidFD refuse; pass none before).
// AttestPidFD neither closes nor keeps pidfd. opts may be nil.
//
// It reads the process's PID from the pidfd's fdinfo in /proc, checks
// that this /proc is our PID namespace's (it names us as we name
// ourselves, and with PIDFD_GET_INFO, on Linux 6.13 and later, the
// process's PID there is ours for it too), and then reads and confirms
// as Cred.Attest does: a process that reused the PID is never
// described. It fails, and describes nothing, when the process has exited
// (reaped or not), when pidfd is not a pidfd, and when any fact cannot be
// read (as for Cred.Attest); pidfds exist since Linux 5.3.
//
// On other systems it returns an error that satisfies
// errors.Is(err, errors.ErrUnsupported).
func AttestPidFD(pidfd *os.File, opts *AttestOptions) (*Process, error) {
	if pidfd == nil {
		return nil, fmt.Errorf("peercred: attest pidfd: nil file")
	}
	var o AttestOptions
	if opts != nil {
		o = *opts
	}
	p, err := attestPidFD(pidfd, o)
	if err != nil {
		return nil, fmt.Errorf("peercred: attest by pidfd: %w", err)
	}
	return p, nil
}

// String describes p in one line for a log, such as
// `pid=42 start=123456 exe="/usr/bin/foo" unit=foo.service cgroup="/system.slice/foo.service"`.
// The executable's path and the cgroup are quoted: the peer chose them.
func (p *Process) String() string {
	if p == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "pid=%d start=%d exe=%q", p.PID, p.StartTime, p.Exe.Path)
	// Unit names hold no spaces or controls (see validUnitPrefix).
	if p.Unit != "" {
		b.WriteString(" unit=" + p.Unit)
	}
	if p.UserUnit != "" {
		b.WriteString(" user-unit=" + p.UserUnit)
	}
	fmt.Fprintf(&b, " cgroup=%q", p.Cgroup)
	if p.Container.Runtime != "" {
		fmt.Fprintf(&b, " container~%s:%q", p.Container.Runtime, p.Container.ID)
	}
	return b.String()
}

// SystemdUnit returns the systemd unit and slice that the cgroup v2 path
// cgroup implies, as systemd names them: the unit is the first component
// that names a unit other than a slice (a .service, .scope, .socket,
// .mount or .swap), the slice the last .slice before it ("-.slice", the
// root slice, when there is none). For a unit of a user's service manager
// (user@UID.service), userUnit and userSlice are the same beneath it:
//
//	/system.slice/foo.service                         foo.service, system.slice
//	/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope
//	                                                  user@1000.service, user-1000.slice, x.scope, app.slice
//	/init.scope                                       init.scope, -.slice
//
// A path with no unit returns unit "" (a process in a slice's own cgroup,
// or on a host without systemd). Only root, and a service manager for its
// own subtree, can create cgroups and move processes into them, so on a
// systemd host the unit (unlike userUnit, which the user names) is the
// service manager's word.
func SystemdUnit(cgroup string) (unit, slice, userUnit, userSlice string) {
	unit, slice, rest := unitIn(cgroup)
	if isUserManager(unit) {
		userUnit, userSlice, _ = unitIn(rest)
	}
	return unit, slice, userUnit, userSlice
}

// unitIn finds the first unit in the path p, the last slice before it,
// and the path that follows the unit.
func unitIn(p string) (unit, slice, rest string) {
	slice = "-.slice"
	for p != "" {
		var c string
		c, p, _ = strings.Cut(strings.TrimLeft(p, "/"), "/")
		switch {
		case c == "":
			return "", slice, ""
		case unitSuffix(c) == ".slice":
			slice = c
		case unitSuffix(c) != "":
			return c, slice, p
		default:
			return "", slice, ""
		}
	}
	return "", slice, ""
}

// unitSuffix returns the unit type suffix of name (".service", ...) for a
// unit type that has cgroups, or "" if name is no such unit name.
func unitSuffix(name string) string {
	for _, s := range []string{".service", ".scope", ".slice", ".socket", ".mount", ".swap"} {
		if len(name) > len(s) && strings.HasSuffix(name, s) && validUnitPrefix(name[:len(name)-len(s)]) {
			return s
		}
	}
	return ""
}

// validUnitPrefix reports whether s may precede a unit type suffix: the
// characters systemd allows in unit names ([a-zA-Z0-9:_.\-] and '@' once,
// for an instance).
func validUnitPrefix(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	ats := 0
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9',
			ch == ':', ch == '_', ch == '.', ch == '-', ch == '\\':
		case ch == '@':
			ats++
		default:
			return false
		}
	}
	return ats <= 1
}

// isUserManager reports whether unit is a user's service manager,
// user@UID.service.
func isUserManager(unit string) bool {
	uid, ok := strings.CutPrefix(unit, "user@")
	if !ok {
		return false
	}
	uid, ok = strings.CutSuffix(uid, ".service")
	if !ok || uid == "" {
		return false
	}
	_, err := strconv.ParseUint(uid, 10, 32)
	return err == nil
}

// containerRules map cgroup path components to container runtimes: a
// component with the prefix and suffix, or a component that equals a
// parent name followed by one with an ID.
var containerRules = []struct {
	prefix, suffix, runtime string
}{
	{"docker-", ".scope", "docker"},
	{"cri-containerd-", ".scope", "containerd"},
	{"crio-", ".scope", "cri-o"},
	{"libpod-", ".scope", "podman"},
	{"lxc.payload.", "", "lxc"},
}

// guessContainer returns the container that the cgroup path suggests.
// The deepest match wins: a container's cgroup can hold another's.
func guessContainer(cgroup string) ContainerGuess {
	var g ContainerGuess
	parts := strings.Split(strings.Trim(cgroup, "/"), "/")
	for i, c := range parts {
		for _, r := range containerRules {
			id, ok := strings.CutPrefix(c, r.prefix)
			if !ok {
				continue
			}
			if id, ok = strings.CutSuffix(id, r.suffix); ok && id != "" {
				g = ContainerGuess{Runtime: r.runtime, ID: id}
			}
		}
		// cgroupfs driver: /docker/ID.
		if c == "docker" && i+1 < len(parts) && isHexID(parts[i+1]) {
			g = ContainerGuess{Runtime: "docker", ID: parts[i+1]}
		}
	}
	return g
}

// isHexID reports whether s looks like a container ID: 64 hex digits.
func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// cleanCgroupPrefix checks that p is an absolute, clean cgroup path.
func cleanCgroupPrefix(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return fmt.Errorf("cgroup prefix %q is not an absolute, clean path", p)
	}
	return nil
}

// underCgroup reports whether the cgroup path c is prefix or beneath it,
// comparing whole components ("/a" holds "/a/b" but not "/ab").
func underCgroup(c, prefix string) bool {
	if prefix == "/" {
		return strings.HasPrefix(c, "/")
	}
	rest, ok := strings.CutPrefix(c, prefix)
	return ok && (rest == "" || rest[0] == '/')
}
