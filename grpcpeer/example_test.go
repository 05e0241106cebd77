package grpcpeer_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/grpcpeer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// A gRPC server on a peercred Listener whose calls are authorized by the
// caller's credentials, and a client that admits only a server run by its
// own user. The health service stands in for an application's service.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "grpc.sock")

	l, err := (&peercred.ListenConfig{Mode: 0o600}).Listen(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	// An interceptor that authorizes by Cred, as UnaryServerInterceptor
	// does, written out.
	authorize := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		cred, err := grpcpeer.FromContext(ctx)
		if err != nil {
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		if err := peercred.SameUser()(cred); err != nil {
			return nil, status.Error(codes.PermissionDenied, err.Error())
		}
		fmt.Println("caller is our user:", cred.UID == uint32(os.Geteuid()))
		return handler(ctx, req)
	}
	srv := grpc.NewServer(
		grpc.Creds(grpcpeer.NewServerCredentials()),
		grpc.UnaryInterceptor(authorize),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(l)
	defer srv.Stop()

	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(grpcpeer.NewClientCredentials(peercred.SameUser())))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(resp.GetStatus())
	// Output:
	// caller is our user: true
	// SERVING
}

// The server option of the earlier grpcpeer API, with the built-in
// interceptor: only root and UID 1000 may call.
func ExampleTransportCredentials() {
	srv := grpc.NewServer(
		grpcpeer.TransportCredentials(),
		grpc.UnaryInterceptor(grpcpeer.UnaryServerInterceptor(peercred.AllowUIDs(0, 1000))),
		grpc.StreamInterceptor(grpcpeer.StreamServerInterceptor(peercred.AllowUIDs(0, 1000))),
	)
	_ = srv // srv.Serve(listener)
}
