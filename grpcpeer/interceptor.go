package grpcpeer

import (
	"context"
	"log/slog"

	"github.com/peercred/peercred"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor returns an interceptor that admits a call only if
// authorize admits the caller's [peercred.Cred] (see [FromContext]). A call
// without credentials fails with codes.Unauthenticated, a refused one with
// codes.PermissionDenied and the Authorizer's reason; each refusal is logged
// with the method, pid, uid and gid through [slog.Default]. It panics if
// authorize is nil.
//
// Refusing here rather than in the [peercred.Listener]'s Authorizer lets
// the client see why: a connection the listener refuses is closed, and the
// client only learns that the server is unavailable.
//
// authorize sees, on every call, the credentials read when the connection
// was made. An Authorizer that looks at the caller's process
// ([peercred.AllowExecutables], [peercred.DescendantOf]) confirms on each
// call, through the pidfd the kernel keeps for the connection (Linux 6.5+),
// that the process that connected is still alive, and so still has the PID
// it read /proc by. Once that process has exited, every call on its
// connection is refused, even if it handed the connection to another
// process first and its PID now names one the Authorizer would admit. On
// Linux before 6.5 such an Authorizer refuses every call.
func UnaryServerInterceptor(authorize peercred.Authorizer) grpc.UnaryServerInterceptor {
	if authorize == nil {
		panic("grpcpeer: UnaryServerInterceptor: nil Authorizer")
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := check(ctx, info.FullMethod, authorize); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is [UnaryServerInterceptor] for streaming calls.
func StreamServerInterceptor(authorize peercred.Authorizer) grpc.StreamServerInterceptor {
	if authorize == nil {
		panic("grpcpeer: StreamServerInterceptor: nil Authorizer")
	}
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := check(ss.Context(), info.FullMethod, authorize); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

func check(ctx context.Context, method string, authorize peercred.Authorizer) error {
	cred, err := FromContext(ctx)
	if err != nil {
		slog.Default().LogAttrs(ctx, slog.LevelWarn, "grpcpeer: call without peer credentials refused",
			slog.String("method", method), slog.Any("err", err))
		return status.Error(codes.Unauthenticated, err.Error())
	}
	if err := authorize(cred); err != nil {
		slog.Default().LogAttrs(ctx, slog.LevelWarn, "grpcpeer: caller refused",
			slog.String("method", method),
			slog.Int("pid", cred.PID),
			slog.Uint64("uid", uint64(cred.UID)),
			slog.Uint64("gid", uint64(cred.GID)),
			slog.String("reason", err.Error()))
		return status.Errorf(codes.PermissionDenied, "grpcpeer: %s: %v", method, err)
	}
	return nil
}
