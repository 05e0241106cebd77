package peercred

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// The Authorizers in this file decide by what [Cred.Attest] reads about
// the peer's process (Linux only). Each attests the peer itself, with the
// same guarantee: a fact that cannot be read, or a peer that exited (whose
// PID may be another process's), is a refusal, never a match. So each
// refuses every peer on Linux before 6.5 (no SO_PEERPIDFD), a Cred made by
// hand, and a Cred whose connection is closed; and on other systems every
// peer, with an error that satisfies errors.Is(err, errors.ErrUnsupported).
// Combined with AllOf, each reads /proc again: combine them with the
// cheaper checks (AllowUIDs...) first, or give them a Cred that holds one
// reading ([Cred.WithAttestation]), which they then decide by.

// attestFor attests c for an Authorizer, making a failure a refusal that
// names what could not be read.
func attestFor(c *Cred, what string, opts *AttestOptions) (*Process, error) {
	p, err := c.Attest(opts)
	if err != nil {
		return nil, fmt.Errorf("pid %d: %s unknown: %w: %w", c.PID, what, err, ErrUnauthorized)
	}
	return p, nil
}

// AllowUnits admits peers whose process is in one of the systemd units
// named (such as "backup.service"), as [SystemdUnit] reads its cgroup v2
// path: the unit systemd runs it in, never a unit that a user's service
// manager runs (those are named by the user: all of a user's units are
// "user@UID.service" here, which can be listed). A unit name that is not
// valid admits nobody.
//
// Systemd places a service's processes in its cgroup, and only root (or a
// service manager with a delegated subtree, beneath it) can move a process
// into a cgroup: on a systemd host the unit is the service manager's word.
// A process can move itself to another cgroup it may write, though (root,
// or a unit with Delegate=yes beneath its own): admit units, not the
// processes of a service with delegation. The unit is read from the path's
// names, after any number of slices: a cgroup named like a slice that root
// made by hand and handed to a user (systemd never does) lets that user
// name any unit beneath it.
func AllowUnits(units ...string) Authorizer {
	allowed := slices.Clone(units)
	return func(c *Cred) error {
		p, err := attestFor(c, "systemd unit", nil)
		if err != nil {
			return err
		}
		if p.Unit != "" && slices.Contains(allowed, p.Unit) {
			return nil
		}
		unit := p.Unit
		if unit == "" {
			unit = "none"
		}
		where := fmt.Sprintf("cgroup %q", p.Cgroup)
		if p.SystemdCgroup != "" {
			where += fmt.Sprintf(", name=systemd %q", p.SystemdCgroup)
		}
		return fmt.Errorf("pid %d: unit is %s (%s), not in the allowed list %q: %w", c.PID, unit, where, allowed, ErrUnauthorized)
	}
}

// AllowCgroups admits peers whose cgroup v2 path is one of prefixes or
// beneath one, comparing whole path components: "/system.slice" admits
// "/system.slice/foo.service" but not "/system.slice-x". A prefix that is
// not an absolute, clean path admits nobody. Paths are as seen from our
// cgroup namespace (see [Process].Cgroup). As with [AllowUnits], a process
// that may write to a cgroup's cgroup.procs can move itself there.
func AllowCgroups(prefixes ...string) Authorizer {
	allowed := slices.Clone(prefixes)
	var bad []string
	for _, p := range allowed {
		if err := cleanCgroupPrefix(p); err != nil {
			bad = append(bad, err.Error())
		}
	}
	return func(c *Cred) error {
		p, err := attestFor(c, "cgroup", nil)
		if err != nil {
			return err
		}
		for _, prefix := range allowed {
			if cleanCgroupPrefix(prefix) == nil && underCgroup(p.Cgroup, prefix) {
				return nil
			}
		}
		note := ""
		if len(bad) > 0 {
			note = " (" + strings.Join(bad, "; ") + ")"
		}
		return fmt.Errorf("pid %d: cgroup %q is not beneath any of %q%s: %w", c.PID, p.Cgroup, allowed, note, ErrUnauthorized)
	}
}

// AllowExecutableSHA256 admits peers whose executable's contents have one
// of the SHA-256 sums given, in hex (as sha256sum prints them). A sum that
// is not 64 hex digits admits nobody. It reads the whole executable
// through /proc/PID/exe at every check (see [AttestOptions].HashExecutable
// for what that costs), so a copy of an allowed file anywhere is admitted,
// and a file that was deleted or replaced since the peer started is judged
// by the contents the peer runs.
//
// What an executable proves, and what it does not, is in [Executables]:
// any process can connect, hand its connection to a child, and exec an
// allowed file. Combine it with a UID check, before it in [AllOf] (which
// checks in order): reading costs the peer nothing and the reader a second
// or so for a large file (an executable over [DefaultMaxExecutableSize] is
// refused unread; any user can run a sparse file of any size), and a peer
// whose executable is on a FUSE file system it serves itself (any user can
// mount one in a user namespace of its own) can make the read wait for as
// long as it likes, and the check with it. To admit a file by device and
// inode (the file, not its bytes), use [AllowExecutables].
func AllowExecutableSHA256(sums ...string) Authorizer {
	var (
		allowed [][]byte
		bad     []string
	)
	for _, s := range sums {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 32 {
			bad = append(bad, fmt.Sprintf("%q is not a SHA-256 sum in hex", s))
			continue
		}
		allowed = append(allowed, b)
	}
	return func(c *Cred) error {
		p, err := attestFor(c, "executable", &AttestOptions{HashExecutable: true})
		if err != nil {
			return err
		}
		for _, sum := range allowed {
			if bytes.Equal(sum, p.Exe.SHA256) {
				return nil
			}
		}
		note := ""
		if len(bad) > 0 {
			note = " (" + strings.Join(bad, "; ") + ")"
		}
		return fmt.Errorf("pid %d: executable %q has SHA-256 %x, not in the allowed list %q%s: %w",
			c.PID, p.Exe.Path, p.Exe.SHA256, sums, note, ErrUnauthorized)
	}
}

// SameNamespaces admits peers in the same user, PID, mount, network and
// cgroup namespaces as this process: not in a container, nor in a
// namespace of their own (which any user can make where unprivileged user
// namespaces are allowed). A refusal names every namespace that differs.
func SameNamespaces() Authorizer {
	return func(c *Cred) error {
		p, err := attestFor(c, "namespaces", nil)
		if err != nil {
			return err
		}
		var differ []string
		for _, n := range p.Namespaces.all() {
			if !n.ns.Ours {
				differ = append(differ, fmt.Sprintf("%s:[%d]", n.name, n.ns.ID))
			}
		}
		if len(differ) == 0 {
			return nil
		}
		return fmt.Errorf("pid %d: not in our namespaces: %s: %w", c.PID, strings.Join(differ, " "), ErrUnauthorized)
	}
}
