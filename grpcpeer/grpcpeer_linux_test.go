package grpcpeer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/grpcpeer"
	"github.com/peercred/peercred/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

func init() {
	// health ADDR SERVERUID: call the health service's Check over the
	// socket ADDR with client credentials that admit only a server run by
	// SERVERUID; print "CODE STATUS" (such as "OK SERVING") or "CODE
	// MESSAGE" for an error.
	testutil.Register("health", func(args []string) int {
		uid, _ := strconv.Atoi(args[1])
		resp, err := check(args[0], grpcpeer.NewClientCredentials(peercred.AllowUIDs(uint32(uid))))
		if err != nil {
			st := status.Convert(err)
			fmt.Println(st.Code(), st.Message())
			return 0
		}
		fmt.Println(codes.OK, resp.GetStatus())
		return 0
	})
}

func TestMain(m *testing.M) { testutil.Main(m) }

// check calls Health.Check on the server at the socket addr.
func check(addr string, creds credentials.TransportCredentials, opts ...grpc.CallOption) (*healthpb.HealthCheckResponse, error) {
	conn, err := grpc.NewClient("unix://"+addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, opts...)
}

// callers records the AuthInfo of every call, by the caller's PID.
type callers struct {
	mu    sync.Mutex
	infos map[int]grpcpeer.AuthInfo
}

func (c *callers) record(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if p, ok := peer.FromContext(ctx); ok {
		if ai, ok := p.AuthInfo.(grpcpeer.AuthInfo); ok {
			c.mu.Lock()
			c.infos[ai.Cred.PID] = ai
			c.mu.Unlock()
		}
	}
	return handler(ctx, req)
}

func (c *callers) get(pid int) (grpcpeer.AuthInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ai, ok := c.infos[pid]
	return ai, ok
}

// serve starts a gRPC server with the health service on a peercred
// listener (mode 0666) at a new path, with creds and an interceptor that
// admits callers admit admits. It returns the path and the record of calls.
func serve(t *testing.T, creds credentials.TransportCredentials, admit peercred.Authorizer) (string, *callers) {
	t.Helper()
	path := filepath.Join(testutil.SocketDir(t), "grpc.sock")
	l, err := (&peercred.ListenConfig{Mode: 0o666}).Listen(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	rec := &callers{infos: map[int]grpcpeer.AuthInfo{}}
	srv := grpc.NewServer(grpc.Creds(creds),
		grpc.ChainUnaryInterceptor(rec.record, grpcpeer.UnaryServerInterceptor(admit)),
		grpc.StreamInterceptor(grpcpeer.StreamServerInterceptor(admit)))
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
	return path, rec
}

// Clients under two UIDs: the interceptor admits one, whose handler sees
// its credentials, and refuses the other with PermissionDenied.
func TestInterceptorAuthorizesByCred(t *testing.T) {
	testutil.RequireRoot(t)
	path, rec := serve(t, grpcpeer.NewServerCredentials(), peercred.AllowUIDs(1234))
	alice := &testutil.User{UID: 1234, GID: 2345, Groups: []uint32{3456}}
	bob := &testutil.User{UID: 1235, GID: 2346}
	admitted := testutil.Start(t, "health", testutil.Options{Args: []string{path, "0"}, As: alice})
	refused := testutil.Start(t, "health", testutil.Options{Args: []string{path, "0"}, As: bob})

	if line := admitted.Line(t); line != "OK SERVING" {
		t.Errorf("client uid 1234: %q, want \"OK SERVING\"", line)
	}
	line := refused.Line(t)
	if want := "PermissionDenied grpcpeer: /grpc.health.v1.Health/Check: uid 1235 is not in the allowed list [1234]: unauthorized"; line != want {
		t.Errorf("client uid 1235: %q, want %q", line, want)
	}
	ai, ok := rec.get(admitted.PID())
	if !ok {
		t.Fatalf("server saw no call from pid %d", admitted.PID())
	}
	want := (&peercred.Cred{PID: admitted.PID(), UID: 1234, GID: 2345}).WithGroups([]uint32{3456})
	if diff := cmp.Diff(want, ai.Cred); diff != "" {
		t.Errorf("caller's Cred in the handler (-want +got):\n%s", diff)
	}
	if ai.SecurityLevel != credentials.PrivacyAndIntegrity || ai.Wrapped != nil {
		t.Errorf("AuthInfo level %v, wrapped %v; want PrivacyAndIntegrity, nil", ai.SecurityLevel, ai.Wrapped)
	}
	if _, ok := rec.get(refused.PID()); !ok {
		t.Errorf("server saw no call from the refused pid %d", refused.PID())
	}
	for _, p := range []*testutil.Proc{admitted, refused} {
		if err := p.Wait(); err != nil {
			t.Error(err)
		}
	}
}

// A client refuses a server that is not run by the user it expects, before
// the call reaches it; one that expects the right user learns the server's
// credentials from the call's peer.
func TestClientChecksServer(t *testing.T) {
	path, rec := serve(t, grpcpeer.NewServerCredentials(), peercred.SameUser())

	_, err := check(path, grpcpeer.NewClientCredentials(peercred.AllowUIDs(4242)))
	if code := status.Code(err); code != codes.Unavailable || !strings.Contains(err.Error(), "is not in the allowed list [4242]: unauthorized") {
		t.Errorf("client expecting uid 4242: %v (code %v), want Unavailable saying why", err, code)
	}
	if _, ok := rec.get(os.Getpid()); ok {
		t.Error("the refused server got a call")
	}

	var p peer.Peer
	resp, err := check(path, grpcpeer.NewClientCredentials(peercred.SameUser()), grpc.Peer(&p))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("status %v", resp.GetStatus())
	}
	cred, err := grpcpeer.FromPeer(&p)
	if err != nil {
		t.Fatal(err)
	}
	if cred.PID != os.Getpid() || cred.UID != uint32(os.Geteuid()) {
		t.Errorf("server's cred %v, want our pid %d and uid %d", cred, os.Getpid(), os.Geteuid())
	}
}

