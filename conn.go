package peercred

import (
	"fmt"
	"net"
)

// A compile-time check that Conn satisfies the standard interface.
var _ net.Conn = (*Conn)(nil)

// Conn is a Unix-domain connection together with the credentials the kernel
// recorded for its peer. It embeds the [*net.UnixConn], so it is a net.Conn
// and has every method of a UnixConn.
type Conn struct {
	*net.UnixConn
	cred *Cred

	// laddr and raddr, when not nil, are the addresses LocalAddr and
	// RemoteAddr report instead of the kernel's: the Listener's address
	// for a conn it accepted, the address dialed for a conn from Dial.
	laddr, raddr *net.UnixAddr

	// inline holds the credentials, and room for a few groups, in the
	// Conn's own allocation: accepting a conn costs one allocation over
	// net's.
	inline struct {
		cred   Cred
		groups groupList
	}
}

// Cred returns the peer's credentials, read from the kernel when the Conn was
// made: the client's for a conn from [Listener.Accept], the server's (as of
// its listen call) for a conn from [Dial], the creating process for
// [Socketpair]. The result is shared: do not modify it (use [Cred.Clone]).
// On Linux its groups are read from the conn when first asked for, which
// must be before the conn is closed: see [Cred.Groups].
func (c *Conn) Cred() *Cred { return c.cred }

// LocalAddr returns the local address. For a conn that a [Listener]
// accepted, it is the Listener's address: the path (or "@name") given to
// Listen. The kernel records for a socket the name it was bound at, which
// is not that path when Listen binds through a directory descriptor or a
// private directory (see [ListenConfig.Listen]); the embedded UnixConn's
// LocalAddr reports the kernel's record.
func (c *Conn) LocalAddr() net.Addr {
	if c.laddr != nil {
		return c.laddr
	}
	return c.UnixConn.LocalAddr()
}

// RemoteAddr returns the remote address. For a conn from [Dial], it is the
// address dialed, whatever name the server's socket was bound at (the
// kernel's record, which getpeername(2) and the embedded UnixConn's
// RemoteAddr report, may be a name that means nothing to the client, such
// as /proc/self/fd/7/s for a server made with [ListenConfig.Listen]).
func (c *Conn) RemoteAddr() net.Addr {
	if c.raddr != nil {
		return c.raddr
	}
	return c.UnixConn.RemoteAddr()
}

// newConn reads the peer credentials of uc and wraps it. It does not close
// uc on error.
//
// uc is a UnixConn, which net makes only for AF_UNIX sockets, so the domain
// of its socket is not checked again; and on Linux the groups are read when
// first asked for (see [Cred.Groups]). Accepting then costs one system call
// (SO_PEERCRED) over net's.
func newConn(uc *net.UnixConn) (*Conn, error) {
	c := &Conn{UnixConn: uc}
	c.cred = &c.inline.cred
	if err := readCred(uc, c.cred, true); err != nil {
		return nil, fmt.Errorf("peercred: get credentials: %w", err)
	}
	c.cred.sock = uc
	if groupsOnDemand {
		c.inline.groups.sock = uc
		c.cred.groups = &c.inline.groups
	}
	return c, nil
}
