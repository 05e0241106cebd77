package privsep_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// TestShutdownNotHeldByStalledClients: named-socket clients of a local
// user fill the parent's send buffer and stop reading. Shutdown must not
// wait Config.WriteTimeout for each of them to take its Stop message: it
// returns when its ctx says, however many such clients there are.
func TestShutdownNotHeldByStalledClients(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "f")
	writeFile(t, file, "x", 0o600)
	const writeTimeout = 30 * time.Second
	s, log := newSupervisor(t, privsep.Config{
		WriteTimeout: writeTimeout,
		Roles: map[string]privsep.Policy{"client": {
			Files: []privsep.PathRule{{Path: file}},
			Claim: peercred.AllowUIDs(wUID),
		}},
	})
	path := testutil.SocketDir(t) + "/named.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(wUID)); err != nil {
		t.Fatal(err)
	}
	var clients []*testutil.Proc
	for range 3 {
		c := testutil.Start(t, "named-broker-flood", testutil.Options{
			Args:    []string{path, "client", file},
			As:      asWorker(),
			Timeout: 2 * writeTimeout,
		})
		if got := c.Line(t); got != "flooding" {
			t.Fatalf("client: %q", got)
		}
		clients = append(clients, c)
	}
	// The parent stalls writing replies to them once their receive queues
	// are full (net.unix.max_dgram_qlen messages, 10 by default): wait for
	// well more calls than that.
	waitFor(t, "60 calls from the clients", writeTimeout/2, func() bool {
		return strings.Count(log.String(), "privsep: call") >= 60
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	s.Shutdown(ctx)
	// Not a measure of speed: before, each stalled client held Shutdown
	// for up to writeTimeout, one after another.
	d := time.Since(start)
	t.Logf("Shutdown returned after %v", d)
	if d >= writeTimeout/2 {
		t.Errorf("Shutdown with a 1s context returned after %v: held by clients that do not read", d)
	}
	for _, c := range clients {
		if got := c.Line(t); got == "" {
			t.Errorf("client: no line after shutdown")
		}
	}
}
