package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

// Listen names what is in the way in words ("a directory", not a mode such
// as d--------- that reads as "no permissions"), says when the socket's
// directory does not exist, and never removes what is there.
func TestListenSaysWhatIsInTheWay(t *testing.T) {
	dir := testutil.SocketDir(t)
	for _, tt := range []struct {
		name    string
		make    func(path string) error
		wantIs  error
		wantMsg string // with PATH for the socket's path
	}{
		{name: "a directory", make: func(p string) error { return os.Mkdir(p, 0) },
			wantIs: fs.ErrExist, wantMsg: "PATH is a directory, not a socket; not removing it"},
		{name: "a regular file", make: func(p string) error { return os.WriteFile(p, []byte("keep"), 0o600) },
			wantIs: fs.ErrExist, wantMsg: "PATH is a regular file, not a socket; not removing it"},
		{name: "a symbolic link", make: func(p string) error { return os.Symlink("/nonexistent", p) },
			wantIs: fs.ErrExist, wantMsg: "PATH is a symbolic link, not a socket; not removing it"},
		{name: "a FIFO", make: func(p string) error { return syscall.Mkfifo(p, 0o600) },
			wantIs: fs.ErrExist, wantMsg: "PATH is a FIFO, not a socket; not removing it"},
	} {
		for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0o600}} {
			t.Run(fmt.Sprintf("%s, mode %v", tt.name, lc.Mode), func(t *testing.T) {
				path := filepath.Join(dir, fmt.Sprintf("%s-%o", strings.ReplaceAll(tt.name, " ", "-"), lc.Mode))
				if err := tt.make(path); err != nil {
					t.Fatal(err)
				}
				before := dirState(t, dir)
				l, err := lc.Listen(context.Background(), path)
				if err == nil {
					l.Close()
					t.Fatalf("Listen over %s succeeded", tt.name)
				}
				want := strings.ReplaceAll(tt.wantMsg, "PATH", path)
				if !errors.Is(err, tt.wantIs) || !strings.Contains(err.Error(), want) {
					t.Errorf("Listen over %s: %v\nwant errors.Is %v and the words %q", tt.name, err, tt.wantIs, want)
				}
				if diff := cmp.Diff(before, dirState(t, dir)); diff != "" {
					t.Errorf("directory changed (-before +after):\n%s", diff)
				}
			})
		}
	}

	for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0o600}} {
		t.Run(fmt.Sprintf("a missing directory, mode %v", lc.Mode), func(t *testing.T) {
			missing := filepath.Join(dir, "none", "deeper")
			_, err := lc.Listen(context.Background(), missing+"/x.sock")
			want := "the socket's directory " + missing + " does not exist"
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), want) {
				t.Errorf("Listen in a missing directory: %v\nwant fs.ErrNotExist and the words %q", err, want)
			}
		})
	}
}

// Dial says what is at the path when connect(2) answers "connection
// refused", which it does for directories and regular files too; the
// error still wraps ECONNREFUSED.
func TestDialSaysWhatIsThere(t *testing.T) {
	dir := testutil.SocketDir(t)
	stale := filepath.Join(dir, "stale")
	ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ul.SetUnlinkOnClose(false)
	ul.Close()
	abstract := "@" + stale // nobody listens there
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path, want string
	}{
		{dir, "dial unix " + dir + ": peercred: " + dir + " is a directory, not a socket: connect: connection refused"},
		{regular, "dial unix " + regular + ": peercred: " + regular + " is a regular file, not a socket: connect: connection refused"},
		{stale, "dial unix " + stale + ": peercred: no process listens on the socket " + stale + ": connect: connection refused"},
		{abstract, "dial unix " + abstract + ": peercred: no process listens on the abstract socket " + abstract + ": connect: connection refused"},
	} {
		_, err := peercred.Dial(context.Background(), tt.path)
		if err == nil || err.Error() != tt.want || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("Dial %s:\n got %v\nwant %s (and errors.Is ECONNREFUSED)", tt.path, err, tt.want)
		}
	}
}

