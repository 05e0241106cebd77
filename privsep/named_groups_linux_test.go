package privsep_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// TestNamedSocketPeerGroups: a named-socket client's supplementary groups
// (which peercred reads from the connection when first asked) reach the
// socket's Authorizer, the role's Claim and the handler's Peer.
func TestNamedSocketPeerGroups(t *testing.T) {
	requireRoot(t, "clients under another UID, with supplementary groups")
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"client": {Ops: map[string]privsep.OpRule{"echo": {}}, Claim: peercred.AllowGIDs(3456)},
	}})
	var (
		mu   sync.Mutex
		seen [][]uint32
	)
	s.Handle("echo", func(ctx context.Context, r *privsep.Request) ([]byte, []*os.File, error) {
		mu.Lock()
		seen = append(seen, r.Peer.Groups)
		mu.Unlock()
		return r.Payload, nil, nil
	})
	path := testutil.SocketDir(t) + "/privsep.sock"
	if err := s.ListenUnix(context.Background(), path, peercred.AllowGIDs(3456, 4567)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		as   testutil.User
		want string
	}{
		{"in the group the Claim asks for", testutil.User{UID: 1234, GID: 1234, Groups: []uint32{3456, 5678}}, "named"},
		{"in a group the socket admits and the Claim does not", testutil.User{UID: 1235, GID: 1235, Groups: []uint32{4567}}, "dial:"},
		{"in no group the socket admits", testutil.User{UID: 1236, GID: 1236, Groups: []uint32{5678}}, "dial:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testutil.Start(t, "named-client", testutil.Options{Args: []string{path, "client"}, As: &tt.as})
			c.Wait()
			if got := strings.TrimSpace(c.Stdout()); !strings.HasPrefix(got, tt.want) {
				t.Errorf("client %+v: %q, want %q...", tt.as, got, tt.want)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([][]uint32{{3456, 5678}}, seen); diff != "" {
		t.Errorf("Peer.Groups in the handler (-want +got):\n%s", diff)
	}
	for _, want := range []string{"uid=1236", "uid=1235"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
