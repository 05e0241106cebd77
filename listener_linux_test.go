package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

var other = &testutil.User{UID: 1234, GID: 2345, Groups: []uint32{3456}}

func TestAcceptSeesPeerUnderOtherUID(t *testing.T) {
	testutil.RequireRoot(t)
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	p := testutil.Start(t, "connect", testutil.Options{Args: []string{l.Addr().String()}, As: other})
	c := acceptTimeout(t, l)
	want := (&peercred.Cred{PID: p.PID(), UID: 1234, GID: 2345}).WithGroups([]uint32{3456})
	if diff := cmp.Diff(want, c.Cred()); diff != "" {
		t.Errorf("Cred() (-want +got):\n%s", diff)
	}
	// Get on the accepted conn agrees with what Accept attached.
	got, err := peercred.Get(c)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get (-want +got):\n%s", diff)
	}
	if line := p.Line(t); line != "connected" {
		t.Errorf("helper said %q", line)
	}
}

func TestAuthorizeAtAccept(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name      string
		authorize peercred.Authorizer
		admitted  uint32 // the UID that must be admitted
		refused   uint32 // the UID that must be refused
	}{
		{"AllowUIDs admits a listed uid and refuses another", peercred.AllowUIDs(1234), 1234, 1235},
		{"AllowGIDs admits by supplementary group", peercred.AllowGIDs(3456), 1234, 1235},
		{"SameUser admits root and refuses others", peercred.SameUser(), 0, 1234},
		{"AnyOf admits either", peercred.AnyOf(peercred.AllowUIDs(7), peercred.AllowUIDs(1234)), 1234, 1235},
		{"AllOf needs both", peercred.AllOf(peercred.AllowUIDs(1234, 1235), peercred.AllowGIDs(3456)), 1234, 1235},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf syncBuffer
			l := listen(t, &peercred.ListenConfig{
				Mode:      0666,
				Authorize: tt.authorize,
				Logger:    slog.New(slog.NewTextHandler(&logBuf, nil)),
			})
			addr := l.Addr().String()
			// Only uid 1234 is in group 3456; 1235 is in group 2346 only.
			user := func(uid uint32) *testutil.User {
				if uid == 1234 {
					return other
				}
				return &testutil.User{UID: uid, GID: 2346}
			}
			// The refused peer connects first: Accept must skip it and
			// return the admitted one.
			refused := testutil.Start(t, "connect", testutil.Options{Args: []string{addr}, As: user(tt.refused)})
			if line := refused.Line(t); line != "connected" {
				t.Fatalf("refused helper said %q", line)
			}
			admitted := testutil.Start(t, "connect", testutil.Options{Args: []string{addr}, As: user(tt.admitted)})
			c := acceptTimeout(t, l)
			if c.Cred().PID != admitted.PID() || c.Cred().UID != tt.admitted {
				t.Errorf("accepted %v, want pid %d uid %d", c.Cred(), admitted.PID(), tt.admitted)
			}
			// The refused peer was closed: it sees EOF and exits.
			if err := refused.Wait(); err != nil {
				t.Errorf("refused helper: %v", err)
			}
			log := logBuf.String()
			for _, want := range []string{"peer refused", "pid=" + itoa(refused.PID()), "uid=" + itoa(int(tt.refused)), "reason="} {
				if !strings.Contains(log, want) {
					t.Errorf("log lacks %q:\n%s", want, log)
				}
			}
		})
	}
}

func TestDialReportsServer(t *testing.T) {
	testutil.RequireRoot(t)
	path := testutil.SocketDir(t) + "/s"
	srv := testutil.Start(t, "serve", testutil.Options{Args: []string{path}, As: other})
	if line := srv.Line(t); line != "ready" {
		t.Fatalf("server said %q", line)
	}
	c, err := peercred.Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := (&peercred.Cred{PID: srv.PID(), UID: 1234, GID: 2345}).WithGroups([]uint32{3456})
	if diff := cmp.Diff(want, c.Cred()); diff != "" {
		t.Errorf("server cred (-want +got):\n%s", diff)
	}
	// And the server saw us.
	pid, uid, gid := parseCred(t, srv.Line(t))
	if pid != os.Getpid() || uid != 0 || gid != 0 {
		t.Errorf("server saw pid=%d uid=%d gid=%d, want pid=%d uid=0 gid=0", pid, uid, gid, os.Getpid())
	}
}

