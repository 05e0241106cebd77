package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// named-dial-parallel dials n sessions at once (args: socket, role,
	// n), each within 5s, and says how many failed.
	testutil.Register("named-dial-parallel", func(args []string) int {
		n, _ := strconv.Atoi(args[2])
		var wg sync.WaitGroup
		var failed atomic.Int32
		fmt.Println("dialing")
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				w, err := privsep.Dial(ctx, args[0], args[1])
				if err != nil {
					failed.Add(1)
					return
				}
				w.Close()
			}()
		}
		wg.Wait()
		fmt.Printf("failed=%d\n", failed.Load())
		return 0
	})
}

// TestHungClaimBounded: a role's Claim may block (an Authorizer that stats
// the peer's executable on a FUSE file system whose owner stopped
// answering). Each blocked Claim holds a goroutine and a thread of the
// parent; a local user who can make it block must not be able to make the
// parent start threads without bound. The Claims under way for one UID are
// bounded by the places of connections waiting to say hello.
func TestHungClaimBounded(t *testing.T) {
	var entered atomic.Int32
	block := make(chan struct{})
	hang := func(c *peercred.Cred) error {
		entered.Add(1)
		<-block
		return nil
	}
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Claim: hang},
	}})
	// Before the supervisor's Shutdown (cleanups run last first), which
	// waits for the Claims to return.
	t.Cleanup(func() { close(block) })
	path := testutil.SocketDir(t) + "/named.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(wUID)); err != nil {
		t.Fatal(err)
	}
	const n = 40
	c := testutil.Start(t, "named-dial-parallel", testutil.Options{
		Args:    []string{path, "client", strconv.Itoa(n)},
		As:      asWorker(),
		Timeout: time.Minute,
	})
	if got := c.Line(t); got != "dialing" {
		t.Fatalf("client: %q", got)
	}
	got := c.Line(t)
	if got != fmt.Sprintf("failed=%d", n) {
		t.Errorf("client: %q, want every dial to fail (the Claim never answers)", got)
	}
	if e := entered.Load(); e > 8 {
		t.Errorf("%d Claims under way for one uid, want at most 8 (maxPreHelloPerUID)", e)
	}
	if !strings.Contains(log.String(), "waiting to say hello already") {
		t.Errorf("no refusal for connections beyond the cap:\n%s", log)
	}
}

// TestDialHonorsContext: a parent that never answers the hello (its Claim
// hangs) holds a dialer only as long as the dialer's context allows.
func TestDialHonorsContext(t *testing.T) {
	block := make(chan struct{})
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Claim: func(*peercred.Cred) error { <-block; return nil }},
	}})
	t.Cleanup(func() { close(block) })
	path := testutil.SocketDir(t) + "/named.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowUIDs(uint32(os.Getuid()))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	w, err := privsep.Dial(ctx, path, "client")
	if err == nil {
		w.Close()
		t.Fatal("Dial: admitted, though the Claim never answered")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Dial: %v, want the context's deadline", err)
	}
}
