package peercred

import (
	"slices"
)

// Executables admits peers by the file their process runs (Linux only).
// AllowExecutables(paths...) is Executables{Paths: paths}.Authorizer().
//
// The peer's executable is the file the kernel maps for it, reached through
// /proc/PID/exe (a link that leads to the file itself even in another mount
// namespace, or once the file is deleted): it must be the same file, same
// device and inode, as one of Paths. The text of the link is never compared:
// any user can make a user and mount namespace, mount a tmpfs, and put its
// own program at any path there, even one that does not exist outside.
//
// What it proves, and what it cannot. The kernel's record of a process's
// executable is not proof of what it exec'd: a process may set it
// (prctl PR_SET_MM_MAP with an exe_fd) to any file it can open, given
// CAP_CHECKPOINT_RESTORE in its user namespace, and any user gets that by
// making a user namespace of its own (where unprivileged user namespaces
// are allowed, as on most distributions), even from a sibling that shares
// the peer's memory while the peer itself stays in ours. Nor does a
// process that really exec'd an allowed file run only that file's code: it
// loads what LD_PRELOAD and its environment say, can be ptraced by its own
// UID, and does what its input tells it; and the connection may have been
// handed on by the process that made it to another, which the kernel
// still reports as the peer while the first lives. Any process can do that
// with no privilege at all: connect, fork a child that keeps the
// connection, and exec an allowed file it may run; the check, made after
// the exec (a server with a backlog is easily that late), sees the allowed
// file while the child talks. So an executable is never authentication on
// its own: combine it with a check that such a process cannot pass, a UID
// ([AllOf](AllowUIDs(...), AllowExecutables(...))) or a unit, or allow only
// files that nobody you would refuse may execute (mode 0750, owned by root
// and a trusted group).
//
// Files, not bytes: a copy of an allowed file is another file and is
// refused; a hard link to it is the same file and is admitted; a symbolic
// link in Paths stands for the file it leads to. Paths are looked up, in our
// mount namespace, at each check. So when a package upgrade replaces an
// allowed file (a new file renamed over it), processes started from the new
// file are admitted and processes still running the old one are refused
// from then on: restart them, or list the old path too if it stays. A path
// that does not exist, or is not absolute, admits nobody.
type Executables struct {
	// Paths are the allowed files, absolute.
	Paths []string

	// AnyMountNamespace admits a peer that runs an allowed file from
	// another mount namespace than ours, or with another root directory
	// (chroot). By default such a peer is refused: its dynamic loader,
	// libraries and every file it opens by path are whatever that
	// namespace mounts or that directory holds, and any user can make a
	// mount namespace or chroot (in a user namespace), so even the right
	// executable may run other code there. Set it for peers in
	// containers whose file system you trust.
	AnyMountNamespace bool
}

// AllowExecutables admits peers whose executable is one of the files at
// paths: see [Executables] for what that proves, what happens when a file is
// replaced, and why a peer in another mount namespace is refused.
//
// Like every Authorizer that looks at the peer's process ([DescendantOf]),
// it reads /proc by the PID of c and then confirms, through the pidfd the
// kernel keeps for the connection c was read from (SO_PEERPIDFD), that the
// peer is still alive, and so that the PID was still its own while /proc was
// read. This holds wherever it is called: in a [Listener], on a [Cred.Clone]
// kept for later checks (as grpcpeer's interceptors do), on a Cred from
// [Get]. It refuses:
//   - a peer that has exited (its PID may be another process's by now),
//   - a Cred whose connection has been closed, or that was not read from a
//     connection at all (made by hand), since nothing can confirm its PID,
//   - PID 0 (a peer outside our PID namespace),
//   - every peer when /proc is not that of our PID namespace (a server
//     that made a PID namespace of its own and kept the /proc it had):
//     there the peer's PID names another process; the pidfd's fdinfo in
//     /proc shows it,
//   - every peer on Linux before 6.5, which has no SO_PEERPIDFD: the error
//     then also satisfies errors.Is(err, errors.ErrUnsupported).
//
// On other systems it refuses every peer with an error that satisfies
// errors.Is(err, errors.ErrUnsupported).
func AllowExecutables(paths ...string) Authorizer {
	return Executables{Paths: paths}.Authorizer()
}

// Authorizer returns the Authorizer for e, which it copies: later changes
// to e do not affect it. See [AllowExecutables] for how it confirms the
// peer's PID.
func (e Executables) Authorizer() Authorizer {
	allowed := slices.Clone(e.Paths)
	anyNS := e.AnyMountNamespace
	return func(c *Cred) error { return checkExecutable(c, allowed, anyNS) }
}

// DescendantOf admits the process pid itself and its descendants, as the
// parent links in /proc show them at the check (Linux only). It confirms
// that the peer's PID was still its own as [AllowExecutables] does, and
// refuses in the same cases.
//
// A peer whose ancestors exit is reparented and stops being a descendant.
// pid must be visible in our PID namespace, and should be a process that
// outlives the policy (this one, or a child held unreaped): pid is a number,
// and once its process exits and is reaped it may name another. The
// ancestors are read one after another, each by PID; only the peer itself
// is confirmed through its pidfd.
func DescendantOf(pid int) Authorizer {
	return func(c *Cred) error { return checkDescendant(c, pid) }
}
