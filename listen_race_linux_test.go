package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// Attackers for the races on a socket's path: a local user who owns a
// directory on the path, or who can write the directory of the socket,
// swaps directories for symlinks while root listens and closes.
func init() {
	// swapdir A B: exchange A and B (a directory and a symlink) with
	// renameat2(RENAME_EXCHANGE) in a loop, saying "ready" after the first
	// exchange, until killed.
	testutil.Register("swapdir", func(args []string) int {
		for i := 0; ; i++ {
			if err := unix.Renameat2(unix.AT_FDCWD, args[0], unix.AT_FDCWD, args[1], unix.RENAME_EXCHANGE); err != nil {
				fmt.Println("error:", err)
				return 1
			}
			if i == 0 {
				fmt.Println("ready")
			}
		}
	})
	// swappc DIR TARGET: whenever a ".pc*" entry appears in DIR, exchange
	// it for a fresh symlink to TARGET, until killed.
	testutil.Register("swappc", func(args []string) int {
		dir, target := args[0], args[1]
		fmt.Println("ready")
		for n := 0; ; {
			f, err := os.Open(dir)
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			names, _ := f.Readdirnames(-1)
			f.Close()
			for _, name := range names {
				if !strings.HasPrefix(name, ".pc") {
					continue
				}
				n++
				link := filepath.Join(dir, "l"+strconv.Itoa(n))
				if err := os.Symlink(target, link); err != nil {
					fmt.Println("error:", err)
					return 1
				}
				unix.Renameat2(unix.AT_FDCWD, link, unix.AT_FDCWD, filepath.Join(dir, name), unix.RENAME_EXCHANGE)
			}
		}
	})
}

// attacker is the local user who races root on the socket's path.
var attacker = &testutil.User{UID: 1234, GID: 1234}

// Bounds of a race: enough cycles to hit the window many times over on
// an idle or a loaded machine, and a time limit so a slow machine ends
// the loop early rather than the test's deadline. Neither is asserted.
const (
	raceCycles = 2000
	raceTime   = 60 * time.Second
)

// dirState lists the entries of dir with, for regular files, their
// content: what an attacker must not be able to change through root.
func dirState(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, e := range ents {
		desc := e.Name() + " " + e.Type().String()
		if e.Type().IsRegular() {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			desc += " " + strconv.Quote(string(b))
		}
		s = append(s, desc)
	}
	sort.Strings(s)
	return s
}

// mkdirOwned makes dir with mode perm, owned by u.
func mkdirOwned(t *testing.T, dir string, perm os.FileMode, u *testutil.User) {
	t.Helper()
	if err := os.Mkdir(dir, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, perm); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Chown(dir, int(u.UID), int(u.GID)); err != nil {
		t.Fatal(err)
	}
}

// race runs cycle until raceCycles or raceTime is reached, or until target
// no longer looks as it did at the start, and fails the test in that case.
// cycle returns Listen's error; the test fails if Listen never succeeded
// (then the race tested nothing).
func race(t *testing.T, target string, cycle func() error) {
	t.Helper()
	want := dirState(t, target)
	ok, n := 0, 0
	var errs []string // a few of Listen's errors, for the log
	deadline := time.Now().Add(raceTime)
	for n < raceCycles && time.Now().Before(deadline) {
		n++
		if err := cycle(); err == nil {
			ok++
		} else if len(errs) < 5 {
			errs = append(errs, err.Error())
		}
		if got := dirState(t, target); !cmp.Equal(want, got) {
			t.Fatalf("after %d cycles, root changed the attacker's target %s (-want +got):\n%s", n, target, cmp.Diff(want, got))
		}
	}
	t.Logf("%d cycles, %d listened; errors such as:\n%s", n, ok, strings.Join(errs, "\n"))
	if ok == 0 {
		t.Fatalf("Listen never succeeded in %d cycles", n)
	}
}

