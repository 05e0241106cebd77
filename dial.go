package peercred

import (
	"context"
	"fmt"
	"net"
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
			raddr := c.RemoteAddr()
			c.Close()
			return nil, &net.OpError{Op: "dial", Net: "unix", Addr: raddr,
				Err: fmt.Errorf("peercred: server %v refused: %w", c.cred, aerr)}
		}
		return c, nil
	}
}
