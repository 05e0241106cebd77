package grpcpeer_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/grpcpeer"
	"github.com/peercred/peercred/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// evilMethod is a method path with bidirectional and C1 characters.
const evilMethod = "/evil\u202e\u200bcod.Svc/x\u009b2J\u2066"

func init() {
	// evil-method ADDR: open a stream for evilMethod on the socket ADDR and
	// print the status code it ends with.
	testutil.Register("evil-method", func(args []string) int {
		conn, err := grpc.NewClient("unix://"+args[0],
			grpc.WithTransportCredentials(grpcpeer.NewClientCredentials(peercred.AllowUIDs(0))))
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, evilMethod)
		if err == nil {
			err = s.RecvMsg(new(any))
		}
		fmt.Println(status.Code(err))
		return 0
	})
}

// TestInterceptorQuotesMethod: a server that takes any method
// (grpc.UnknownServiceHandler) passes the client's method path to its
// stream interceptor; a refused client's path, full of bidirectional and C1
// characters, reaches the JSON log quoted.
func TestInterceptorQuotesMethod(t *testing.T) {
	testutil.RequireRoot(t)
	var log testutil.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&log, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	path := filepath.Join(testutil.SocketDir(t), "grpc.sock")
	l, err := (&peercred.ListenConfig{Mode: 0o666}).Listen(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(grpcpeer.NewServerCredentials()),
		grpc.StreamInterceptor(grpcpeer.StreamServerInterceptor(peercred.AllowUIDs(0))),
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error { return nil }))
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(l)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})

	p := testutil.Start(t, "evil-method", testutil.Options{As: &testutil.User{UID: 1234, GID: 1234}, Args: []string{path}})
	if line := p.Line(t); line != "PermissionDenied" {
		t.Fatalf("client: %q, want PermissionDenied", line)
	}
	text := log.String()
	if !strings.Contains(text, `"grpcpeer: caller refused"`) {
		t.Fatalf("no refusal in the log:\n%s", text)
	}
	for i, r := range []rune(text) {
		if r != '\n' && (r == utf8.RuneError || !unicode.IsPrint(r)) {
			t.Errorf("log holds %U at rune %d:\n%q", r, i, text)
		}
	}
}
