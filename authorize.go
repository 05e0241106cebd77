package peercred

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// ErrUnauthorized is wrapped by every error an [Authorizer] built by this
// package returns: errors.Is(err, ErrUnauthorized) tells a policy refusal
// from other failures.
var ErrUnauthorized = errors.New("unauthorized")

// An Authorizer decides whether the peer with credentials c may proceed. It
// returns nil to admit the peer, or an error that says why not; errors
// should wrap [ErrUnauthorized]. An Authorizer is called concurrently from
// every goroutine that accepts, and must not modify c.
//
// A peer whose UID or GID is not mapped into our user namespace appears with
// the overflow ID (usually 65534, "nobody"/"nogroup"). The built-in
// authorizers match it only where it is listed explicitly, and [SameUser]
// never does.
type Authorizer func(c *Cred) error

// SameUser admits peers whose UID is the effective UID of this process at the
// time SameUser is called.
func SameUser() Authorizer {
	me := uint32(os.Geteuid())
	overflow := overflowUID()
	return func(c *Cred) error {
		if c.UID == me && c.UID != overflow {
			return nil
		}
		return fmt.Errorf("uid %d is not this process's uid %d: %w", c.UID, me, ErrUnauthorized)
	}
}

// SameUserOrRoot admits peers whose UID is the effective UID of this
// process at the time SameUserOrRoot is called, or root's (0). It is what a
// client in this module checks a server with when it is given no
// Authorizer ([DialFunc], grpcpeer's client credentials, privsep's Dialer):
// a server run by the user itself or by root is one the user trusts
// already, as either can act as the user anyway; any other user's server
// may be a squatter on the socket's name.
//
// A Unix server's credentials are those of the process that called
// listen(2) on the socket, which need not be the process that serves it:
// a socket that root listened on and handed to another process (a
// systemd socket unit whose service runs as another user, say) reads as
// root's. privsep's workers listen on their Unix sockets themselves, so
// they read as what they are.
func SameUserOrRoot() Authorizer {
	me := uint32(os.Geteuid())
	overflow := overflowUID()
	return func(c *Cred) error {
		if c.UID == 0 || c.UID == me && c.UID != overflow {
			return nil
		}
		return fmt.Errorf("uid %d is neither this process's uid %d nor root: %w", c.UID, me, ErrUnauthorized)
	}
}

// AllowUIDs admits peers whose UID is one of uids.
func AllowUIDs(uids ...uint32) Authorizer {
	allowed := slices.Clone(uids)
	return func(c *Cred) error {
		if slices.Contains(allowed, c.UID) {
			return nil
		}
		return fmt.Errorf("uid %d is not in the allowed list %s: %w", c.UID, idList(allowed), ErrUnauthorized)
	}
}

// AllowGIDs admits peers whose primary GID or one of whose supplementary
// groups is one of gids. Supplementary groups are known on Linux, macOS and
// FreeBSD; elsewhere only the primary GID is checked. It reads the groups
// (see [Cred.Groups]) only when the primary GID is not in gids, and refuses
// a peer whose groups cannot be read.
func AllowGIDs(gids ...uint32) Authorizer {
	allowed := slices.Clone(gids)
	return func(c *Cred) error {
		if slices.Contains(allowed, c.GID) {
			return nil
		}
		groups, err := c.Groups()
		if err != nil {
			return fmt.Errorf("gid %d is not in the allowed list %s, and the groups are unknown: %w: %w",
				c.GID, idList(allowed), err, ErrUnauthorized)
		}
		for _, g := range groups {
			if slices.Contains(allowed, g) {
				return nil
			}
		}
		return fmt.Errorf("gid %d and groups %s are not in the allowed list %s: %w",
			c.GID, idList(groups), idList(allowed), ErrUnauthorized)
	}
}

// AnyOf admits a peer that at least one of a admits. With no authorizers it
// admits nobody. The error for a refused peer lists every reason.
func AnyOf(a ...Authorizer) Authorizer {
	list := checkAuthorizers("AnyOf", a)
	return func(c *Cred) error {
		if len(list) == 0 {
			return fmt.Errorf("AnyOf of no authorizers admits nobody: %w", ErrUnauthorized)
		}
		errs := make([]error, 0, len(list))
		for _, f := range list {
			err := f(c)
			if err == nil {
				return nil
			}
			errs = append(errs, err)
		}
		return joinReasons(errs)
	}
}

// AllOf admits a peer that every one of a admits, checked in order; the
// first refusal is returned. With no authorizers it admits everyone.
func AllOf(a ...Authorizer) Authorizer {
	list := checkAuthorizers("AllOf", a)
	return func(c *Cred) error {
		for _, f := range list {
			if err := f(c); err != nil {
				return err
			}
		}
		return nil
	}
}

// checkAuthorizers copies a, panicking on a nil entry: a nil in a policy is
// a programming error, and treating it as either "admit" or "refuse" would
// hide it.
func checkAuthorizers(name string, a []Authorizer) []Authorizer {
	for i, f := range a {
		if f == nil {
			panic(fmt.Sprintf("peercred: %s: authorizer %d is nil", name, i))
		}
	}
	return slices.Clone(a)
}

// joinReasons joins several refusals into one error that still wraps
// ErrUnauthorized once, with a readable message.
func joinReasons(errs []error) error {
	msgs := make([]string, len(errs))
	for i, err := range errs {
		msgs[i] = strings.TrimSuffix(err.Error(), ": "+ErrUnauthorized.Error())
	}
	return &reasons{msg: strings.Join(msgs, "; "), errs: errs}
}

type reasons struct {
	msg  string
	errs []error
}

func (r *reasons) Error() string   { return r.msg + ": " + ErrUnauthorized.Error() }
func (r *reasons) Unwrap() []error { return append(slices.Clone(r.errs), ErrUnauthorized) }

func idList(ids []uint32) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprint(&b, id)
	}
	b.WriteByte(']')
	return b.String()
}

// overflowUID returns the ID the kernel shows for an unmapped UID.
func overflowUID() uint32 {
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err == nil {
		var id uint32
		if _, err := fmt.Sscan(string(b), &id); err == nil {
			return id
		}
	}
	return 65534
}