// TestListenPathSwappedBySymlink races Listen and Close (attack 6 of the
// root-package security review): the socket's directory belongs to a user
// who exchanges it, in a loop, with a symlink to a directory of root's that
// holds a root-owned file of the socket's name. Root must never remove that
// file, nor leave a socket or a private directory in the target.
func TestListenPathSwappedBySymlink(t *testing.T) {
	testutil.RequireRoot(t)
	tests := []struct {
		name  string
		lc    peercred.ListenConfig
		stale bool // a stale socket is left at the path before every Listen
		dir   bool // the target holds an empty directory of the socket's name, not a file
	}{
		{name: "mode unset"},
		{name: "mode unset, the target holding a directory", dir: true},
		{name: "mode 0666 through a private directory", lc: peercred.ListenConfig{Mode: 0666}},
		{name: "stale socket replaced", stale: true},
		{name: "stale socket replaced with mode 0600", lc: peercred.ListenConfig{Mode: 0600}, stale: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := testutil.SocketDir(t)
			target := filepath.Join(base, "target")
			err := os.Mkdir(target, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if tt.dir {
				err = os.Mkdir(filepath.Join(target, "sock"), 0o755)
			} else {
				err = os.WriteFile(filepath.Join(target, "sock"), []byte("root's file"), 0o600)
			}
			if err != nil {
				t.Fatal(err)
			}
			home := filepath.Join(base, "home")
			mkdirOwned(t, home, 0o755, attacker)
			app := filepath.Join(home, "app")
			mkdirOwned(t, app, 0o755, attacker)
			link := filepath.Join(home, "link")
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(link, int(attacker.UID), int(attacker.GID)); err != nil {
				t.Fatal(err)
			}
			// The directory itself, wherever the attacker moves it, for
			// leaving stale sockets in it.
			appDir, err := os.Open(app)
			if err != nil {
				t.Fatal(err)
			}
			defer appDir.Close()
			staleAddr := fmt.Sprintf("/proc/self/fd/%d/sock", appDir.Fd())

			p := testutil.Start(t, "swapdir", testutil.Options{Args: []string{app, link}, As: attacker})
			if line := p.Line(t); line != "ready" {
				t.Fatalf("attacker: %s", line)
			}
			path := filepath.Join(app, "sock")
			ctx := context.Background()
			race(t, target, func() error {
				if tt.stale {
					if ul, err := net.ListenUnix("unix", &net.UnixAddr{Name: staleAddr, Net: "unix"}); err == nil {
						ul.SetUnlinkOnClose(false)
						ul.Close()
					}
				}
				l, err := tt.lc.Listen(ctx, path)
				if err != nil {
					return err
				}
				return l.Close()
			})
		})
	}
}

// TestListenPrivateDirSwapped races Listen with a Mode (attack 2 of the
// root-package security review): in a directory everyone can write and
// without the sticky bit, a user exchanges each new private directory for
// a symlink to a directory of root's. Root must never create its socket
// there, nor leave anything in it.
func TestListenPrivateDirSwapped(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.SocketDir(t)
	target := filepath.Join(base, "target")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "keep"), []byte("root's file"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(base, "open")
	mkdirOwned(t, open, 0o777, &testutil.User{})

	p := testutil.Start(t, "swappc", testutil.Options{Args: []string{open, target}, As: attacker})
	if line := p.Line(t); line != "ready" {
		t.Fatalf("attacker: %s", line)
	}
	path := filepath.Join(open, "sock")
	ctx := context.Background()
	lc := peercred.ListenConfig{Mode: 0o600}
	race(t, target, func() error {
		l, err := lc.Listen(ctx, path)
		if err != nil {
			return err
		}
		if fi, err := os.Lstat(path); err != nil {
			t.Errorf("socket file while listening: %v", err)
		} else if fi.Mode() != os.ModeSocket|0o600 {
			t.Errorf("socket file while listening: %v, want %v", fi.Mode(), os.ModeSocket|0o600)
		}
		return l.Close()
	})
	// Each "l*" entry is a symlink the attacker exchanged for one of the
	// private directories (or made for one that was gone already).
	ents, _ := filepath.Glob(filepath.Join(open, "l*"))
	t.Logf("the attacker tried %d exchanges", len(ents))
}

