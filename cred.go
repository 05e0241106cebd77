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
// everything it reports comes from the kernel (SO_PEERCRED and, for
// [Cred.Groups], SO_PEERGROUPS on Linux; the native equivalents elsewhere).
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

	// groups are the supplementary groups that Groups reports, or the
	// socket to read them from when first asked; nil means unknown. Clone
	// and WithGroups copies share it: it is never changed once read.
	groups *groupList

	// sock is the socket the credentials were read from (by a Listener,
	// Dial, FileConn or Get), or nil for a Cred made by hand. An
	// Authorizer that reads /proc by PID confirms through it, with the
	// pidfd the kernel keeps for the socket's peer, that the PID is still
	// the peer's: see [AllowExecutables]. Clone keeps it.
	sock syscall.Conn

	// attested, if not nil, is the reading of WithAttestation, which
	// Attest returns. Only WithAttestation sets it, from sock; Clone
	// and WithGroups copies share it (it is never changed).
	attested *attestation
}

// Groups returns the peer's supplementary groups, where the OS reports them
// (Linux: SO_PEERGROUPS, since 4.13; macOS and FreeBSD: the xucred group
// list, which starts with the effective GID). It returns nil, and no error,
// where the OS does not say, and for a Cred made by hand (see
// [Cred.WithGroups]); an empty list means none. The slice is shared: do not
// modify it.
//
// On Linux, the Cred of a [Conn] (from a [Listener], [Dial], [FileConn] or
// [Socketpair]) reads the groups from the connection the first time they
// are asked for, and keeps them: most servers never ask, and accepting
// costs one system call less. The kernel recorded them with the other
// credentials, when the connection was made, so they are the same whenever
// they are read, even after the peer changed its groups or exited. But they
// can be read only while the connection is open: asked for the first time
// after the Conn was closed, Groups returns an error that satisfies
// errors.Is(err, net.ErrClosed), never an empty list. Ask before closing
// (an Authorizer that looks at groups, such as [AllowGIDs], runs while the
// connection is open). [Get] reads them at once.
func (c *Cred) Groups() ([]uint32, error) {
	if c == nil || c.groups == nil {
		return nil, nil
	}
	return c.groups.get()
}

// WithGroups returns a copy of c whose supplementary groups, as [Cred.Groups]
// reports them, are a copy of groups: nil for unknown, empty for none. It is
// for a Cred made by hand, such as the one a test expects:
//
//	want := (&peercred.Cred{PID: pid, UID: 1000, GID: 1000}).WithGroups([]uint32{27})
func (c *Cred) WithGroups(groups []uint32) *Cred {
	n := new(Cred)
	if c != nil {
		*n = *c
	}
	n.groups = nil
	if groups != nil {
		n.groups = &groupList{ids: slices.Clone(groups)}
	}
	return n
}

