package grpcpeer_test

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/grpcpeer"
	"github.com/peercred/peercred/internal/ratelog"
	"github.com/peercred/peercred/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func init() {
	// refused-calls ADDR N: on one connection to the socket ADDR, call
	// Health.Check N times, unary, and Health.Watch N times, streaming; print
	// "refused U S", the calls that failed with PermissionDenied.
	testutil.Register("refused-calls", func(args []string) int {
		n, _ := strconv.Atoi(args[1])
		conn, err := grpc.NewClient("unix://"+args[0],
			grpc.WithTransportCredentials(grpcpeer.NewClientCredentials(peercred.AllowUIDs(0))))
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		client := healthpb.NewHealthClient(conn)
		var unary, stream int
		for range n {
			if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) == codes.PermissionDenied {
				unary++
			}
		}
		for range n {
			w, err := client.Watch(ctx, &healthpb.HealthCheckRequest{})
			if err == nil {
				_, err = w.Recv()
			}
			if status.Code(err) == codes.PermissionDenied {
				stream++
			}
		}
		fmt.Println("refused", unary, stream)
		return 0
	})
}

// TestInterceptorRefusalsRateLimited: a local user whom the interceptors
// refuse calls again and again, unary and streaming; the log gets a few
// lines in full per interval, and counts of the others, not one line per
// call.
func TestInterceptorRefusalsRateLimited(t *testing.T) {
	testutil.RequireRoot(t)
	var log testutil.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&log, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	path, _ := serve(t, grpcpeer.NewServerCredentials(), peercred.AllowUIDs(0))

	const n = 1000
	start := time.Now()
	p := testutil.Start(t, "refused-calls", testutil.Options{
		As: &testutil.User{UID: 1234, GID: 1234}, Args: []string{path, strconv.Itoa(n)}, Timeout: 2 * time.Minute,
	})
	if line, want := p.Line(t), fmt.Sprintf("refused %d %d", n, n); line != want {
		t.Fatalf("client: %q, want %q", line, want)
	}
	elapsed := time.Since(start)

	full := regexp.MustCompile(`msg="grpcpeer: caller refused" method=/grpc.health.v1.Health/(Check|Watch) .* uid=1234 `)
	summary := regexp.MustCompile(`msg="grpcpeer: refusals not logged" dropped=(\d+) .* uid=1234\b`)
	var logged, dropped, summaries int
	count := func() {
		logged, dropped, summaries = 0, 0, 0
		for line := range strings.Lines(log.String()) {
			if full.MatchString(line) {
				logged++
			}
			if m := summary.FindStringSubmatch(line); m != nil {
				d, _ := strconv.Atoi(m[1])
				dropped += d
				summaries++
			}
		}
	}
	// The counts are reported an interval after the first one dropped.
	testutil.WaitFor(t, "every refusal logged or counted", 3*ratelog.DefaultInterval, func() bool {
		count()
		return logged+dropped >= 2*n
	})
	count()
	// Two interceptors, each with its own limit.
	intervals := int(elapsed/ratelog.DefaultInterval) + 2
	if max := 2 * intervals * ratelog.DefaultBurst; logged > max || summaries > 2*intervals {
		t.Errorf("%d of %d refusals logged in full, in %d summaries the others, in %v; want at most %d lines in full and %d summaries",
			logged, 2*n, summaries, elapsed.Round(time.Millisecond), max, 2*intervals)
	}
	if logged+dropped != 2*n {
		t.Errorf("%d refusals logged in full and %d counted: %d in all, want %d", logged, dropped, logged+dropped, 2*n)
	}
}