// TestListenPathResolution pins how Listen reaches the socket's directory:
// one component at a time, following only symlinks of root or of the
// listening user, so that the owner of a directory on the path cannot lead
// root elsewhere while system links such as /var/run -> /run keep working.
func TestListenPathResolution(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.SocketDir(t)
	real := filepath.Join(base, "real")
	mkdirOwned(t, real, 0o755, &testutil.User{})
	mkdirOwned(t, filepath.Join(real, "sub"), 0o755, &testutil.User{})
	symlink := func(name string, u *testutil.User) string {
		t.Helper()
		link := filepath.Join(base, name)
		if err := os.Symlink(real, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, int(u.UID), int(u.GID)); err != nil {
			t.Fatal(err)
		}
		return link
	}
	rootLink := symlink("rootlink", &testutil.User{})
	userLink := symlink("userlink", attacker)
	// A relative symlink of root's, to a symlink of root's.
	if err := os.Symlink("rootlink/sub", filepath.Join(base, "chain")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		path    string
		lc      peercred.ListenConfig
		wantErr error // nil: Listen succeeds and the socket is at want
		want    string
	}{
		{name: "through a symlink of root", path: rootLink + "/s1", want: real + "/s1"},
		{name: "through a chain of root's symlinks with a mode", path: base + "/chain/s2", lc: peercred.ListenConfig{Mode: 0o600}, want: real + "/sub/s2"},
		{name: "with dot-dot", path: real + "/sub/../s3", want: real + "/s3"},
		{name: "through a symlink of another user", path: userLink + "/s4", wantErr: fs.ErrPermission},
		{name: "through a symlink of another user, deeper", path: userLink + "/sub/s5", lc: peercred.ListenConfig{Mode: 0o666}, wantErr: fs.ErrPermission},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := tt.lc.Listen(context.Background(), tt.path)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					if err == nil {
						l.Close()
					}
					t.Fatalf("Listen(%q): %v, want %v", tt.path, err, tt.wantErr)
				}
				if got := dirState(t, real); !cmp.Equal([]string{"sub d---------"}, got) {
					t.Errorf("the symlink's target changed: %v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Listen(%q): %v", tt.path, err)
			}
			if fi, err := os.Lstat(tt.want); err != nil || fi.Mode().Type() != fs.ModeSocket {
				t.Errorf("socket file at %s: %v, %v", tt.want, fi, err)
			}
			c, err := peercred.Dial(context.Background(), tt.path)
			if err != nil {
				t.Errorf("Dial(%q): %v", tt.path, err)
			} else {
				c.Close()
			}
			if err := l.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if _, err := os.Lstat(tt.want); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("socket file at %s after Close: %v", tt.want, err)
			}
		})
	}

	t.Run("a path ending in a slash is refused", func(t *testing.T) {
		if l, err := peercred.Listen(context.Background(), real+"/sub/"); err == nil {
			l.Close()
			t.Fatal("Listen on a directory's path succeeded")
		}
	})

	t.Run("relative to the working directory", func(t *testing.T) {
		t.Chdir(real)
		l, err := peercred.Listen(context.Background(), "rel")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(real, "rel")); err != nil {
			t.Error(err)
		}
		l.Close()
		if _, err := os.Lstat(filepath.Join(real, "rel")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket file after Close: %v", err)
		}
	})

	t.Run("a user follows their own symlink", func(t *testing.T) {
		// The attacker's own listener, in a directory of theirs reached
		// through their symlink.
		own := filepath.Join(base, "own")
		mkdirOwned(t, own, 0o755, attacker)
		link := filepath.Join(base, "ownlink")
		if err := os.Symlink(own, link); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(link, int(attacker.UID), int(attacker.GID)); err != nil {
			t.Fatal(err)
		}
		p := testutil.Start(t, "serve", testutil.Options{Args: []string{link + "/s"}, As: attacker})
		if line := p.Line(t); line != "ready" {
			t.Fatalf("listener of uid %d: %s", attacker.UID, line)
		}
	})
}

