package grpcpeer

import (
	"context"
	"log/slog"
	"strconv"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/ratelog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryServerInterceptor returns an interceptor that admits a call only if
// authorize admits the caller's [peercred.Cred] (see [FromContext]). A call
// without credentials fails with codes.Unauthenticated, a refused one with
// codes.PermissionDenied and the Authorizer's reason. Refusals are logged
// with the method, pid, uid and gid through [slog.Default], at most 5 lines
// per caller UID in 10 seconds: a caller that is refused thousands of times
// gets the rest counted, in one line per interval ("grpcpeer: refusals not
// logged", with the number dropped). It panics if authorize is nil.
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
	log := newRefusalLog()
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := log.check(ctx, info.FullMethod, authorize); err != nil {
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
	log := newRefusalLog()
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if err := log.check(ss.Context(), info.FullMethod, authorize); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// refusalKey is whom a refusal is counted against: the caller's UID, or
// the calls without credentials.
type refusalKey struct {
	uid    uint32
	noCred bool
}

// refusalLog rate-limits an interceptor's log lines, per caller UID. A
// count still pending is logged once its interval has passed (an
// interceptor has no Close).
type refusalLog struct {
	lim ratelog.Limiter[refusalKey]
}

func newRefusalLog() *refusalLog {
	r := &refusalLog{}
	r.lim.Summary = func(k refusalKey, dropped uint64) {
		attrs := []slog.Attr{slog.Uint64("dropped", dropped), slog.Duration("interval", ratelog.DefaultInterval)}
		if k.noCred {
			attrs = append(attrs, slog.Bool("no_credentials", true))
		} else {
			attrs = append(attrs, slog.Uint64("uid", uint64(k.uid)))
		}
		slog.Default().LogAttrs(context.Background(), slog.LevelWarn, "grpcpeer: refusals not logged", attrs...)
	}
	return r
}

// check returns the error to fail the call to method with, if authorize
// does not admit the caller, and logs the refusal unless the caller has had
// its share of lines.
func (r *refusalLog) check(ctx context.Context, method string, authorize peercred.Authorizer) error {
	// The method is the client's word (any path reaches a stream
	// interceptor under grpc.UnknownServiceHandler): quoted in the log
	// when it is not plain.
	cred, err := FromContext(ctx)
	if err != nil {
		if r.lim.Allow(refusalKey{noCred: true}) {
			slog.Default().LogAttrs(ctx, slog.LevelWarn, "grpcpeer: call without peer credentials refused",
				slog.String("method", quoteMethod(method)), slog.Any("err", err))
		}
		return status.Error(codes.Unauthenticated, err.Error())
	}
	if err := authorize(cred); err != nil {
		if r.lim.Allow(refusalKey{uid: cred.UID}) {
			slog.Default().LogAttrs(ctx, slog.LevelWarn, "grpcpeer: caller refused",
				slog.String("method", quoteMethod(method)),
				slog.Int("pid", cred.PID),
				slog.Uint64("uid", uint64(cred.UID)),
				slog.Uint64("gid", uint64(cred.GID)),
				slog.String("reason", err.Error()))
		}
		return status.Errorf(codes.PermissionDenied, "grpcpeer: %s: %v", quoteMethod(method), err)
	}
	return nil
}

// quoteMethod returns method as it is when it is printable ASCII without
// quotes or backslashes, as gRPC method names are, and Go-quoted otherwise,
// so that no control or bidirectional character reaches a log or a
// terminal.
func quoteMethod(method string) string {
	for i := 0; i < len(method); i++ {
		if c := method[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return strconv.Quote(method)
		}
	}
	return method
}
