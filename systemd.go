package peercred

import (
	"errors"
	"fmt"
)

// ErrNotActivated is wrapped by the error of [ListenConfig.ActivationListener]
// and [ListenConfig.ActivationListeners] when this process was given no
// sockets: LISTEN_PID or LISTEN_FDS is not set, LISTEN_FDS is 0, or
// LISTEN_PID names another process (the variables were inherited from a
// parent that was activated). A server that can also run on its own tests
// for it and listens itself:
//
//	l, err := lc.ActivationListener()
//	if errors.Is(err, peercred.ErrNotActivated) {
//		l, err = lc.Listen(ctx, "/run/app/app.sock")
//	}
var ErrNotActivated = errors.New("not socket-activated")

// UnnamedSocket is the name [ListenConfig.ActivationListeners] gives to
// sockets passed without names (LISTEN_FDNAMES not set), as
// sd_listen_fds_with_names(3) does.
const UnnamedSocket = "unknown"

// The socket activation protocol, sd_listen_fds(3): the activator passes
// LISTEN_FDS descriptors starting at 3 (SD_LISTEN_FDS_START), and says for
// which process they are (LISTEN_PID) and, optionally, their names
// (LISTEN_FDNAMES, separated by colons).
const (
	envListenPID     = "LISTEN_PID"
	envListenFDs     = "LISTEN_FDS"
	envListenFDNames = "LISTEN_FDNAMES"
	listenFDsStart   = 3
)

// ActivationListener returns the listening socket that systemd (or another
// activator, such as systemd-socket-activate) passed to this process, which
// must have been given exactly one. See [ListenConfig.ActivationListeners]
// for the checks it makes, what it does with the descriptors and the
// environment, and its errors.
func (lc *ListenConfig) ActivationListener() (*Listener, error) {
	return lc.activationListener(listenFDsStart)
}

// ActivationListeners returns the listening sockets that systemd (or another
// activator, such as systemd-socket-activate) passed to this process, by
// name: the socket unit's FileDescriptorName= (by default the unit's name),
// or [UnnamedSocket] when the activator gave no names. Names need not be
// unique: systemd gives every socket of a unit the same name, so each name
// maps to its sockets in the order they were passed. Each is a [*Listener]
// whose conns carry their peer's credentials and pass lc.Authorize, as with
// [ListenConfig.Listen]; closing it leaves the socket file to its owner
// (systemd removes it when the socket unit stops).
//
// ActivationListeners reads LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES and
// unsets them, whatever the outcome, so that neither a second call nor a
// child process takes the descriptors for its own. (Call it early in main,
// before starting other processes: until then the descriptors are
// inheritable, as the activator passed them.) It then checks that
//
//   - LISTEN_PID is this process, and LISTEN_FDS a number;
//   - LISTEN_FDNAMES, when set, has one non-empty name per descriptor;
//   - every descriptor is a Unix-domain socket of lc.Network's type
//     (SOCK_STREAM for "unix", SOCK_SEQPACKET for "unixpacket") and is
//     listening.
//
// The descriptors are made close-on-exec before anything else is checked.
// On success each Listener has a close-on-exec duplicate of its socket and
// the passed descriptor (3, 4, ...) is closed. On an error every passed
// descriptor is closed, since with the variables gone nobody could claim it
// any more; only if one is not open at all (LISTEN_FDS says more than were
// passed) are it and those after it left alone. If LISTEN_PID names
// another process, or LISTEN_FDS cannot be read, no descriptor is touched:
// they are not this process's to take. An error wraps
// [ErrNotActivated] when there are no sockets for this process; any other
// error says what did not match, such as "LISTEN_FDS=3 but LISTEN_FDNAMES
// has 2 names".
//
// Socket activation is a Linux protocol; on other systems
// ActivationListeners leaves the variables alone and returns an error that
// satisfies both errors.Is(err, errors.ErrUnsupported) and
// errors.Is(err, ErrNotActivated), so that a program that falls back on
// [ListenConfig.Listen] when it was not activated does so there too.
func (lc *ListenConfig) ActivationListeners() (map[string][]*Listener, error) {
	return lc.activationListeners(listenFDsStart)
}

// activationListener and activationListeners take the descriptors numbered
// from first on (tests pass another number than 3).
func (lc *ListenConfig) activationListener(first int) (*Listener, error) {
	ls, err := lc.activate(first, 1)
	if err != nil {
		return nil, err
	}
	return ls[0].l, nil
}

func (lc *ListenConfig) activationListeners(first int) (map[string][]*Listener, error) {
	ls, err := lc.activate(first, 0)
	if err != nil {
		return nil, err
	}
	m := make(map[string][]*Listener, len(ls))
	for _, a := range ls {
		m[a.name] = append(m[a.name], a.l)
	}
	return m, nil
}

// activatedListener is a listener from socket activation and its name.
type activatedListener struct {
	name string
	l    *Listener
}

func activationError(err error) error {
	return fmt.Errorf("peercred: socket activation: %w", err)
}