// A path longer than sun_path takes (107 bytes and a NUL on Linux) is
// refused by Listen, which could bind it through a short name of its
// directory but no client could reach it, and by Dial, with the limit in
// words. A path of 107 bytes works, with or without a mode, also when its
// last component is too long to bind through /proc/self/fd.
func TestSocketPathLimit(t *testing.T) {
	dir := testutil.SocketDir(t)
	pad := func(n int) string { return dir + "/" + strings.Repeat("x", n-len(dir)-1) }
	long := pad(108)
	for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0o600}} {
		l, err := lc.Listen(context.Background(), long)
		if err == nil {
			l.Close()
		}
		want := "socket path is 108 bytes, over the kernel's limit of 107"
		if !errors.Is(err, syscall.ENAMETOOLONG) || !strings.Contains(err.Error(), want) {
			t.Errorf("Listen(mode %v) on a 108-byte path: %v\nwant ENAMETOOLONG and the words %q", lc.Mode, err, want)
		}
	}
	if _, err := os.Lstat(long); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a socket file was made at the long path: %v", err)
	}
	_, err := peercred.Dial(context.Background(), long)
	if want := "socket path is 108 bytes, over the kernel's limit of 107"; !errors.Is(err, syscall.ENAMETOOLONG) || !strings.Contains(err.Error(), want) {
		t.Errorf("Dial of a 108-byte path: %v\nwant ENAMETOOLONG and the words %q", err, want)
	}

	// A relative path of 107 bytes is one name of 107 bytes, which
	// /proc/self/fd/N/ would take over the limit.
	t.Chdir(dir)
	for _, path := range []string{pad(107), strings.Repeat("y", 107)} {
		for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0o600}} {
			l, err := lc.Listen(context.Background(), path)
			if err != nil {
				t.Errorf("Listen(mode %v) on a 107-byte path: %v", lc.Mode, err)
				continue
			}
			c, err := peercred.Dial(context.Background(), path)
			if err != nil {
				t.Errorf("Dial a 107-byte path (mode %v): %v", lc.Mode, err)
			} else {
				c.Close()
			}
			l.Close()
		}
	}
}

// Whatever name the kernel recorded for the listening socket (Listen binds
// through /proc/self/fd/N, and with Mode in a private directory), the
// addresses peercred reports are the path the caller gave: the Listener's,
// the LocalAddr of the conns it accepts, the RemoteAddr of a conn from Dial,
// and the address in DialFunc's error.
func TestAddrsAreTheGivenPath(t *testing.T) {
	dir := testutil.SocketDir(t)
	for _, lc := range []*peercred.ListenConfig{{}, {Mode: 0o666}} {
		t.Run(fmt.Sprintf("mode %v", lc.Mode), func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("s%o", lc.Mode))
			l, err := lc.Listen(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			c, err := peercred.Dial(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			sc := acceptTimeout(t, l)
			_, err = peercred.DialFunc(path, peercred.AllowUIDs(4242))(context.Background(), "tcp", "x:80")
			if err == nil {
				t.Fatal("DialFunc admitted a server that is not uid 4242")
			}
			acceptTimeout(t, l)
			var oe *net.OpError
			if !errors.As(err, &oe) {
				t.Fatalf("DialFunc's error %v is no *net.OpError", err)
			}
			got := []string{l.Addr().String(), sc.LocalAddr().String(), c.RemoteAddr().String(), oe.Addr.String()}
			want := []string{path, path, path, path}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Listener.Addr, server conn's LocalAddr, client conn's RemoteAddr, DialFunc error's Addr (-want +got):\n%s", diff)
			}
			if strings.Contains(err.Error(), "/proc/") || strings.Contains(err.Error(), "/.pc") {
				t.Errorf("DialFunc's error names the bind path: %v", err)
			}
			if c.RemoteAddr().Network() != "unix" || sc.LocalAddr().Network() != "unix" {
				t.Errorf("networks %q, %q, want unix", c.RemoteAddr().Network(), sc.LocalAddr().Network())
			}
		})
	}
}
