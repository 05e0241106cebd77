package peercred

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// A compile-time check that Listener satisfies the standard interface.
var _ net.Listener = (*Listener)(nil)

// ListenConfig holds the options for a credential-checking Unix listener.
// The zero value listens with the kernel's default file mode (0777 less the
// umask), keeps the owner, admits every peer and logs to [slog.Default].
type ListenConfig struct {
	// Network is "unix" (stream, the default when empty) or "unixpacket"
	// (SOCK_SEQPACKET: a connection that keeps message boundaries).
	Network string

	// Mode is the permission of the socket file (for example 0660). The
	// file is created in a private directory, given its mode and owner, and
	// only then linked at the requested path, so it is never reachable with
	// wider permissions than asked. 0 keeps the kernel's default. Connecting
	// to a socket file needs write permission on it.
	Mode os.FileMode

	// UID and GID are the owner and group given to the socket file. -1 (or
	// any negative value) leaves it unchanged. 0 also leaves it unchanged:
	// only root may give a file to root, and a file a root process creates
	// is root's already, so this keeps the zero ListenConfig usable by any
	// user. Changing the owner needs privilege (CAP_CHOWN), and changing
	// the group needs membership of it.
	UID, GID int

	// Authorize, if not nil, decides at accept time whether a peer may
	// connect. A peer it refuses is closed and logged, and Accept goes on
	// to the next one; the refused conn is never returned.
	Authorize Authorizer

	// Logger receives a line for every refused peer (with its pid, uid,
	// gid and the reason) and every conn whose credentials could not be
	// read. Nil means slog.Default(). Refusals are rate-limited per peer
	// UID, so that a user who connects in a loop cannot flood the log: the
	// first 5 in 10 seconds are logged in full, the others counted and
	// reported in one "peercred: refusals not logged" line (with uid and
	// dropped) per 10 seconds, and at Close.
	Logger *slog.Logger
}

// Listen announces on the Unix-domain stream socket addr with a zero
// [ListenConfig]: default mode and owner, every peer admitted.
//
// addr is a file system path, or, on Linux, an abstract socket name starting
// with "@". Abstract sockets have no file and so no permissions: anyone in the
// same network namespace can connect, and anyone can take the name first.
// Serve them with an [Authorizer], and have clients check the server with
// [Dial].
func Listen(ctx context.Context, addr string) (*Listener, error) {
	var lc ListenConfig
	return lc.Listen(ctx, addr)
}

