package grpcpeer_test

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/grpcpeer"
	"github.com/peercred/peercred/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func init() {
	// idle: do nothing until killed.
	testutil.Register("idle", func([]string) int {
		time.Sleep(time.Hour)
		return 0
	})
}

// relayedConn connects a helper (uid 1234) to the socket at path; the helper
// hands the connection to us and exits, and another helper, which runs the
// same program as a child of ours, takes its PID. It returns the
// connection and that PID.
func relayedConn(t *testing.T, path string) (net.Conn, int) {
	t.Helper()
	return testutil.HandedOffConn(t, "unix", path, testutil.Options{As: &testutil.User{UID: 1234, GID: 1234}})
}

// clientOver returns a gRPC client whose one connection is conn.
func clientOver(t *testing.T, conn net.Conn) *grpc.ClientConn {
	t.Helper()
	var once sync.Once
	dial := func(context.Context, string) (net.Conn, error) {
		c := net.Conn(nil)
		once.Do(func() { c = conn })
		if c == nil {
			return nil, errors.New("the relayed connection is used up")
		}
		return c, nil
	}
	cc, err := grpc.NewClient("passthrough:///relayed",
		grpc.WithContextDialer(dial), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		conn.Close()
	})
	return cc
}

// TestInterceptorRefusesReusedPID: the interceptors check a process
// Authorizer (DescendantOf, AllowExecutables) against the process that
// connected, on every call, not against whatever has its PID by then. A
// client connects, hands the connection to a relay and exits; a process the
// Authorizer would admit takes its PID; the relay's call is refused.
func TestInterceptorRefusesReusedPID(t *testing.T) {
	testutil.RequireRoot(t)
	helper, _ := testutil.HelperExec(t, "idle") // the program every helper runs
	for _, tt := range []struct {
		name string
		auth peercred.Authorizer
	}{
		{"DescendantOf", peercred.DescendantOf(os.Getpid())},
		{"AllowExecutables", peercred.AllowExecutables(helper)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := serve(t, grpcpeer.NewServerCredentials(), tt.auth)

			// A live caller that the Authorizer admits is served.
			live := testutil.Start(t, "health", testutil.Options{Args: []string{path, "0"}})
			if line := live.Line(t); line != "OK SERVING" {
				t.Fatalf("a live child of ours: %q, want OK SERVING", line)
			}

			conn, pid := relayedConn(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := healthpb.NewHealthClient(clientOver(t, conn)).Check(ctx, &healthpb.HealthCheckRequest{})
			if code := status.Code(err); code != codes.PermissionDenied {
				t.Errorf("relayed call of exited pid %d, now another process: %v (code %v), want PermissionDenied", pid, err, code)
			}
		})
	}
}
