package peercred_test

import (
	"context"
	"os"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

// The container cases: what a server sees when it and its peer are in
// different user or PID namespaces.
func TestNamespaces(t *testing.T) {
	testutil.RequireRoot(t)

	t.Run("root in a user namespace mapped to 1234 is seen as 1234", func(t *testing.T) {
		l := listen(t, &peercred.ListenConfig{Mode: 0666})
		p := testutil.Start(t, "connect", testutil.Options{
			Args:   []string{l.Addr().String()},
			As:     &testutil.User{UID: 1234, GID: 2345},
			UserNS: true,
		})
		c := acceptTimeout(t, l)
		if cr := c.Cred(); cr.PID != p.PID() || cr.UID != 1234 || cr.GID != 2345 {
			t.Errorf("peer %v, want pid %d uid 1234 gid 2345", cr, p.PID())
		}
	})

	t.Run("a server in a user namespace sees an unmapped peer as the overflow uid", func(t *testing.T) {
		addr := "@peercred-userns-" + itoa(os.Getpid())
		srv := testutil.Start(t, "serve", testutil.Options{
			Args:   []string{addr},
			As:     &testutil.User{UID: 1234, GID: 2345},
			UserNS: true, // maps only 1234 (as 0 inside): our uid 0 is unmapped there
		})
		if line := srv.Line(t); line != "ready" {
			t.Fatalf("server said %q", line)
		}
		c, err := peercred.Dial(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// We see the server as 1234, its kernel identity.
		if cr := c.Cred(); cr.UID != 1234 || cr.PID != srv.PID() {
			t.Errorf("server %v, want pid %d uid 1234", cr, srv.PID())
		}
		_, uid, gid := parseCred(t, srv.Line(t))
		if uid != 65534 || gid != 65534 {
			t.Errorf("server in the user namespace sees uid %d gid %d, want the overflow 65534/65534", uid, gid)
		}
	})

	t.Run("a peer in a child PID namespace is seen with our PID for it", func(t *testing.T) {
		l := listen(t, &peercred.ListenConfig{Mode: 0666})
		p := testutil.Start(t, "connect", testutil.Options{
			Args:  []string{l.Addr().String()},
			PIDNS: true, // it is PID 1 in its own namespace
		})
		c := acceptTimeout(t, l)
		if c.Cred().PID != p.PID() || p.PID() == 1 {
			t.Errorf("peer pid %d, want %d (its pid in our namespace)", c.Cred().PID, p.PID())
		}
	})

	t.Run("a server in a child PID namespace sees a peer from outside as PID 0", func(t *testing.T) {
		addr := "@peercred-pidns-" + itoa(os.Getpid())
		srv := testutil.Start(t, "serve", testutil.Options{Args: []string{addr}, PIDNS: true})
		if line := srv.Line(t); line != "ready" {
			t.Fatalf("server said %q", line)
		}
		c, err := peercred.Dial(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pid, uid, _ := parseCred(t, srv.Line(t))
		if pid != 0 || uid != 0 {
			t.Errorf("server in the PID namespace sees pid %d uid %d, want pid 0 (not visible) uid 0", pid, uid)
		}
	})
}
