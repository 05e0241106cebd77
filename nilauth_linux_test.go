package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// serve-0666 ADDR: listen on the socket file ADDR with mode 0666, so
	// that every user can connect, say "ready", and accept and hang up on
	// connections until killed.
	testutil.Register("serve-0666", func(args []string) int {
		l, err := (&peercred.ListenConfig{Mode: 0o666}).Listen(context.Background(), args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer l.Close()
		fmt.Println("ready")
		for {
			c, err := l.Accept()
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	})
	// dialfunc-nil ADDR: dial ADDR with DialFunc and a nil Authorizer;
	// print "admitted uid=UID" (the server's) or "refused: ERROR".
	testutil.Register("dialfunc-nil", func(args []string) int {
		c, err := peercred.DialFunc(args[0], nil)(context.Background(), "unix", args[0])
		if err != nil {
			fmt.Println("refused:", err)
			return 0
		}
		defer c.Close()
		fmt.Printf("admitted uid=%d\n", c.(*peercred.Conn).Cred().UID)
		return 0
	})
}

// SameUserOrRoot admits our own effective UID and root, and no other UID
// (the overflow UID of an unmapped user included).
func TestSameUserOrRoot(t *testing.T) {
	me := uint32(os.Geteuid())
	other := uint32(4242)
	if me == other {
		other++
	}
	auth := peercred.SameUserOrRoot()
	for _, tt := range []struct {
		uid  uint32
		want bool
	}{
		{me, me != 65534}, // the overflow UID is never "us"
		{0, true},
		{other, false},
		{65534, false},
	} {
		err := auth(&peercred.Cred{PID: 1, UID: tt.uid, GID: tt.uid})
		if (err == nil) != tt.want {
			t.Errorf("uid %d (ours %d): %v, want admitted=%v", tt.uid, me, err, tt.want)
		}
		if err != nil && (!errors.Is(err, peercred.ErrUnauthorized) ||
			err.Error() != fmt.Sprintf("uid %d is neither this process's uid %d nor root: unauthorized", tt.uid, me)) {
			t.Errorf("uid %d: error %q", tt.uid, err)
		}
	}
}

// DialFunc with a nil Authorizer admits a server of the client's own UID
// and a root server, and refuses a server of any other user (who may have
// taken the socket's name first), with real processes on both sides.
func TestNilAuthorizerMeansSameUserOrRoot(t *testing.T) {
	dir := testutil.SocketDir(t)

	t.Run("a server of our own uid is admitted", func(t *testing.T) {
		path := filepath.Join(dir, "own")
		srv := testutil.Start(t, "serve-0666", testutil.Options{Args: []string{path}})
		if line := srv.Line(t); line != "ready" {
			t.Fatalf("server said %q", line)
		}
		cli := testutil.Start(t, "dialfunc-nil", testutil.Options{Args: []string{path}})
		if got, want := cli.Line(t), fmt.Sprintf("admitted uid=%d", os.Geteuid()); got != want {
			t.Errorf("client said %q, want %q", got, want)
		}
	})

	client := &testutil.User{UID: 1234, GID: 2345}
	for _, tt := range []struct {
		name   string
		server *testutil.User // nil: root, the test process's user
		want   string
	}{
		{name: "a root server is admitted by another user", want: "admitted uid=0"},
		{name: "a server of the client's uid is admitted", server: &testutil.User{UID: 1234, GID: 2345},
			want: "admitted uid=1234"},
		{name: "a server of another uid is refused", server: &testutil.User{UID: 1235, GID: 2345},
			want: "refused: dial unix PATH: peercred: server pid=PID uid=1235 gid=2345 groups=[] refused: uid 1235 is neither this process's uid 1234 nor root: unauthorized"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			testutil.RequireRoot(t)
			path := filepath.Join(dir, fmt.Sprintf("s%d", len(tt.name)))
			srv := testutil.Start(t, "serve-0666", testutil.Options{Args: []string{path}, As: tt.server})
			if line := srv.Line(t); line != "ready" {
				t.Fatalf("server said %q", line)
			}
			cli := testutil.Start(t, "dialfunc-nil", testutil.Options{Args: []string{path}, As: client})
			want := strings.NewReplacer("PATH", path, "PID", fmt.Sprint(srv.PID())).Replace(tt.want)
			if got := cli.Line(t); got != want {
				t.Errorf("client as uid 1234:\n got %q\nwant %q", got, want)
			}
		})
	}
}