func TestStaleAndInUseSocket(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	t.Run("a stale socket file is replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale")
		// Make a socket file nobody listens on.
		ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		ul.SetUnlinkOnClose(false)
		ul.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("stale socket not left behind: %v", err)
		}
		l, err := peercred.Listen(ctx, path)
		if err != nil {
			t.Fatalf("Listen over a stale socket: %v", err)
		}
		defer l.Close()
		c, err := peercred.Dial(ctx, path)
		if err != nil {
			t.Fatalf("Dial the new listener: %v", err)
		}
		c.Close()
	})

	t.Run("a socket in use is not taken over", func(t *testing.T) {
		path := filepath.Join(dir, "inuse")
		l1, err := peercred.Listen(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer l1.Close()
		for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0600}} {
			_, err = lc.Listen(ctx, path)
			if !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("Listen(mode %v) on a live socket: got %v, want EADDRINUSE", lc.Mode, err)
			}
		}
		// The first listener still works.
		c, err := peercred.Dial(ctx, path)
		if err != nil {
			t.Fatalf("first listener broken: %v", err)
		}
		c.Close()
		if _, err := acceptOne(l1); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a file that is not a socket is never removed", func(t *testing.T) {
		path := filepath.Join(dir, "regular")
		if err := os.WriteFile(path, []byte("keep me"), 0644); err != nil {
			t.Fatal(err)
		}
		_, err := peercred.Listen(ctx, path)
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("Listen over a regular file: got %v, want fs.ErrExist", err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != "keep me" {
			t.Fatalf("regular file changed: %q, %v", b, err)
		}
	})

	t.Run("Close removes the socket file, once", func(t *testing.T) {
		path := filepath.Join(dir, "closed")
		l, err := peercred.Listen(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket file after Close: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
		}
	})

	t.Run("Close leaves a socket file that replaced ours", func(t *testing.T) {
		path := filepath.Join(dir, "replaced")
		l, err := peercred.Listen(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(path)
		l2, err := peercred.Listen(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer l2.Close()
		l.Close()
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("Close removed another listener's socket: %v", err)
		}
	})
}

func TestSocketModeAndOwner(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name     string
		lc       peercred.ListenConfig
		wantMode os.FileMode
		wantUID  uint32
		wantGID  uint32
		admitted []*testutil.User // may connect
		refused  []*testutil.User // get EACCES from the file mode
	}{
		{
			name:     "0600 owned by uid 1234",
			lc:       peercred.ListenConfig{Mode: 0600, UID: 1234, GID: -1},
			wantMode: 0600, wantUID: 1234, wantGID: 0,
			admitted: []*testutil.User{{UID: 1234, GID: 1}},
			refused:  []*testutil.User{{UID: 1235, GID: 0}},
		},
		{
			name:     "0660 with group 2345",
			lc:       peercred.ListenConfig{Mode: 0660, UID: -1, GID: 2345},
			wantMode: 0660, wantUID: 0, wantGID: 2345,
			admitted: []*testutil.User{other, {UID: 1235, GID: 2345}},
			refused:  []*testutil.User{{UID: 1235, GID: 2346}},
		},
		{
			name:     "0666 for everyone",
			lc:       peercred.ListenConfig{Mode: 0666},
			wantMode: 0666, wantUID: 0, wantGID: 0,
			admitted: []*testutil.User{other},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t, &tt.lc)
			path := l.Addr().String()
			fi, err := os.Lstat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != tt.wantMode || st.Uid != tt.wantUID || st.Gid != tt.wantGID {
				t.Errorf("socket file: %v uid %d gid %d, want %v uid %d gid %d",
					fi.Mode(), st.Uid, st.Gid, fs.ModeSocket|tt.wantMode, tt.wantUID, tt.wantGID)
			}
			// No private directory is left beside the socket.
			ents, _ := os.ReadDir(filepath.Dir(path))
			if len(ents) != 1 {
				t.Errorf("directory holds %d entries, want only the socket", len(ents))
			}
			for _, u := range tt.admitted {
				p := testutil.Start(t, "connect", testutil.Options{Args: []string{path}, As: u})
				if line := p.Line(t); line != "connected" {
					t.Errorf("uid %d gid %d: %s, want connected", u.UID, u.GID, line)
				}
				acceptTimeout(t, l).Close()
			}
			for _, u := range tt.refused {
				p := testutil.Start(t, "connect", testutil.Options{Args: []string{path}, As: u})
				if line := p.Line(t); !strings.Contains(line, "permission denied") {
					t.Errorf("uid %d gid %d: %s, want permission denied", u.UID, u.GID, line)
				}
			}
		})
	}
}

