package peercred_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

// A Conn's groups are read from the connection when first asked for (see
// Cred.Groups). These tests pin what that may not change: they are the
// connect-time groups whenever read, every reader gets them, and a closed
// connection gives an error, never an empty list.

func init() {
	// connect-setgroups ADDR GID: connect, then change the supplementary
	// groups to GID alone, say "changed", and hold the connection until
	// the server closes it.
	testutil.Register("connect-setgroups", func(args []string) int {
		c, err := net.Dial("unix", args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		gid, _ := strconv.Atoi(args[1])
		if err := syscall.Setgroups([]int{gid}); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("changed")
		io.Copy(io.Discard, c)
		return 0
	})
}

func groupsOf(t *testing.T, c *peercred.Cred) []uint32 {
	t.Helper()
	groups, err := c.Groups()
	if err != nil {
		t.Fatalf("Groups: %v", err)
	}
	return groups
}

// The groups read after the peer changed its own, and after it exited, are
// those it connected with.
func TestGroupsAreTheConnectTimeOnes(t *testing.T) {
	testutil.RequireRoot(t)
	t.Run("the peer changed its groups", func(t *testing.T) {
		l := listen(t, &peercred.ListenConfig{})
		as := &testutil.User{UID: 0, GID: 0, Groups: []uint32{3456}}
		p := testutil.Start(t, "connect-setgroups", testutil.Options{Args: []string{l.Addr().String(), "4567"}, As: as})
		c := acceptTimeout(t, l)
		if line := p.Line(t); line != "changed" {
			t.Fatalf("helper said %q", line)
		}
		if got, want := readGroups(t, p.PID()), "4567"; got != want {
			t.Fatalf("the helper's groups in /proc are %q, want %q: it did not change them", got, want)
		}
		if diff := cmp.Diff([]uint32{3456}, groupsOf(t, c.Cred())); diff != "" {
			t.Errorf("Groups (-want +got):\n%s", diff)
		}
	})
	t.Run("the peer exited", func(t *testing.T) {
		l := listen(t, &peercred.ListenConfig{Mode: 0666})
		p := testutil.Start(t, "connect", testutil.Options{Args: []string{l.Addr().String()}, As: other})
		c := acceptTimeout(t, l)
		if line := p.Line(t); line != "connected" {
			t.Fatalf("helper said %q", line)
		}
		p.Kill()
		if diff := cmp.Diff([]uint32{3456}, groupsOf(t, c.Cred())); diff != "" {
			t.Errorf("Groups (-want +got):\n%s", diff)
		}
	})
}

// readGroups returns the Groups line of /proc/PID/status.
func readGroups(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Groups:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/proc/%d/status has no Groups line", pid)
	return ""
}

// Groups asked for first after Close are an error, never an empty list;
// groups asked for before Close stay known; Get reads them at once.
func TestGroupsAfterClose(t *testing.T) {
	testutil.RequireRoot(t)
	accept := func(t *testing.T) *peercred.Conn {
		t.Helper()
		l := listen(t, &peercred.ListenConfig{Mode: 0666})
		p := testutil.Start(t, "connect", testutil.Options{Args: []string{l.Addr().String()}, As: other})
		c := acceptTimeout(t, l)
		if line := p.Line(t); line != "connected" {
			t.Fatalf("helper said %q", line)
		}
		return c
	}
	t.Run("first asked after Close", func(t *testing.T) {
		c := accept(t)
		clone := c.Cred().Clone()
		c.Close()
		for name, cred := range map[string]*peercred.Cred{"Cred()": c.Cred(), "a Clone made before Close": clone} {
			groups, err := cred.Groups()
			if !errors.Is(err, net.ErrClosed) || groups != nil {
				t.Errorf("%s.Groups() = %v, %v; want nil and an error that is net.ErrClosed", name, groups, err)
			}
			if cred.InGroup(3456) {
				t.Errorf("%s.InGroup(3456) = true with groups unknown", name)
			}
			if !cred.InGroup(2345) {
				t.Errorf("%s.InGroup(2345) = false: the primary GID needs no groups", name)
			}
			if got, want := cred.String(), fmt.Sprintf("pid=%d uid=1234 gid=2345 groups=?", cred.PID); got != want {
				t.Errorf("%s.String() = %q, want %q", name, got, want)
			}
			if cred.Equal(cred.Clone()) {
				t.Errorf("%s equals a copy, with groups that cannot be read", name)
			}
		}
		// AllowGIDs admits by the primary GID without the groups, and
		// refuses, saying why, when it needs them.
		if err := peercred.AllowGIDs(2345)(c.Cred()); err != nil {
			t.Errorf("AllowGIDs(2345) = %v, want the primary GID admitted", err)
		}
		err := peercred.AllowGIDs(3456)(c.Cred())
		if !errors.Is(err, peercred.ErrUnauthorized) || !errors.Is(err, net.ErrClosed) {
			t.Errorf("AllowGIDs(3456) = %v, want a refusal that wraps ErrUnauthorized and net.ErrClosed", err)
		}
	})
	t.Run("asked before Close", func(t *testing.T) {
		c := accept(t)
		clone := c.Cred().Clone()
		want := groupsOf(t, c.Cred())
		c.Close()
		for name, cred := range map[string]*peercred.Cred{"Cred()": c.Cred(), "a Clone made before": clone} {
			if diff := cmp.Diff([]uint32{3456}, groupsOf(t, cred)); diff != "" {
				t.Errorf("%s.Groups (-want +got):\n%s", name, diff)
			}
		}
		if diff := cmp.Diff([]uint32{3456}, want); diff != "" {
			t.Errorf("Groups before Close (-want +got):\n%s", diff)
		}
	})
	t.Run("Get", func(t *testing.T) {
		c := accept(t)
		cred, err := peercred.Get(c)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
		if diff := cmp.Diff([]uint32{3456}, groupsOf(t, cred)); diff != "" {
			t.Errorf("Groups of Get's Cred after Close (-want +got):\n%s", diff)
		}
	})
}

// Everything that reads groups gets them from a Conn whose groups were
// never asked for: the Authorizers, String, Equal, InGroup, many readers at
// once, and both ends of a socket pair.
func TestGroupsReaders(t *testing.T) {
	testutil.RequireRoot(t)
	t.Run("AllowGIDs at accept, by a supplementary group", func(t *testing.T) {
		l := listen(t, &peercred.ListenConfig{Mode: 0666, Authorize: peercred.AllowGIDs(3456)})
		p := testutil.Start(t, "connect", testutil.Options{Args: []string{l.Addr().String()}, As: other})
		c := acceptTimeout(t, l)
		if c.Cred().PID != p.PID() {
			t.Errorf("admitted pid %d, want %d", c.Cred().PID, p.PID())
		}
	})
	t.Run("String, Equal, InGroup and concurrent readers", func(t *testing.T) {
		l := listen(t, &peercred.ListenConfig{Mode: 0666})
		p := testutil.Start(t, "connect", testutil.Options{Args: []string{l.Addr().String()}, As: other})
		c := acceptTimeout(t, l)
		if got, want := c.Cred().String(), fmt.Sprintf("pid=%d uid=1234 gid=2345 groups=[3456]", p.PID()); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
		c2 := acceptAnother(t, l)
		if !c2.Cred().InGroup(3456) || c2.Cred().InGroup(3457) {
			t.Errorf("InGroup(3456), InGroup(3457) = %v, %v, want true, false", c2.Cred().InGroup(3456), c2.Cred().InGroup(3457))
		}
		c3 := acceptAnother(t, l)
		want := (&peercred.Cred{PID: c3.Cred().PID, UID: 1234, GID: 2345}).WithGroups([]uint32{3456})
		if !c3.Cred().Equal(want) {
			t.Errorf("%v is not equal to %v", c3.Cred(), want)
		}
		c4 := acceptAnother(t, l)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				clone := c4.Cred().Clone()
				for _, cred := range []*peercred.Cred{c4.Cred(), clone} {
					groups, err := cred.Groups()
					if err != nil || !slices.Equal(groups, []uint32{3456}) {
						t.Errorf("Groups() = %v, %v, want [3456]", groups, err)
					}
				}
			})
		}
		wg.Wait()
	})
	t.Run("a socket pair and FileConn", func(t *testing.T) {
		local, remote, err := peercred.Socketpair(syscall.SOCK_STREAM)
		if err != nil {
			t.Fatal(err)
		}
		defer local.Close()
		defer remote.Close()
		other, err := peercred.FileConn(remote)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		own, err := os.Getgroups()
		if err != nil {
			t.Fatal(err)
		}
		want := []uint32{}
		for _, g := range own {
			want = append(want, uint32(g))
		}
		for _, c := range []*peercred.Conn{local, other} {
			if diff := cmp.Diff(want, groupsOf(t, c.Cred())); diff != "" {
				t.Errorf("Groups (-want +got):\n%s", diff)
			}
		}
	})
	t.Run("WithGroups", func(t *testing.T) {
		base := &peercred.Cred{PID: 1, UID: 2, GID: 3}
		for _, tt := range []struct {
			in   []uint32
			want []uint32
		}{{nil, nil}, {[]uint32{}, []uint32{}}, {[]uint32{4, 5}, []uint32{4, 5}}} {
			got := groupsOf(t, base.WithGroups(tt.in))
			if (got == nil) != (tt.want == nil) || !slices.Equal(got, tt.want) {
				t.Errorf("WithGroups(%#v).Groups() = %#v, want %#v", tt.in, got, tt.want)
			}
		}
		if g := groupsOf(t, base); g != nil {
			t.Errorf("a Cred made by hand has groups %v, want nil (unknown)", g)
		}
	})
}

// acceptAnother accepts a conn from a new helper as other.
func acceptAnother(t *testing.T, l *peercred.Listener) *peercred.Conn {
	t.Helper()
	p := testutil.Start(t, "connect", testutil.Options{Args: []string{l.Addr().String()}, As: other})
	c := acceptTimeout(t, l)
	if c.Cred().PID != p.PID() {
		t.Fatalf("accepted pid %d, want %d", c.Cred().PID, p.PID())
	}
	return c
}
