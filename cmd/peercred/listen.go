package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
)

// listenFlags are the socket-file flags of the servers.
type listenFlags struct {
	mode  octalMode
	owner string
	group string
	fs    *flag.FlagSet
}

func (lf *listenFlags) define(fs *flag.FlagSet) {
	lf.fs = fs
	lf.mode = 0o666
	fs.Var(&lf.mode, "mode", "permissions of the socket file, in octal `MODE`; connecting needs write\n"+
		"permission, so the default lets every user try (0: the kernel's default, less the umask)")
	fs.StringVar(&lf.owner, "owner", "", "give the socket file to `USER` (a name or UID; needs root)")
	fs.StringVar(&lf.group, "group", "", "give the socket file to `GROUP` (a name or GID; needs root or membership)")
}

// listen listens on addr as the flags say, and returns the listener and its
// address. For an abstract address the default mode is dropped (there is no
// file), and an explicit -mode, -owner or -group is an error.
//
// When systemd (or systemd-socket-activate) started the process with one
// listening socket, listen takes that socket instead: addr may then be ""
// and otherwise must name it; the socket file's mode and owner are the
// socket unit's (SocketMode=, SocketUser=, SocketGroup=), so -mode, -owner
// and -group are an error.
func (lf *listenFlags) listen(ctx context.Context, addr string, lc *peercred.ListenConfig) (*peercred.Listener, string, error) {
	explicit := false
	lf.fs.Visit(func(f *flag.Flag) {
		explicit = explicit || f.Name == "mode" || f.Name == "owner" || f.Name == "group"
	})
	l, err := activationListener(lc)
	if err == nil {
		passed := l.Addr().String()
		switch {
		case explicit:
			err = usageError{errors.New("-mode, -owner and -group do not apply to the socket systemd passed (" + passed + "): its socket unit sets them")}
		case addr != "" && !sameAddr(addr, passed):
			err = fmt.Errorf("systemd passed the socket %s, not %s (leave SOCKET out, or make them agree)", passed, addr)
		}
		if err != nil {
			l.Close()
			return nil, "", err
		}
		return l, passed, nil
	}
	// Not activated (and, off Linux, never: the error says so too).
	if !errors.Is(err, peercred.ErrNotActivated) {
		return nil, "", err
	}
	if addr == "" {
		return nil, "", usageError{errors.New("want one SOCKET argument, got 0 (and systemd passed no socket)")}
	}
	lc.Mode = os.FileMode(lf.mode)
	lc.UID, lc.GID = -1, -1
	if lf.owner != "" {
		uid, _, err := ids.UID(lf.owner)
		if err != nil {
			return nil, "", usageError{fmt.Errorf("-owner: %w", err)}
		}
		lc.UID = int(uid)
	}
	if lf.group != "" {
		gid, err := ids.GID(lf.group)
		if err != nil {
			return nil, "", usageError{fmt.Errorf("-group: %w", err)}
		}
		lc.GID = int(gid)
	}
	if strings.HasPrefix(addr, "@") {
		if explicit {
			return nil, "", usageError{errors.New("-mode, -owner and -group need a socket file; " + addr + " is abstract")}
		}
		lc.Mode, lc.UID, lc.GID = 0, -1, -1
	}
	l, err = lc.Listen(ctx, addr)
	if err != nil {
		return nil, "", err
	}
	return l, addr, nil
}

// activationListener returns the one socket systemd passed, as
// lc.ActivationListener does, and says how many it passed when that is
// more than one.
func activationListener(lc *peercred.ListenConfig) (*peercred.Listener, error) {
	passed, err := lc.ActivationListeners()
	if err != nil {
		return nil, err
	}
	var all []*peercred.Listener
	var addrs []string
	for _, ls := range passed {
		for _, l := range ls {
			all = append(all, l)
			addrs = append(addrs, l.Addr().String())
		}
	}
	if len(all) == 1 {
		return all[0], nil
	}
	for _, l := range all {
		l.Close()
	}
	slices.Sort(addrs)
	return nil, fmt.Errorf("systemd passed %d sockets (%s); peercred serves one", len(all), strings.Join(addrs, ", "))
}

// sameAddr reports whether the socket address the user gave names the
// socket at passed.
func sameAddr(given, passed string) bool {
	if strings.HasPrefix(given, "@") || strings.HasPrefix(passed, "@") {
		return given == passed
	}
	abs, err := filepath.Abs(given)
	return err == nil && abs == filepath.Clean(passed)
}

// octalMode is a flag.Value for a file mode written in octal.
type octalMode os.FileMode

func (m *octalMode) String() string { return fmt.Sprintf("%#o", uint32(*m)) }

func (m *octalMode) Set(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n&^0o777 != 0 {
		return fmt.Errorf("%q is not an octal permission such as 0660", s)
	}
	*m = octalMode(n)
	return nil
}