func TestAbstractSocket(t *testing.T) {
	testutil.RequireRoot(t)
	addr := "@peercred-test-" + itoa(os.Getpid())
	l, err := peercred.Listen(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Addr().String(); got != addr {
		t.Errorf("Addr() = %q, want %q", got, addr)
	}
	p := testutil.Start(t, "connect", testutil.Options{Args: []string{addr}, As: other})
	c := acceptTimeout(t, l)
	if c.Cred().PID != p.PID() || c.Cred().UID != 1234 {
		t.Errorf("abstract peer %v, want pid %d uid 1234", c.Cred(), p.PID())
	}
	// File protections cannot apply to an abstract socket: asking is an error.
	if _, err := (&peercred.ListenConfig{Mode: 0600}).Listen(context.Background(), addr+"-mode"); err == nil {
		t.Error("Listen with Mode on an abstract address succeeded")
	}
}

func TestAcceptContext(t *testing.T) {
	l := listen(t, &peercred.ListenConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()

	// A plain Accept runs concurrently; the context ending must not disturb it.
	type result struct {
		c   *peercred.Conn
		err error
	}
	accepted := make(chan result, 1)
	go func() {
		c, err := l.AcceptPeerCred()
		accepted <- result{c, err}
	}()

	if _, err := l.AcceptContext(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcceptContext: %v, want context.DeadlineExceeded", err)
	}
	select {
	case r := <-accepted:
		t.Fatalf("concurrent Accept returned early: %v, %v", r.c, r.err)
	case <-time.After(50 * time.Millisecond):
	}
	// The listener is still open and the concurrent Accept gets the conn.
	c, err := peercred.Dial(context.Background(), l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := <-accepted
	if r.err != nil {
		t.Fatalf("Accept after another's context ended: %v", r.err)
	}
	r.c.Close()
	if r.c.Cred().PID != os.Getpid() {
		t.Errorf("accepted pid %d, want ours %d", r.c.Cred().PID, os.Getpid())
	}

	// And AcceptContext still works with a live context.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	c2, err := peercred.Dial(ctx2, l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	a, err := l.AcceptContext(ctx2)
	if err != nil {
		t.Fatalf("AcceptContext after a cancel: %v", err)
	}
	a.Close()
}

func TestAcceptUsesNoGoroutine(t *testing.T) {
	l := listen(t, &peercred.ListenConfig{})
	before := runtime.NumGoroutine()
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	// At most: a goroutine left by an earlier test may end meanwhile.
	if n := runtime.NumGoroutine(); n > before+1 {
		t.Errorf("%d goroutines while one Accept blocks, want at most %d", n, before+1)
	}
	l.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Errorf("blocked Accept after Close: %v, want net.ErrClosed", err)
	}
}

func TestGetErrors(t *testing.T) {
	t.Run("TCP conn", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if cred, err := peercred.Get(c); err == nil {
			t.Errorf("Get on TCP = %v, want an error", cred)
		}
	})
	t.Run("unconnected Unix socket", func(t *testing.T) {
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "g"), Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cred, err := peercred.Get(c)
		if !errors.Is(err, syscall.ENOTCONN) {
			t.Errorf("Get on an unconnected socket = %v, %v; want ENOTCONN", cred, err)
		}
	})
	t.Run("nil", func(t *testing.T) {
		if _, err := peercred.Get(nil); err == nil {
			t.Error("Get(nil) succeeded")
		}
	})
}

