package grpcpeer_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/grpcpeer"
	"github.com/peercred/peercred/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func init() {
	// health-nil ADDR: call Health.Check over ADDR with client
	// credentials given a nil Authorizer; print "CODE STATUS" or "CODE
	// MESSAGE", as the role "health" does.
	testutil.Register("health-nil", func(args []string) int {
		resp, err := check(args[0], grpcpeer.NewClientCredentials(nil))
		if err != nil {
			st := status.Convert(err)
			fmt.Println(st.Code(), st.Message())
			return 0
		}
		fmt.Println(codes.OK, resp.GetStatus())
		return 0
	})
	// health-server ADDR: serve the health service on a peercred listener
	// of mode 0666 at ADDR, say "ready", and serve until killed.
	testutil.Register("health-server", func(args []string) int {
		l, err := (&peercred.ListenConfig{Mode: 0o666}).Listen(context.Background(), args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		srv := grpc.NewServer(grpc.Creds(grpcpeer.NewServerCredentials()))
		healthpb.RegisterHealthServer(srv, health.NewServer())
		fmt.Println("ready")
		if err := srv.Serve(l); err != nil {
			fmt.Println("error:", err)
		}
		return 1
	})
}

// Client credentials given a nil Authorizer do not panic: they admit a
// server of the client's own UID or root, as peercred.DialFunc does, and
// refuse any other user's server before a call reaches it. Real servers
// and clients under real UIDs.
func TestNilAuthorizerMeansSameUserOrRoot(t *testing.T) {
	t.Run("a server of our own uid is admitted, with TLS too", func(t *testing.T) {
		path, _ := serve(t, grpcpeer.NewServerCredentials(), peercred.SameUser())
		if resp, err := check(path, grpcpeer.NewClientCredentials(nil)); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("NewClientCredentials(nil) to our own server: %v, %v", resp, err)
		}
		serverTLS, clientTLS := tlsConfigs(t)
		path, _ = serve(t, grpcpeer.WrapServerCredentials(credentials.NewTLS(serverTLS)), peercred.SameUser())
		if resp, err := check(path, grpcpeer.WrapClientCredentials(credentials.NewTLS(clientTLS), nil)); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("WrapClientCredentials(tls, nil) to our own server: %v, %v", resp, err)
		}
	})

	dir := testutil.SocketDir(t)
	client := &testutil.User{UID: 1234, GID: 2345}
	for _, tt := range []struct {
		name   string
		server *testutil.User // nil: root, the test process's user
		want   string
	}{
		{name: "a root server is admitted by another user", want: "OK SERVING"},
		{name: "a server of the client's uid is admitted", server: &testutil.User{UID: 1234, GID: 2345},
			want: "OK SERVING"},
		{name: "a server of another uid is refused", server: &testutil.User{UID: 1235, GID: 2345},
			want: "Unavailable connection error: desc = \"transport: authentication handshake failed: grpcpeer: server pid=PID uid=1235 gid=2345 groups=[] refused: uid 1235 is neither this process's uid 1234 nor root: unauthorized\""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireRoot(t)
			path := filepath.Join(dir, fmt.Sprintf("s%d", len(tt.name)))
			var pid int
			if tt.server == nil {
				l, err := (&peercred.ListenConfig{Mode: 0o666}).Listen(context.Background(), path)
				if err != nil {
					t.Fatal(err)
				}
				srv := grpc.NewServer(grpc.Creds(grpcpeer.NewServerCredentials()))
				healthpb.RegisterHealthServer(srv, health.NewServer())
				done := make(chan struct{})
				go func() {
					defer close(done)
					srv.Serve(l)
				}()
				t.Cleanup(func() {
					srv.Stop()
					<-done
				})
				pid = os.Getpid()
			} else {
				srv := testutil.Start(t, "health-server", testutil.Options{Args: []string{path}, As: tt.server})
				if line := srv.Line(t); line != "ready" {
					t.Fatalf("server said %q", line)
				}
				pid = srv.PID()
			}
			cli := testutil.Start(t, "health-nil", testutil.Options{Args: []string{path}, As: client})
			want := strings.ReplaceAll(tt.want, "PID", fmt.Sprint(pid))
			if got := cli.Line(t); got != want {
				t.Errorf("client as uid 1234:\n got %q\nwant %q", got, want)
			}
		})
	}
}
