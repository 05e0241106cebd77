package peercred_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

// TestWithAttestationDecidesByOneReading: the Authorizers decide by the
// reading a Cred's WithAttestation holds, not by a later one: a peer moved
// to another cgroup after it is still in the first for them, while the
// Cred without it shows the move. Copies keep the reading; a hash asked
// for later is of the same file.
func TestWithAttestationDecidesByOneReading(t *testing.T) {
	testutil.RequireRoot(t)
	helper, _ := testutil.HelperExec(t, "connect")
	first := fmt.Sprintf("/system.slice/peercred-test-%d-a.service", os.Getpid())
	second := fmt.Sprintf("/system.slice/peercred-test-%d-b.service", os.Getpid())
	dir1, dir2 := testutil.MakeCgroup(t, first), testutil.MakeCgroup(t, second)
	p, c := connectedPeer(t, testutil.Options{As: other})
	testutil.MoveToCgroup(t, dir1, p.PID())

	ac := c.Cred().WithAttestation(nil)
	read, err := ac.Attest(nil)
	if err != nil {
		t.Fatal(err)
	}
	if read.Cgroup != first {
		t.Fatalf("cgroup %q, want %q", read.Cgroup, first)
	}
	testutil.MoveToCgroup(t, dir2, p.PID())
	if now, err := c.Cred().Attest(nil); err != nil || now.Cgroup != second {
		t.Fatalf("Attest without WithAttestation: %v, %v; want cgroup %q", now, err, second)
	}
	for name, cred := range map[string]*peercred.Cred{
		"WithAttestation": ac, "its Clone": ac.Clone(), "its WithGroups": ac.WithGroups([]uint32{1}),
	} {
		again, err := cred.Attest(nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(read, again); diff != "" {
			t.Errorf("%s: Attest differs from the reading (-reading +Attest):\n%s", name, diff)
		}
		if err := peercred.AllowCgroups(first)(cred); err != nil {
			t.Errorf("%s: AllowCgroups(%s) refused the reading: %v", name, first, err)
		}
		if err := peercred.AllowCgroups(second)(cred); !errors.Is(err, peercred.ErrUnauthorized) {
			t.Errorf("%s: AllowCgroups(%s): %v, want a refusal: it decides by the reading", name, second, err)
		}
	}
	if err := peercred.AllowCgroups(first)(c.Cred()); !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("AllowCgroups(%s) of the Cred without WithAttestation: %v, want a refusal: it moved", first, err)
	}
	// What the caller does with a copy is its own.
	read.Cgroup = "/changed"
	if again, _ := ac.Attest(nil); again.Cgroup != first {
		t.Errorf("the reading changed with a copy of it: cgroup %q", again.Cgroup)
	}

	hashed, err := ac.Attest(&peercred.AttestOptions{HashExecutable: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := sha256File(t, helper); !bytes.Equal(hashed.Exe.SHA256, want) || hashed.Cgroup != first {
		t.Errorf("hashed: SHA-256 %x cgroup %q, want %x and the reading's %q", hashed.Exe.SHA256, hashed.Cgroup, want, first)
	}

	moved := ac.Clone()
	moved.PID = os.Getpid()
	if p, err := moved.Attest(nil); err == nil {
		t.Errorf("a copy with another PID described: %v", p)
	}
}

// TestWithAttestationOfNoPeer: a Cred made by hand, or whose connection is
// closed, holds an error, never a description, and the Authorizers refuse
// it; and a reading whose peer has exited gives no hash.
func TestWithAttestationOfNoPeer(t *testing.T) {
	me := (&peercred.Cred{PID: os.Getpid(), UID: uint32(os.Geteuid())}).WithAttestation(nil)
	if p, err := me.Attest(nil); err == nil {
		t.Errorf("a Cred made by hand described: %v", p)
	}
	if err := peercred.AllowCgroups("/")(me); !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("AllowCgroups(/) of a Cred made by hand: %v, want a refusal", err)
	}
	p, c := connectedPeer(t, testutil.Options{})
	ac := c.Cred().WithAttestation(nil)
	if _, err := ac.Attest(nil); err != nil {
		t.Fatal(err)
	}
	closed := c.Cred().Clone()
	c.Close()
	if got, err := closed.WithAttestation(nil).Attest(nil); err == nil {
		t.Errorf("WithAttestation after Close described: %v", got)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if got, err := ac.Attest(&peercred.AttestOptions{HashExecutable: true}); err == nil {
		t.Errorf("hash of an exited peer's executable: %v", got)
	}
}