// Listen announces on the Unix-domain stream socket addr (a path, or "@name"
// for a Linux abstract socket) with the options in lc.
//
// A socket file left behind at addr by a process that no longer listens is
// replaced. If something still accepts connections there, Listen fails with
// an error that satisfies errors.Is(err, syscall.EADDRINUSE). On Linux it
// first looks for a listening socket bound to the file in the kernel's
// socket table (sock_diag), so that the server there does not see a
// connection; only when none is found there (a server in another network
// namespace, or sock_diag unavailable) does it connect to the socket to find
// out, as it does on other systems, and the server may then accept that
// connection (closed at once, with no data). A socket is replaced only when
// that connect is refused. A file at addr
// that is not a socket is never removed: Listen fails with an error that
// satisfies errors.Is(err, fs.ErrExist).
//
// Mode, UID and GID apply to socket files only; setting them for an abstract
// address is an error rather than a protection silently not applied.
//
// A socket path longer than bind(2) and connect(2) take (sun_path less its
// NUL: 107 bytes on Linux, 103 on the BSDs and macOS) is refused with an
// error that satisfies errors.Is(err, syscall.ENAMETOOLONG): Listen could
// bind it, through a short name of its directory, but clients could not
// reach it. Addresses are always the path given: the Listener's Addr, and
// the LocalAddr of the conns it accepts, whatever name the socket was bound
// at (the name getsockname(2) and clients' getpeername(2) report; see
// [Conn.RemoteAddr]).
//
// The directory that holds the socket file is opened once, one path
// component at a time, following only symlinks that root or the caller's
// effective UID owns: a symlink of another user on the way makes Listen fail
// with an error that satisfies errors.Is(err, fs.ErrPermission). The
// Listener keeps that directory open until Close, and every step (the stale
// check and removal, bind, chown, chmod, link, and the removal on Close) works
// in it through its descriptor, never again through addr: a user who owns a
// directory on the path and swaps it for a symlink cannot make the listener
// create, change or remove a file anywhere else. Linux binds through
// /proc/self/fd (so /proc must be mounted) and FreeBSD with bindat(2); on
// macOS, OpenBSD, NetBSD and DragonFly, bind and the stale check still
// resolve the path, so such a user can have the socket created elsewhere
// (Listen then fails, and that socket file stays).
func (lc *ListenConfig) Listen(ctx context.Context, addr string) (*Listener, error) {
	if err := ctx.Err(); err != nil {
		return nil, listenError(addr, err)
	}
	if addr == "" {
		return nil, listenError(addr, errors.New("empty address"))
	}
	network, err := lc.network()
	if err != nil {
		return nil, listenError(addr, err)
	}
	if err := checkPathLen(addr); err != nil {
		return nil, listenError(addr, err)
	}
	if strings.HasPrefix(addr, "@") {
		if lc.Mode != 0 || lc.UID > 0 || lc.GID > 0 {
			return nil, listenError(addr, errors.New("an abstract socket has no file: Mode, UID and GID cannot apply"))
		}
		var nlc net.ListenConfig
		l, err := nlc.Listen(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return lc.newListener(l.(*net.UnixListener), addr, nil), nil
	}
	ul, file, err := listenFile(ctx, network, addr, lc.Mode, lc.UID, lc.GID)
	if err != nil {
		return nil, err
	}
	return lc.newListener(ul, addr, file), nil
}

// NewListener wraps ul, which it takes over: closing the returned Listener
// closes ul. Conns it accepts carry credentials and pass lc.Authorize, as with
// [ListenConfig.Listen]. Use it for listeners obtained elsewhere, such as
// from socket activation or a privileged parent. The socket file of ul, if
// any, is left in place on Close.
func (lc *ListenConfig) NewListener(ul *net.UnixListener) *Listener {
	ul.SetUnlinkOnClose(false)
	return lc.newListener(ul, ul.Addr().String(), nil)
}

func (lc *ListenConfig) network() (string, error) {
	switch lc.Network {
	case "", "unix":
		return "unix", nil
	case "unixpacket":
		return "unixpacket", nil
	}
	return "", fmt.Errorf("network %q is not \"unix\" or \"unixpacket\"", lc.Network)
}

func (lc *ListenConfig) newListener(ul *net.UnixListener, addr string, file *socketFile) *Listener {
	l := &Listener{
		ul:        ul,
		addr:      &net.UnixAddr{Name: addr, Net: ul.Addr().Network()},
		authorize: lc.Authorize,
		logger:    lc.Logger,
		file:      file,
	}
	l.cond.L = &l.mu
	return l
}

// Listener is a Unix-domain stream listener whose conns carry the
// kernel-verified credentials of their peers. It implements [net.Listener];
// Accept returns a [*Conn].
type Listener struct {
	ul        *net.UnixListener
	addr      *net.UnixAddr
	authorize Authorizer
	logger    *slog.Logger
	file      *socketFile // the socket file Listen created, removed on Close
	refusals  refusalLog  // rate-limits the lines about refused peers

	closeOnce sync.Once
	closeErr  error

	// AcceptContext interrupts a blocked accept by setting a deadline in
	// the past, which wakes every accept in progress. aborting counts the
	// calls whose context ended and that have not yet returned; while it is
	// non-zero the deadline stays set, and the other accepts wait on cond
	// for it to be lifted before they try again.
	mu       sync.Mutex
	cond     sync.Cond
	aborting int
}

// Addr returns the listener's address: the path (or "@name") it was created
// with.
func (l *Listener) Addr() net.Addr { return l.addr }

// Close stops listening and removes the socket file that Listen created, if
// it is still the same file. It is idempotent and safe to call from any
// goroutine; blocked Accept calls return an error that satisfies
// errors.Is(err, net.ErrClosed).
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closeErr = l.ul.Close()
		defer l.closeRefusalLog() // reports the refusals counted and not logged
		if l.file != nil {
			// Only if it is still the file we made, in the directory
			// Listen opened: see socketFile.remove.
			if err := l.file.remove(); err != nil && l.closeErr == nil {
				l.closeErr = err
			}
		}
	})
	return l.closeErr
}

