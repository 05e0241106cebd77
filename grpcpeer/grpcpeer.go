// Package grpcpeer gives gRPC servers and clients on Unix-domain sockets the
// kernel-verified identity of the process at the other end, from
// [github.com/peercred/peercred].
//
// On the server, transport credentials from [NewServerCredentials] read the
// client's [peercred.Cred] when the connection is made, and handlers (or
// interceptors) get it with [FromContext]. [UnaryServerInterceptor] and
// [StreamServerInterceptor] refuse callers an [peercred.Authorizer] rejects,
// with codes.PermissionDenied:
//
//	l, err := peercred.Listen(ctx, "/run/app/app.sock")
//	...
//	srv := grpc.NewServer(
//		grpc.Creds(grpcpeer.NewServerCredentials()),
//		grpc.UnaryInterceptor(grpcpeer.UnaryServerInterceptor(peercred.AllowUIDs(0, 1000))),
//	)
//	pb.RegisterAppServer(srv, app)
//	srv.Serve(l)
//
//	func (app) Get(ctx context.Context, req *pb.GetRequest) (*pb.GetResponse, error) {
//		cred, err := grpcpeer.FromContext(ctx) // cred.UID is the kernel's word
//		...
//	}
//
// On the client, [NewClientCredentials] checks who serves the socket before
// anything is sent to it (given nil, that the server is the client's own
// user or root, [peercred.SameUserOrRoot]):
//
//	conn, err := grpc.NewClient("unix:///run/app/app.sock",
//		grpc.WithTransportCredentials(grpcpeer.NewClientCredentials(peercred.AllowUIDs(0))))
//
// [WrapServerCredentials] and [WrapClientCredentials] add the same to other
// transport credentials, such as TLS from [credentials.NewTLS], for a
// connection that must be both.
//
// The credentials work only on Unix-domain sockets: on any other connection
// the handshake fails, so a server cannot be reached over TCP by mistake
// without anyone noticing.
package grpcpeer

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/peercred/peercred"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// ErrNoPeer is returned by [FromContext] for a context that has no gRPC peer:
// one that does not come from a gRPC call.
var ErrNoPeer = errors.New("grpcpeer: context has no gRPC peer")

// ErrNoCredentials is returned by [FromContext] and [FromPeer] when the peer
// has no credentials from this package: the server or client was not given
// its transport credentials.
var ErrNoCredentials = errors.New("grpcpeer: gRPC peer has no peer credentials (transport credentials are not grpcpeer's)")

// AuthInfo is the [credentials.AuthInfo] of a connection made with this
// package's transport credentials: the [peer.Peer.AuthInfo] of a call.
type AuthInfo struct {
	// CommonAuthInfo holds the security level, PrivacyAndIntegrity: the
	// bytes of a Unix-domain socket never leave the kernel, as gRPC's own
	// local credentials (google.golang.org/grpc/credentials/local) hold.
	credentials.CommonAuthInfo

	// Cred is the other end's identity, read from the kernel when the
	// connection was made: the client's on the server (as of its
	// connect), the server's on the client (as of its listen). It
	// remembers the connection, so that an Authorizer that looks at the
	// process (see [UnaryServerInterceptor]) can confirm on each call
	// that its PID is still the peer's. Its groups are read at the
	// handshake, so they stay known after the connection is closed.
	Cred *peercred.Cred

	// Wrapped is the AuthInfo of the wrapped transport credentials (a
	// credentials.TLSInfo for TLS), or nil.
	Wrapped credentials.AuthInfo
}

// AuthType returns "peercred".
func (AuthInfo) AuthType() string { return "peercred" }

// NewServerCredentials returns transport credentials for a gRPC server that
// serves Unix-domain sockets, such as a [peercred.Listener]. Each
// connection's [peercred.Cred] is read when it is accepted (from the
// [*peercred.Conn] a peercred Listener returns, or from the kernel for any
// other Unix conn) and is available to handlers through [FromContext]. A
// connection that is not a Unix-domain socket fails the handshake and is
// closed.
//
// The credentials authenticate the client, they do not authorize it: serve
// a [peercred.Listener] with an Authorizer, or use [UnaryServerInterceptor].
func NewServerCredentials() credentials.TransportCredentials {
	return &transportCreds{side: "server"}
}

// TransportCredentials returns grpc.Creds(NewServerCredentials()): the
// server option of the earlier grpcpeer API.
func TransportCredentials() grpc.ServerOption {
	return grpc.Creds(NewServerCredentials())
}

// WrapServerCredentials returns server credentials that read the client's
// [peercred.Cred], as [NewServerCredentials] does, and then run the
// handshake of inner, such as TLS from [credentials.NewTLS]. Handlers see
// the Cred with [FromContext], and inner's AuthInfo in [AuthInfo.Wrapped].
func WrapServerCredentials(inner credentials.TransportCredentials) credentials.TransportCredentials {
	if inner == nil {
		panic("grpcpeer: WrapServerCredentials: nil credentials")
	}
	return &transportCreds{side: "server", inner: inner}
}

