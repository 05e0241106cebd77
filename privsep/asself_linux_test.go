package privsep_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
	"github.com/peercred/peercred/testutil"
)

// wUID and wGID are what the tests spawn workers as where the behaviour under
// test needs no other user: 1234 when the tests run as root, so that the
// worker is unprivileged as it is in production; otherwise the test's own
// IDs, since a parent that is not root can spawn workers only as itself.
// Spawning, verification, calls, the broker, Landlock, seccomp and
// no_new_privs all work without root, and so are tested as a normal user too.
var wUID, wGID = workerIDs()

// workerIDs returns the IDs a worker runs as: see wUID.
func workerIDs() (uid, gid uint32) {
	if os.Geteuid() == 0 {
		return 1234, 1234
	}
	return uint32(os.Geteuid()), uint32(os.Getegid())
}

// wUIDs is wUID in decimal, for expected output and log lines.
var wUIDs = strconv.FormatUint(uint64(wUID), 10)

// asRoot reports whether the tests run as root; rows and checks that need
// another user or a privilege only root has are skipped otherwise.
var asRoot = os.Geteuid() == 0

// asWorker is how testutil starts a client (of a named socket) as the
// worker user: as 1234 when the tests run as root, else as the test itself.
func asWorker() *testutil.User {
	if asRoot {
		return &testutil.User{UID: wUID, GID: wGID}
	}
	return nil
}

// requireRoot skips a test that needs root, saying what for, when the tests
// do not run as root.
func requireRoot(t testing.TB, why string) {
	t.Helper()
	if !asRoot {
		t.Skipf("needs root (euid %d): %s", os.Geteuid(), why)
	}
}

func init() {
	// own-user-parent: a parent that is not root (as root, the test starts
	// it as another user): it spawns a confined worker as itself, then
	// asks for a worker of another UID.
	testutil.Register("own-user-parent", func(args []string) int {
		s := privsep.New(privsep.Config{
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Roles:  map[string]privsep.Policy{"whoami": {Ops: map[string]privsep.OpRule{"peer": {}}}},
		})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		defer s.Shutdown(ctx)
		peers := make(chan *privsep.Peer, 1)
		s.Handle("peer", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
			peers <- r.Peer
			return nil, nil, nil
		})
		uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
		p, err := s.Spawn(ctx, privsep.Spec{Role: "whoami", UID: uid, GID: gid, Env: raceEnv, Stdout: io.Discard,
			Confine: &confine.Config{BestEffort: true}})
		if err != nil {
			fmt.Println("spawn as itself:", err)
			return 1
		}
		select {
		case peer := <-peers:
			c := peer.Confinement
			fmt.Printf("worker uid=%d gid=%d seccomp=%v no_new_privs=%v\n", peer.UID, peer.GID,
				c != nil && c.Seccomp, c != nil && c.NoNewPrivs)
		case <-ctx.Done():
			fmt.Println("no call from the worker")
			return 1
		}
		<-p.Done()
		_, err = s.Spawn(ctx, privsep.Spec{Role: "whoami", UID: uid + 1, GID: gid, Env: raceEnv})
		fmt.Printf("as another: %v\n", err)
		// Groups it does not have (red team: a spec's Groups were
		// ignored without root, the worker given the parent's).
		_, err = s.Spawn(ctx, privsep.Spec{Role: "whoami", UID: uid, GID: gid, Groups: []uint32{gid + 7}, Env: raceEnv})
		fmt.Printf("other groups: %v\n", err)
		return 0
	})
}

// TestParentNotRoot: a parent that is not root spawns, verifies, confines
// and serves workers as itself, and says why it cannot spawn them as
// another user. As root the test runs that parent as uid 1234.
func TestParentNotRoot(t *testing.T) {
	p := testutil.Start(t, "own-user-parent", testutil.Options{As: asWorker(), Env: raceEnv, Timeout: time.Minute})
	if got, want := p.Line(t), fmt.Sprintf("worker uid=%d gid=%d seccomp=true no_new_privs=true", wUID, wGID); got != want {
		t.Errorf("parent: %q, want %q", got, want)
	}
	if got, want := p.Line(t), "can only spawn workers as itself"; !strings.Contains(got, want) {
		t.Errorf("parent: %q, want it to say %q", got, want)
	}
	if got, want := p.Line(t), "can only give its workers its own groups"; !strings.Contains(got, want) {
		t.Errorf("parent: %q, want it to say %q", got, want)
	}
	if err := p.Wait(); err != nil {
		t.Error(err)
	}
}