// Accept waits for and returns the next authorized connection, a [*Conn].
// See [Listener.AcceptContext].
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptContext(context.Background())
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptPeerCred is Accept returning the concrete type.
func (l *Listener) AcceptPeerCred() (*Conn, error) {
	return l.AcceptContext(context.Background())
}

// AcceptContext waits for the next connection, reads its peer's credentials
// and checks them with the listener's Authorizer. A refused peer is logged and
// closed, and AcceptContext waits for the next one. A conn whose credentials
// cannot be read is closed and an error returned; that error is temporary
// (net.Error), so servers such as http.Server keep accepting.
//
// When ctx ends first, AcceptContext returns an error that wraps ctx.Err();
// the listener stays open and other Accept calls are not affected.
func (l *Listener) AcceptContext(ctx context.Context) (*Conn, error) {
	if ctx.Done() == nil {
		return l.accept(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, l.opError(err)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		l.mu.Lock()
		l.aborting++
		l.ul.SetDeadline(aLongTimeAgo) // fails only when closed: then Accept returns anyway
		l.cond.Broadcast()
		l.mu.Unlock()
		close(fired)
	})
	c, err := l.accept(ctx)
	if !stop() {
		<-fired
		l.mu.Lock()
		l.aborting--
		if l.aborting == 0 {
			l.ul.SetDeadline(time.Time{})
			l.cond.Broadcast()
		}
		l.mu.Unlock()
	}
	return c, err
}

var aLongTimeAgo = time.Unix(1, 0)

func (l *Listener) accept(ctx context.Context) (*Conn, error) {
	for {
		uc, err := l.ul.AcceptUnix()
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, err
			}
			if cerr := ctx.Err(); cerr != nil {
				return nil, l.opError(cerr)
			}
			// Another call's context ended: wait until it has lifted the
			// deadline (or our own context ends), then try again.
			l.mu.Lock()
			for l.aborting > 0 && ctx.Err() == nil {
				l.cond.Wait()
			}
			l.mu.Unlock()
			continue
		}
		c, err := newConn(uc)
		if err != nil {
			uc.Close()
			l.log().LogAttrs(ctx, slog.LevelError, "peercred: cannot read peer credentials; connection closed",
				slog.String("addr", l.addr.Name), slog.Any("err", err))
			return nil, l.opError(&credError{err})
		}
		c.laddr = l.addr
		if l.authorize != nil {
			if aerr := l.authorize(c.cred); aerr != nil {
				l.logRefusal(ctx, c.cred, aerr) // rate-limited per UID
				c.Close()
				continue
			}
		}
		return c, nil
	}
}

func (l *Listener) log() *slog.Logger {
	if l.logger != nil {
		return l.logger
	}
	return slog.Default()
}

func (l *Listener) opError(err error) error {
	return &net.OpError{Op: "accept", Net: l.addr.Net, Addr: l.addr, Err: err}
}

// credError reports a conn whose credentials could not be read. It is
// temporary: the listener itself is fine.
type credError struct{ err error }

func (e *credError) Error() string   { return e.err.Error() }
func (e *credError) Unwrap() error   { return e.err }
func (e *credError) Timeout() bool   { return false }
func (e *credError) Temporary() bool { return true }

func listenError(addr string, err error) error {
	return &net.OpError{Op: "listen", Net: "unix", Addr: &net.UnixAddr{Name: addr, Net: "unix"},
		Err: fmt.Errorf("peercred: %w", err)}
}
