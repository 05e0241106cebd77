package peercred

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Cred is the identity of the process at the other end of a Unix-domain
// socket, as the kernel recorded it. It is never something the peer sent:
// every field comes from the kernel (SO_PEERCRED and SO_PEERGROUPS on Linux,
// the native equivalents elsewhere).
//
// The kernel records a stream socket's credentials when the connection is
// made (connect(2) for the client, listen(2) for the server) and a socket
// pair's when socketpair(2) runs. A process that changes identity later is
// still reported with the identity it had then. In particular, both ends of a
// socket pair report the process that created it, even after one end has been
// handed to a child that dropped privileges: see [Socketpair].
//
// A UID or GID that is not mapped into the reader's user namespace is reported
// as the overflow ID (65534 on most systems, /proc/sys/kernel/overflowuid).
// Do not list 65534 in an allow-list unless every unmapped peer may pass.
type Cred struct {
	// PID is the peer's process ID in our PID namespace, or 0 when unknown:
	// the peer is not visible in our namespace, or the OS does not report it.
	PID int
	// UID and GID are the peer's effective user and group IDs.
	UID uint32
	GID uint32
	// Groups holds the peer's supplementary groups where the OS reports them
	// (Linux: SO_PEERGROUPS; macOS and FreeBSD: the xucred group list, which
	// starts with the effective GID). It is nil where the OS does not say.
	Groups []uint32

	// sock is the socket the credentials were read from (by a Listener,
	// Dial, FileConn or Get), or nil for a Cred made by hand. An
	// Authorizer that reads /proc by PID confirms through it, with the
	// pidfd the kernel keeps for the socket's peer, that the PID is still
	// the peer's: see [AllowExecutables]. Clone keeps it.
	sock syscall.Conn
}

// String returns a compact description such as "pid=42 uid=1000 gid=1000 groups=[1000 27]".
func (c *Cred) String() string {
	if c == nil {
		return "<nil>"
	}
	var b strings.Builder
	b.WriteString("pid=")
	b.WriteString(strconv.Itoa(c.PID))
	b.WriteString(" uid=")
	b.WriteString(strconv.FormatUint(uint64(c.UID), 10))
	b.WriteString(" gid=")
	b.WriteString(strconv.FormatUint(uint64(c.GID), 10))
	if c.Groups != nil {
		b.WriteString(" groups=[")
		for i, g := range c.Groups {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(strconv.FormatUint(uint64(g), 10))
		}
		b.WriteByte(']')
	}
	return b.String()
}

// InGroup reports whether gid is the peer's primary group or one of its
// supplementary groups.
func (c *Cred) InGroup(gid uint32) bool {
	return c.GID == gid || slices.Contains(c.Groups, gid)
}

// Equal reports whether c and d hold the same PID, UID, GID and groups (in
// the same order). Either may be nil: two nils are equal. It ignores which
// connection the credentials were read from, so go-cmp's cmp.Diff, which
// uses it, compares two Creds by what they say.
func (c *Cred) Equal(d *Cred) bool {
	if c == nil || d == nil {
		return c == d
	}
	return c.PID == d.PID && c.UID == d.UID && c.GID == d.GID &&
		(c.Groups == nil) == (d.Groups == nil) && slices.Equal(c.Groups, d.Groups)
}

// Clone returns a deep copy of c. The copy still refers to the connection
// c was read from, so an Authorizer that looks at the peer process (see
// [AllowExecutables]) can check the copy as safely as c, for as long as
// that connection is open.
func (c *Cred) Clone() *Cred {
	if c == nil {
		return nil
	}
	n := *c
	n.Groups = slices.Clone(c.Groups)
	return &n
}

// Get returns the credentials of the peer of c, which must be a connected
// Unix-domain socket (a [*net.UnixConn], a [*Conn], or any net.Conn that
// implements [syscall.Conn] over an AF_UNIX socket). It works on either side:
// a server learns who connected, and a client learns who is listening (as of
// the server's listen(2) call).
//
// The Cred remembers c, so that an Authorizer that looks at the peer's
// process (see [AllowExecutables]) can confirm its PID while c is open.
//
// Get returns an error, never a credential, for a conn that is not a Unix
// socket or not connected. On systems without a peer-credential call it
// returns an error that satisfies errors.Is(err, errors.ErrUnsupported).
func Get(c net.Conn) (*Cred, error) {
	if c == nil {
		return nil, errors.New("peercred: get credentials: nil conn")
	}
	if pc, ok := c.(*Conn); ok {
		c = pc.UnixConn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("peercred: get credentials: %T is not a socket", c)
	}
	cred := new(Cred)
	if err := readCred(sc, cred); err != nil {
		return nil, fmt.Errorf("peercred: get credentials: %w", err)
	}
	cred.sock = sc
	return cred, nil
}

// readCred fills c with the credentials of the peer of sc's socket. It
// appends groups to c.Groups[:0], so a caller can offer storage for them.
func readCred(sc syscall.Conn, c *Cred) error {
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// The closure given to Control would escape, and cost an allocation
	// per call: use one bound once, from a pool.
	r := credReaders.Get().(*credReader)
	r.cred = c
	err = rc.Control(r.fn)
	cerr := r.err
	r.cred, r.err = nil, nil
	credReaders.Put(r)
	if err != nil {
		return err
	}
	return cerr
}

type credReader struct {
	fn   func(fd uintptr)
	cred *Cred
	err  error
}

var credReaders = sync.Pool{New: func() any {
	r := new(credReader)
	r.fn = func(fd uintptr) { r.err = fillCred(int(fd), r.cred) }
	return r
}}

// errNotUnix is returned for a descriptor that is not an AF_UNIX socket.
var errNotUnix = errors.New("not a Unix-domain socket")

// errNoPeer is returned when the kernel has no credentials for the peer: the
// socket is not connected (or, on some systems, not a stream socket).
var errNoPeer = fmt.Errorf("no peer credentials (socket not connected): %w", syscall.ENOTCONN)