// TestListenCloseNoLeak checks that the directory descriptor a Listener
// holds is closed by Close and on every failure of Listen.
func TestListenCloseNoLeak(t *testing.T) {
	dir := testutil.SocketDir(t)
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before := openFDs(t)
	for i := 0; i < 200; i++ {
		for _, lc := range []peercred.ListenConfig{{}, {Mode: 0o600}} {
			l, err := lc.Listen(ctx, filepath.Join(dir, "s"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lc.Listen(ctx, filepath.Join(dir, "s")); !errors.Is(err, syscall.EADDRINUSE) {
				t.Fatalf("second Listen: %v, want EADDRINUSE", err)
			}
			if _, err := lc.Listen(ctx, filepath.Join(dir, "file")); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("Listen over a file: %v, want fs.ErrExist", err)
			}
			if _, err := lc.Listen(ctx, filepath.Join(dir, "missing", "s")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Listen in a missing directory: %v, want fs.ErrNotExist", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors: %d before, %d after", before, after)
	}
	if got := dirState(t, dir); !cmp.Equal([]string{`file ---------- ""`}, got) {
		t.Errorf("directory after the cycles: %v", got)
	}
}

func init() {
	// swapstale DIR: exchange DIR/s.sock (a stale socket) and DIR/l (a
	// symlink) with renameat2(RENAME_EXCHANGE) in a loop, making a new
	// stale socket at s.sock whenever root's Listen and Close took it,
	// until killed.
	testutil.Register("swapstale", func(args []string) int {
		sock, link := filepath.Join(args[0], "s.sock"), filepath.Join(args[0], "l")
		for i := 0; ; i++ {
			err := unix.Renameat2(unix.AT_FDCWD, sock, unix.AT_FDCWD, link, unix.RENAME_EXCHANGE)
			if errors.Is(err, unix.ENOENT) {
				err = staleSocket(sock)
			}
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			if i == 0 {
				fmt.Println("ready")
			}
		}
	})
}

// staleSocket leaves a socket file at path that nobody listens on.
func staleSocket(path string) error {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	l.SetUnlinkOnClose(false)
	return l.Close()
}

// TestListenStaleProbeFollowsNoSymlink: Listen probes a stale socket by
// connecting to it, and connect(2) follows a symlink in the last component.
// The owner of the socket's directory exchanges the stale socket for a
// symlink to a socket in a directory only root can reach, in a loop: root
// must never connect to that socket.
func TestListenStaleProbeFollowsNoSymlink(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.SocketDir(t)
	victimDir := filepath.Join(base, "rootonly")
	mkdirOwned(t, victimDir, 0700, &testutil.User{})
	victim, err := net.Listen("unix", filepath.Join(victimDir, "v.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Close() })
	reached := make(chan struct{}, 1)
	go func() {
		for {
			c, err := victim.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case reached <- struct{}{}:
			default:
			}
		}
	}()

	att := filepath.Join(base, "att")
	mkdirOwned(t, att, 0755, attacker)
	if err := staleSocket(filepath.Join(att, "s.sock")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(victimDir, "v.sock"), filepath.Join(att, "l")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s.sock", "l"} {
		if err := os.Lchown(filepath.Join(att, name), int(attacker.UID), int(attacker.GID)); err != nil {
			t.Fatal(err)
		}
	}
	p := testutil.Start(t, "swapstale", testutil.Options{As: attacker, Args: []string{att}})
	if got := p.Line(t); got != "ready" {
		t.Fatalf("attacker: %q", got)
	}

	ok, n := 0, 0
	deadline := time.Now().Add(raceTime)
	for n < raceCycles && time.Now().Before(deadline) {
		n++
		l, err := peercred.Listen(context.Background(), filepath.Join(att, "s.sock"))
		if err == nil {
			ok++
			l.Close()
		}
		select {
		case <-reached:
			t.Fatalf("after %d cycles, root's stale-socket probe connected to %s, a socket the attacker cannot reach", n, victim.Addr())
		default:
		}
	}
	t.Logf("%d cycles, %d listened", n, ok)
	if ok == 0 {
		t.Fatalf("Listen never succeeded in %d cycles", n)
	}
}

// TestListenStaleProbeRefusesHardLink: where fs.protected_hardlinks is off,
// anyone may hard-link a socket it cannot reach into a directory of its
// own; a Listen there must not connect to it to see whether it is stale.
// (The link is made by the test, as root, since this machine protects
// hard links.)
func TestListenStaleProbeRefusesHardLink(t *testing.T) {
	testutil.RequireRoot(t)
	base := testutil.SocketDir(t)
	victimDir := filepath.Join(base, "rootonly")
	mkdirOwned(t, victimDir, 0700, &testutil.User{})
	victim, err := net.Listen("unix", filepath.Join(victimDir, "v.sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Close() })
	reached := make(chan struct{}, 1)
	go func() {
		if c, err := victim.Accept(); err == nil {
			c.Close()
			reached <- struct{}{}
		}
	}()
	att := filepath.Join(base, "att")
	mkdirOwned(t, att, 0755, attacker)
	if err := os.Link(filepath.Join(victimDir, "v.sock"), filepath.Join(att, "s.sock")); err != nil {
		t.Fatal(err)
	}
	l, err := peercred.Listen(context.Background(), filepath.Join(att, "s.sock"))
	if err == nil {
		l.Close()
		t.Fatal("Listen over a hard link to another socket succeeded")
	}
	t.Logf("Listen: %v", err)
	select {
	case <-reached:
		t.Fatal("Listen's stale-socket probe connected to the socket the link leads to")
	case <-time.After(100 * time.Millisecond):
	}
}
