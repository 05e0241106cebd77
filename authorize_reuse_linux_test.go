package peercred_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// idle: do nothing until killed.
	testutil.Register("idle", func([]string) int {
		time.Sleep(time.Hour)
		return 0
	})
}

// TestProcessAuthorizerRefusesReusedPID: an Authorizer that looks at a
// process, called on a Cred after Accept (as a privsep Claim does, or
// grpcpeer on every call with its copy), checks as Accept does that the PID
// is still the peer's. The peer connects and exits, a process that would
// match takes its PID, and the check is refused, for the Conn's Cred, a
// Clone of it and what Get reads.
func TestProcessAuthorizerRefusesReusedPID(t *testing.T) {
	testutil.RequireRoot(t)
	helper, _ := testutil.HelperExec(t, "idle") // the program every helper runs
	c, taker := connReusedPID(t)
	got, err := peercred.Get(c)
	if err != nil {
		t.Fatal(err)
	}
	creds := map[string]*peercred.Cred{"Cred()": c.Cred(), "Cred().Clone()": c.Cred().Clone(), "Get": got}
	auths := map[string]peercred.Authorizer{
		"DescendantOf(us)":                      peercred.DescendantOf(os.Getpid()),
		"AllowExecutables(helper)":              peercred.AllowExecutables(helper),
		"AnyOf(AllowUIDs(1), DescendantOf(us))": peercred.AnyOf(peercred.AllowUIDs(1), peercred.DescendantOf(os.Getpid())),
	}
	for an, auth := range auths {
		for cn, cred := range creds {
			err := auth(cred)
			if err == nil {
				t.Errorf("%s admitted %s of an exited peer, pid %d now our helper %d", an, cn, cred.PID, taker.PID())
			} else if !errors.Is(err, peercred.ErrUnauthorized) {
				t.Errorf("%s: refusal %v does not wrap ErrUnauthorized", an, err)
			}
		}
	}
}

// TestProcessAuthorizerRefusesHandMadeCred: a Cred that was not read from
// a connection has no peer to confirm its PID with: refused.
func TestProcessAuthorizerRefusesHandMadeCred(t *testing.T) {
	me := &peercred.Cred{PID: os.Getpid(), UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	if err := peercred.DescendantOf(os.Getpid())(me); !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("DescendantOf(us) for a Cred made by hand: %v, want a refusal", err)
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := peercred.AllowExecutables(exe)(me); !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("AllowExecutables for a Cred made by hand: %v, want a refusal", err)
	}
}

// connReusedPID returns a connection whose peer connected and exited, and
// the helper ("idle") that then took the peer's PID.
func connReusedPID(t *testing.T) (*peercred.Conn, *testutil.Proc) {
	t.Helper()
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	for range 20 {
		p := testutil.Start(t, "connect-exit", testutil.Options{Args: []string{l.Addr().String()}})
		c := acceptTimeout(t, l)
		if err := p.Wait(); err != nil { // reaped: its PID is free
			t.Fatal(err)
		}
		if taker := testutil.StartAtPID(t, c.Cred().PID, "idle", testutil.Options{}); taker != nil {
			return c, taker
		}
	}
	t.Fatal("no helper got the PID of an exited peer in 20 attempts")
	return nil, nil
}
