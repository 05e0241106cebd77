//go:build unix && !linux && !freebsd

package peercred

import (
	"context"
	"net"
)

// These systems cannot bind or connect relative to a directory descriptor,
// so bindIn and probeIn use the path dirPath+name: the one step of Listen
// whose path a user who owns a directory on it can still redirect. The
// checks Listen makes afterwards through dir then fail and it returns an
// error, but a socket bound elsewhere stays there. The stale-socket
// removal, chown, chmod, link and the removal on Close go through dir and
// stay in it.

// maxBindName is the longest name bindIn binds in place: it binds the
// caller's path, which checkPathLen has checked.
const maxBindName = 1 << 30

// bindIn listens on name in the directory dir, named dirPath (empty or
// ending in a slash); nothing may exist there.
func bindIn(ctx context.Context, network string, _ int, dirPath, name string) (*net.UnixListener, error) {
	var nlc net.ListenConfig
	l, err := nlc.Listen(ctx, network, dirPath+name)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// probeIn connects to name in the directory dir and hangs up: nil means a
// process accepts connections there.
func probeIn(ctx context.Context, network string, _ int, dirPath, name string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, dirPath+name)
	if err != nil {
		return err
	}
	return c.Close()
}