// The stream interceptor admits and refuses streaming calls (the health
// service's Watch) as the unary one does unary calls.
func TestStreamInterceptor(t *testing.T) {
	for _, tt := range []struct {
		name  string
		admit peercred.Authorizer
		want  codes.Code
	}{
		{"admits our user", peercred.SameUser(), codes.OK},
		{"refuses another uid", peercred.AllowUIDs(4242), codes.PermissionDenied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, _ := serve(t, grpcpeer.NewServerCredentials(), tt.admit)
			conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(grpcpeer.NewClientCredentials(anyServer)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			stream, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if code := status.Code(err); code != tt.want {
				t.Fatalf("Watch: %v, want code %v", err, tt.want)
			}
			if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("Watch: status %v, want SERVING", resp.GetStatus())
			}
		})
	}
}

// The credentials refuse a connection that is not a Unix socket.
func TestServerRefusesTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, _, err = grpcpeer.NewServerCredentials().ServerHandshake(c)
		done <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, _, err := grpcpeer.NewClientCredentials(anyServer).ClientHandshake(context.Background(), "x", c); err == nil {
		t.Error("ClientHandshake on a TCP conn succeeded")
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "not a Unix-domain socket") {
		t.Errorf("ServerHandshake on a TCP conn: %v, want an error saying it is not a Unix socket", err)
	}
}

// Wrapped TLS credentials: both sides see the other's Cred and the TLS
// state.
func TestWrapTLS(t *testing.T) {
	serverTLS, clientTLS := tlsConfigs(t)
	path, rec := serve(t, grpcpeer.WrapServerCredentials(credentials.NewTLS(serverTLS)), peercred.SameUser())
	var p peer.Peer
	if _, err := check(path, grpcpeer.WrapClientCredentials(credentials.NewTLS(clientTLS), peercred.SameUser()), grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	ai, ok := rec.get(os.Getpid())
	if !ok {
		t.Fatal("server saw no call from us")
	}
	for side, ai := range map[string]any{"server": ai, "client": p.AuthInfo} {
		info, ok := ai.(grpcpeer.AuthInfo)
		if !ok {
			t.Errorf("%s: AuthInfo is a %T", side, ai)
			continue
		}
		if info.Cred.PID != os.Getpid() {
			t.Errorf("%s: Cred %v, want our pid", side, info.Cred)
		}
		tlsInfo, ok := info.Wrapped.(credentials.TLSInfo)
		if !ok || !tlsInfo.State.HandshakeComplete {
			t.Errorf("%s: Wrapped is %#v, want a completed credentials.TLSInfo", side, info.Wrapped)
		}
	}

	// A plain client does not get through the TLS server.
	if _, err := check(path, grpcpeer.NewClientCredentials(anyServer)); status.Code(err) != codes.Unavailable {
		t.Errorf("client without TLS: %v, want Unavailable", err)
	}
}

func TestFromContextErrors(t *testing.T) {
	tests := []struct {
		name string
		ctx  context.Context
		want error
	}{
		{"no peer", context.Background(), grpcpeer.ErrNoPeer},
		{"peer without AuthInfo", peer.NewContext(context.Background(), &peer.Peer{}), grpcpeer.ErrNoCredentials},
		{"peer with TLS only", peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{}}), grpcpeer.ErrNoCredentials},
		{"peer with AuthInfo but no Cred", peer.NewContext(context.Background(), &peer.Peer{AuthInfo: grpcpeer.AuthInfo{}}), grpcpeer.ErrNoCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, err := grpcpeer.FromContext(tt.ctx)
			if !errors.Is(err, tt.want) || cred != nil {
				t.Errorf("FromContext = %v, %v; want nil, %v", cred, err, tt.want)
			}
		})
	}
	want := &peercred.Cred{PID: 1, UID: 2, GID: 3}
	ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: grpcpeer.AuthInfo{Cred: want}})
	if got, err := grpcpeer.FromContext(ctx); err != nil || got != want {
		t.Errorf("FromContext = %v, %v; want %v", got, err, want)
	}
}

// Without the transport credentials, the interceptor refuses every call as
// unauthenticated.
func TestInterceptorWithoutCredentials(t *testing.T) {
	path, _ := serve(t, insecure.NewCredentials(), peercred.SameUser())
	_, err := check(path, insecure.NewCredentials())
	if code := status.Code(err); code != codes.Unauthenticated {
		t.Errorf("call without peer credentials: %v, want Unauthenticated", err)
	}
}

// tlsConfigs makes a self-signed certificate for "localhost" and the TLS
// configurations of a server that presents it and a client that trusts it.
func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	return server, client
}

// anyServer trusts whoever serves the socket: tests that are not about the
// server check.
func anyServer(*peercred.Cred) error { return nil }
