package peercred

import (
	"context"
	"fmt"
	"net"
	"os"
)

// DialFunc returns a dial function that connects to the Unix-domain stream
// socket addr (a path or "@name"), whatever network and address it is asked
// for, and admits the server only if authorize accepts the credentials it
// listened with. It has the signature of [net/http.Transport.DialContext],
// so an HTTP client can talk to a server on a Unix socket and refuse one
// that is not run by the expected user:
//
//	client := &http.Client{Transport: &http.Transport{
//		DialContext: peercred.DialFunc("/run/app/app.sock", peercred.AllowUIDs(0)),
//	}}
//	resp, err := client.Get("http://app/status") // the host name is not used for dialing
//
// The conns it returns are of type [*Conn]. A refused server's conn is closed
// before anything is sent on it, and the error wraps the Authorizer's, and
// so [ErrUnauthorized] for the built-in ones; net/http returns it wrapped
// in a *url.Error, and errors.Is sees through both. A nil authorize means
// [SameUserOrRoot]: the server must run as this process's effective UID or
// as root, as for every client in this module given no Authorizer. (To
// admit any server, which anyone who can take the socket's name first can
// run, pass an Authorizer that returns nil.)
//
// The server's credentials are those of the process that called listen(2),
// as of that call: see [Dial].
func DialFunc(addr string, authorize Authorizer) func(ctx context.Context, network, address string) (net.Conn, error) {
	if authorize == nil {
		authorize = SameUserOrRoot()
	}
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := Dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		if aerr := authorize(c.cred); aerr != nil {
			// Described before Close: its groups are read from c.
			err := &net.OpError{Op: "dial", Net: "unix", Addr: c.RemoteAddr(),
				Err: fmt.Errorf("peercred: server %v refused: %w", c.cred, aerr)}
			c.Close()
			return nil, err
		}
		return c, nil
	}
}

// Dial connects to the Unix-domain stream socket addr (a path or "@name") and
// reads the server's credentials: Cred() of the returned Conn is the process
// that created the listening socket, as of its listen call. A client can
// refuse a server that is not who it expects before sending it anything:
//
//	c, err := peercred.Dial(ctx, "/run/app.sock")
//	...
//	if c.Cred().UID != 0 { c.Close(); return errors.New("socket not served by root") }
//
// A server that dropped privileges after listening is still reported with
// the identity it had when it called listen.
func Dial(ctx context.Context, addr string) (*Conn, error) {
	return DialNetwork(ctx, "unix", addr)
}

// DialNetwork is [Dial] for network "unix" (stream) or "unixpacket"
// (SOCK_SEQPACKET).
func DialNetwork(ctx context.Context, network, addr string) (*Conn, error) {
	if network != "unix" && network != "unixpacket" {
		return nil, &net.OpError{Op: "dial", Net: network, Err: fmt.Errorf("peercred: network %q is not \"unix\" or \"unixpacket\"", network)}
	}
	raddr := &net.UnixAddr{Name: addr, Net: network}
	if err := checkPathLen(addr); err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: fmt.Errorf("peercred: %w", err)}
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, explainDial(addr, err)
	}
	uc := nc.(*net.UnixConn)
	c, err := newConn(uc)
	if err != nil {
		uc.Close()
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err}
	}
	c.raddr = raddr
	return c, nil
}

// FileConn returns a Conn for the connected Unix-domain socket f, such as a
// socket pair end inherited through [os/exec.Cmd.ExtraFiles]. Like
// [net.FileConn] it works on a duplicate of the descriptor: closing the Conn
// does not close f, and the caller still owns (and should close) f.
func FileConn(f *os.File) (*Conn, error) {
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("peercred: file conn: %w", err)
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("peercred: file conn: %s is not a Unix-domain socket", f.Name())
	}
	c, err := newConn(uc)
	if err != nil {
		uc.Close()
		return nil, err
	}
	return c, nil
}