// TestNoLeakOverAcceptCycles runs 10,000 accept/close cycles, admitted and
// refused, and checks descriptors and goroutines are back where they were.
func TestNoLeakOverAcceptCycles(t *testing.T) {
	l := listen(t, &peercred.ListenConfig{
		Authorize: func(c *peercred.Cred) error { return nil },
		Logger:    slog.New(slog.DiscardHandler),
	})
	addr := l.Addr().String()
	cycle := func() {
		c, err := net.Dial("unix", addr)
		if err != nil {
			t.Fatal(err)
		}
		a, err := l.AcceptPeerCred()
		if err != nil {
			t.Fatal(err)
		}
		a.Close()
		c.Close()
	}
	cycle() // warm up lazily opened descriptors (epoll)
	fds, goroutines := openFDs(t), runtime.NumGoroutine()
	for range 10000 {
		cycle()
	}
	if got := openFDs(t); got != fds {
		t.Errorf("open descriptors: %d before, %d after 10,000 accepts", fds, got)
	}
	noGoroutineLeak(t, goroutines)
}

func TestConnContextHTTP(t *testing.T) {
	l := listen(t, &peercred.ListenConfig{})
	srv := &http.Server{
		ConnContext: peercred.ConnContext,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, ok := peercred.FromContext(r.Context())
			if !ok {
				http.Error(w, "no credentials", http.StatusForbidden)
				return
			}
			fmt.Fprintf(w, "%d %d", c.PID, c.UID)
		}),
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return net.Dial("unix", l.Addr().String())
		},
	}}
	resp, err := client.Get("http://unix/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("%d %d", os.Getpid(), os.Getuid()); string(body) != want {
		t.Errorf("handler saw %q, want %q", body, want)
	}
}

func acceptOne(l *peercred.Listener) (*peercred.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := l.AcceptContext(ctx)
	if err == nil {
		c.Close()
	}
	return c, err
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestExternalClients checks peers that are not Go programs: nc and socat,
// run as another user, are seen with their own PID and UID.
func TestExternalClients(t *testing.T) {
	testutil.RequireRoot(t)
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	path := l.Addr().String()
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"nc", []string{"-U", path}},
		{"socat", []string{"-", "UNIX-CONNECT:" + path}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bin := testutil.RequireCommand(t, tt.name)
			p := testutil.Command(t, testutil.Options{As: other, Stdin: strings.NewReader("hi\n")}, bin, tt.args...)
			c := acceptTimeout(t, l)
			want := (&peercred.Cred{PID: p.PID(), UID: 1234, GID: 2345}).WithGroups([]uint32{3456})
			if diff := cmp.Diff(want, c.Cred()); diff != "" {
				t.Errorf("%s as uid 1234 (-want +got):\n%s", tt.name, diff)
			}
			c.Close()
		})
	}
}

func TestSeqpacketListener(t *testing.T) {
	l := listen(t, &peercred.ListenConfig{Network: "unixpacket"})
	if got := l.Addr().Network(); got != "unixpacket" {
		t.Errorf("Addr().Network() = %q", got)
	}
	c, err := peercred.DialNetwork(context.Background(), "unixpacket", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a := acceptTimeout(t, l)
	if a.Cred().PID != os.Getpid() || c.Cred().PID != os.Getpid() {
		t.Errorf("creds %v / %v, want our pid %d", a.Cred(), c.Cred(), os.Getpid())
	}
	// Message boundaries are kept: two writes, two reads.
	c.Write([]byte("one"))
	c.Write([]byte("two"))
	buf := make([]byte, 16)
	for _, want := range []string{"one", "two"} {
		n, err := a.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("read %q, %v; want %q", buf[:n], err, want)
		}
	}
	if _, err := (&peercred.ListenConfig{Network: "tcp"}).Listen(context.Background(), "/tmp/x"); err == nil {
		t.Error("Listen with network tcp succeeded")
	}
}

// syncBuffer is a buffer the test and a writer can share.
type syncBuffer = testutil.Buffer
