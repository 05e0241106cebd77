package peercred

import (
	"fmt"
	"slices"
	"sync"
)

// authorizing maps the Cred of a conn being authorized by a Listener to the
// conn, so that an Authorizer that reads /proc by PID can check afterwards
// that the PID still names the peer (see peerAlive).
var authorizing sync.Map // *Cred -> *Conn

// AllowExecutables admits peers whose executable, as /proc/PID/exe shows it,
// is one of paths (absolute, compared as given after the kernel resolved
// every link). Linux only; elsewhere it refuses every peer with an error that
// satisfies errors.Is(err, errors.ErrUnsupported).
//
// The PID is the kernel's, but a process can exit and its PID be reused.
// Used by a [Listener], the check is sound: after reading /proc it confirms,
// through the connection's pidfd (Linux 6.5+), that the peer is still the
// process with that PID. Called on a Cred from elsewhere, it cannot.
// An executable path says which program a process started from, not what it
// runs now: a process can be told what to do by its input. Combine it with a
// UID check.
func AllowExecutables(paths ...string) Authorizer {
	allowed := slices.Clone(paths)
	return func(c *Cred) error {
		exe, err := peerExe(c.PID)
		if err != nil {
			return fmt.Errorf("pid %d: executable unknown: %w: %w", c.PID, err, ErrUnauthorized)
		}
		if err := peerAlive(c); err != nil {
			return err
		}
		if !slices.Contains(allowed, exe) {
			return fmt.Errorf("pid %d executable %s is not in the allowed list %q: %w", c.PID, exe, allowed, ErrUnauthorized)
		}
		return nil
	}
}

// DescendantOf admits the process pid itself and its descendants, as the
// parent links in /proc show them at accept time (Linux only, as
// [AllowExecutables], and with the same check that the peer's PID was its
// own). A peer whose ancestors exit is reparented and stops being a
// descendant. pid must be visible in our PID namespace.
func DescendantOf(pid int) Authorizer {
	return func(c *Cred) error {
		ok, err := descends(c.PID, pid)
		if err != nil {
			return fmt.Errorf("pid %d: process tree unknown: %w: %w", c.PID, err, ErrUnauthorized)
		}
		if err := peerAlive(c); err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("pid %d is not pid %d or a descendant of it: %w", c.PID, pid, ErrUnauthorized)
		}
		return nil
	}
}
