package peercred

import (
	"context"
	"net"
)

type credKey struct{}

// NewContext returns a copy of ctx that carries c.
func NewContext(ctx context.Context, c *Cred) context.Context {
	return context.WithValue(ctx, credKey{}, c)
}

// FromContext returns the credentials stored in ctx by [NewContext] or
// [ConnContext], if any.
func FromContext(ctx context.Context) (*Cred, bool) {
	c, ok := ctx.Value(credKey{}).(*Cred)
	return c, ok && c != nil
}

// ConnContext is meant for [net/http.Server.ConnContext]: it stores the peer's
// credentials in the context of every request on c, so handlers can call
// [FromContext]. It takes them from a [*Conn] (what a [Listener] accepts),
// looking through wrappers that have a NetConn method (such as *tls.Conn), and
// otherwise reads them from the kernel if c is a Unix-domain conn. If none can
// be had, ctx is returned unchanged and FromContext reports false: handlers
// must treat that as "unknown caller".
//
//	srv := &http.Server{Handler: h, ConnContext: peercred.ConnContext}
//	srv.Serve(listener)
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	for {
		switch v := c.(type) {
		case *Conn:
			return NewContext(ctx, v.cred)
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
			continue
		case *net.UnixConn:
			if cred, err := Get(v); err == nil {
				return NewContext(ctx, cred)
			}
		}
		return ctx
	}
}