// NewClientCredentials returns transport credentials for a gRPC client that
// connects to a Unix-domain socket ("unix:///path" or "unix-abstract:name"
// targets). The handshake reads the server's [peercred.Cred], as of its
// listen, and fails unless authorize admits it, before anything is sent on
// the connection; the call then fails with codes.Unavailable and a message
// that says why. A nil authorize means [peercred.SameUserOrRoot], as for
// every client of peercred given no Authorizer: the server must run as
// this process's effective UID or as root. These credentials report a
// security level that lets gRPC send per-call secrets (tokens), which must
// not reach whoever squats the socket: to trust another user's server, say
// which (peercred.AllowUIDs(1000), ...). The server's Cred is in the
// [AuthInfo] of the call's peer (see [grpc.Peer] and [FromPeer]).
func NewClientCredentials(authorize peercred.Authorizer) credentials.TransportCredentials {
	if authorize == nil {
		authorize = peercred.SameUserOrRoot()
	}
	return &transportCreds{side: "client", authorize: authorize}
}

// WrapClientCredentials is [NewClientCredentials] followed by the handshake
// of inner, such as TLS from [credentials.NewTLS]. The server is checked
// before inner's handshake starts. A nil authorize means
// [peercred.SameUserOrRoot], as for NewClientCredentials.
func WrapClientCredentials(inner credentials.TransportCredentials, authorize peercred.Authorizer) credentials.TransportCredentials {
	if inner == nil {
		panic("grpcpeer: WrapClientCredentials: nil credentials")
	}
	if authorize == nil {
		authorize = peercred.SameUserOrRoot()
	}
	return &transportCreds{side: "client", inner: inner, authorize: authorize}
}

// transportCreds implements credentials.TransportCredentials for one side.
type transportCreds struct {
	side      string // "server" or "client": the side that uses it
	inner     credentials.TransportCredentials
	authorize peercred.Authorizer // client only
}

var _ credentials.TransportCredentials = (*transportCreds)(nil)

func (c *transportCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.side != "server" {
		return nil, nil, errors.New("grpcpeer: client credentials used by a server")
	}
	cred, err := connCred(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("grpcpeer: client credentials: %w", err)
	}
	return c.handshake(raw, cred, func() (net.Conn, credentials.AuthInfo, error) {
		return c.inner.ServerHandshake(raw)
	})
}

func (c *transportCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.side != "client" {
		return nil, nil, errors.New("grpcpeer: server credentials used by a client")
	}
	cred, err := connCred(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("grpcpeer: server credentials: %w", err)
	}
	if err := c.authorize(cred); err != nil {
		return nil, nil, fmt.Errorf("grpcpeer: server %v refused: %w", cred, err)
	}
	return c.handshake(raw, cred, func() (net.Conn, credentials.AuthInfo, error) {
		return c.inner.ClientHandshake(ctx, authority, raw)
	})
}

// handshake runs the inner handshake, if any, and makes the AuthInfo.
func (c *transportCreds) handshake(raw net.Conn, cred *peercred.Cred, inner func() (net.Conn, credentials.AuthInfo, error)) (net.Conn, credentials.AuthInfo, error) {
	info := AuthInfo{
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		Cred:           cred,
	}
	conn := raw
	if c.inner != nil {
		var err error
		conn, info.Wrapped, err = inner()
		if err != nil {
			return nil, nil, err
		}
	}
	return conn, info, nil
}

// connCred returns the credentials of c's peer: those a peercred Listener
// or Dial read, or else the kernel's. Either way they refer to c's socket
// (Clone keeps that), for the per-call checks of process Authorizers.
//
// The groups are read now, once per connection, while c is open (a
// peercred Conn reads them when first asked: see peercred.Cred.Groups), so
// that the AuthInfo holds them for as long as anyone keeps it.
func connCred(c net.Conn) (*peercred.Cred, error) {
	if pc, ok := c.(*peercred.Conn); ok {
		if _, err := pc.Cred().Groups(); err != nil {
			return nil, err
		}
		return pc.Cred().Clone(), nil
	}
	return peercred.Get(c)
}

func (c *transportCreds) Info() credentials.ProtocolInfo {
	if c.inner != nil {
		return c.inner.Info()
	}
	return credentials.ProtocolInfo{SecurityProtocol: "peercred"}
}

func (c *transportCreds) Clone() credentials.TransportCredentials {
	n := *c
	if c.inner != nil {
		n.inner = c.inner.Clone()
	}
	return &n
}

// OverrideServerName passes name to the wrapped credentials, if any.
//
// Deprecated: gRPC does not use it; use grpc.WithAuthority.
func (c *transportCreds) OverrideServerName(name string) error {
	if c.inner != nil {
		return c.inner.OverrideServerName(name)
	}
	return nil
}

// FromContext returns the credentials of the other end of the gRPC call
// whose context is ctx: on a server, the client's, when the server uses
// this package's transport credentials. It returns [ErrNoPeer] when ctx has
// no gRPC peer, and [ErrNoCredentials] when the peer has no credentials from
// this package. The result is shared by every call on the connection: do not
// modify it.
func FromContext(ctx context.Context) (*peercred.Cred, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, ErrNoPeer
	}
	return FromPeer(p)
}

// FromPeer returns the credentials in p's [AuthInfo]. On a client, pass the
// peer filled in by the [grpc.Peer] call option to learn the server's.
// It returns [ErrNoCredentials] when p has no credentials from this package,
// and [ErrNoPeer] when p is nil.
func FromPeer(p *peer.Peer) (*peercred.Cred, error) {
	if p == nil {
		return nil, ErrNoPeer
	}
	switch ai := p.AuthInfo.(type) {
	case AuthInfo:
		if ai.Cred != nil {
			return ai.Cred, nil
		}
	case *AuthInfo:
		if ai != nil && ai.Cred != nil {
			return ai.Cred, nil
		}
	}
	return nil, ErrNoCredentials
}