// String returns a compact description such as "pid=42 uid=1000 gid=1000
// groups=[1000 27]". Groups are left out where they are unknown, and shown
// as "groups=?" where they could not be read (see [Cred.Groups]).
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
	groups, err := c.Groups()
	switch {
	case err != nil:
		b.WriteString(" groups=?")
	case groups != nil:
		b.WriteString(" groups=[")
		for i, g := range groups {
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
// supplementary groups. Groups that cannot be read (see [Cred.Groups])
// count as not holding gid.
func (c *Cred) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	groups, err := c.Groups()
	return err == nil && slices.Contains(groups, gid)
}

// Equal reports whether c and d hold the same PID, UID, GID and groups (in
// the same order). Either may be nil: two nils are equal. It ignores which
// connection the credentials were read from, so go-cmp's cmp.Diff, which
// uses it, compares two Creds by what they say. Groups that cannot be read
// (see [Cred.Groups]) equal nothing.
func (c *Cred) Equal(d *Cred) bool {
	if c == nil || d == nil || c == d {
		return c == d
	}
	if c.PID != d.PID || c.UID != d.UID || c.GID != d.GID {
		return false
	}
	cg, cerr := c.Groups()
	dg, derr := d.Groups()
	return cerr == nil && derr == nil && (cg == nil) == (dg == nil) && slices.Equal(cg, dg)
}

// Clone returns a copy of c, which the caller may modify. The copy still
// refers to the connection c was read from, so an Authorizer that looks at
// the peer process (see [AllowExecutables]) can check the copy as safely as
// c, for as long as that connection is open; and it shares c's groups,
// read once for both.
func (c *Cred) Clone() *Cred {
	if c == nil {
		return nil
	}
	n := *c
	return &n
}

// groupList holds a peer's supplementary groups, read from sock the first
// time they are asked for when sock is not nil.
type groupList struct {
	once sync.Once
	sock syscall.Conn // set before the list is shared, never changed
	ids  []uint32
	err  error
	buf  [8]uint32 // room for a few groups, in the Conn's allocation
}

func (g *groupList) get() ([]uint32, error) {
	if g.sock != nil {
		g.once.Do(g.read)
	}
	return g.ids, g.err
}

func (g *groupList) read() {
	g.ids, g.err = readGroups(g.sock, g.buf[:0])
}

// Get returns the credentials of the peer of c, which must be a connected
// Unix-domain socket (a [*net.UnixConn], a [*Conn], or any net.Conn that
// implements [syscall.Conn] over an AF_UNIX socket). It works on either side:
// a server learns who connected, and a client learns who is listening (as of
// the server's listen(2) call).
//
// Get reads every credential at once, the groups too, so the Cred's Groups
// works after c is closed. The Cred remembers c, so that an Authorizer that
// looks at the peer's process (see [AllowExecutables]) can confirm its PID
// while c is open.
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
	if err := readCred(sc, cred, false); err != nil {
		return nil, fmt.Errorf("peercred: get credentials: %w", err)
	}
	if groupsOnDemand {
		ids, err := readGroups(sc, nil)
		if err != nil {
			return nil, fmt.Errorf("peercred: get credentials: %w", err)
		}
		cred.groups = &groupList{ids: ids}
	}
	cred.sock = sc
	return cred, nil
}

// readCred fills c with the PID, UID and GID of the peer of sc's socket,
// and with its groups where the OS reports them in the same call (not on
// Linux: see groupsOnDemand). isUnix says that sc is known to be an AF_UNIX
// socket, whose domain need not be checked.
func readCred(sc syscall.Conn, c *Cred, isUnix bool) error {
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	// The closure given to Control would escape, and cost an allocation
	// per call: use one bound once, from a pool.
	r := credReaders.Get().(*credReader)
	r.cred, r.isUnix = c, isUnix
	err = rc.Control(r.fn)
	cerr := r.err
	r.cred, r.err = nil, nil
	credReaders.Put(r)
	if err != nil {
		return err
	}
	return cerr
}

// readGroups appends the supplementary groups of the peer of sc's socket
// to dst (SO_PEERGROUPS). It returns nil, and no error, where they are
// unknown, and an error that satisfies errors.Is(err, net.ErrClosed) once
// sc is closed.
func readGroups(sc syscall.Conn, dst []uint32) ([]uint32, error) {
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("peercred: read groups: %w", err)
	}
	r := credReaders.Get().(*credReader)
	r.groups = dst
	err = rc.Control(r.fn)
	groups, gerr := r.groups, r.err
	r.groups, r.err = nil, nil
	credReaders.Put(r)
	if err == nil {
		err = gerr
	}
	if err != nil {
		return nil, fmt.Errorf("peercred: read groups: %w", err)
	}
	return groups, nil
}

// credReader reads, in Control, either the credentials into cred (when
// not nil) or the groups into groups.
type credReader struct {
	fn     func(fd uintptr)
	cred   *Cred
	isUnix bool
	groups []uint32
	err    error
}

var credReaders = sync.Pool{New: func() any {
	r := new(credReader)
	r.fn = func(fd uintptr) {
		if r.cred != nil {
			r.err = fillCred(int(fd), r.cred, r.isUnix)
		} else {
			r.groups, r.err = peerGroups(int(fd), r.groups)
		}
	}
	return r
}}

// errNotUnix is returned for a descriptor that is not an AF_UNIX socket.
var errNotUnix = errors.New("not a Unix-domain socket")

// errNoPeer is returned when the kernel has no credentials for the peer: the
// socket is not connected (or, on some systems, not a stream socket).
var errNoPeer = fmt.Errorf("no peer credentials (socket not connected): %w", syscall.ENOTCONN)
