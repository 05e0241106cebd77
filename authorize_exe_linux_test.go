package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// exec-as STEPS TARGET SOCKET ENV...: prepare TARGET as STEPS say, then
	// exec it as the helper role "connect SOCKET" (ENV selects the role).
	// STEPS is "-" or a comma list of:
	//	mntns: unshare the mount namespace (the helper runs in its own
	//	       user namespace, so it may);
	//	tmpfs: mount a tmpfs over TARGET's directory (in that namespace);
	//	copy:  copy our own executable to TARGET.
	// It prints "error: ..." and exits 1 if a step fails.
	testutil.Register("exec-as", func(args []string) int {
		if err := execAs(args[0], args[1], args[2], args[3:]); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return 0 // not reached: exec does not return
	})
	// chroot-connect DIR ADDR: chroot to DIR (the helper runs in its own
	// user namespace, so it may), then connect to the abstract socket ADDR
	// as "connect" does.
	testutil.Register("chroot-connect", func(args []string) int {
		if err := syscall.Chroot(args[0]); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		if err := os.Chdir("/"); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		c, err := net.Dial("unix", args[1])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		fmt.Println("connected")
		io.Copy(io.Discard, c)
		return 0
	})
}

func execAs(steps, target, socket string, env []string) error {
	// The mount namespace is the thread's until exec, which takes it
	// along: stay on this thread.
	runtime.LockOSThread()
	for _, step := range strings.Split(steps, ",") {
		switch step {
		case "-":
		case "mntns":
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("unshare CLONE_NEWNS: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
		case "tmpfs":
			if err := unix.Mount("tmpfs", filepath.Dir(target), "tmpfs", 0, "mode=0755"); err != nil {
				return fmt.Errorf("mount tmpfs on %s: %w", filepath.Dir(target), err)
			}
		case "copy":
			if err := copyFile("/proc/self/exe", target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown step %q", step)
		}
	}
	return unix.Exec(target, []string{target, socket}, append(os.Environ(), env...))
}

// copyFile copies from to a new executable file to.
func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	// A child forked meanwhile would hold the file open for writing until
	// its exec, and exec of the copy fail with ETXTBSY: keep forks out.
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	return os.Chmod(to, 0o755)
}

// publicDir makes a directory that uid 1234 can search and write.
func publicDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "peercred-exe-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAllowExecutablesIsTheFile: AllowExecutables admits a process that runs
// the allowed file itself, not one whose executable merely has its path. A
// user who makes a user and mount namespace can put any program at any path
// (even one that does not exist outside), so the path /proc/PID/exe shows
// proves nothing; the device and inode of the file the process maps do.
func TestAllowExecutablesIsTheFile(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	allowed, roleEnv := testutil.HelperExec(t, "connect") // helpers run this file
	missing := filepath.Join(publicDir(t), "trusted-client")
	elsewhere := filepath.Join(publicDir(t), "copy-of-allowed")
	link := filepath.Join(filepath.Dir(allowed), "link-to-allowed")
	if err := os.Link(allowed, link); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(link) })
	nsUser := &testutil.User{UID: 1234, GID: 2345}

	tests := []struct {
		name    string
		allowed string
		steps   string // for exec-as; "" starts the helper binary directly
		target  string
		userNS  bool
		// whether the default rule, and one that admits other mount
		// namespaces, admit the peer
		admitted, admittedAnyNS bool
	}{
		{name: "the allowed file is admitted", allowed: allowed, admitted: true, admittedAnyNS: true},
		{name: "a hard link to the allowed file is the same file: admitted",
			allowed: allowed, steps: "-", target: link, admitted: true, admittedAnyNS: true},
		{name: "a copy of the allowed file elsewhere is another file: refused",
			allowed: allowed, steps: "copy", target: elsewhere},
		{name: "its own program on a tmpfs at an allowed path that does not exist here: refused",
			allowed: missing, steps: "mntns,tmpfs,copy", target: missing, userNS: true},
		{name: "its own program on a tmpfs over the allowed file: refused",
			allowed: allowed, steps: "mntns,tmpfs,copy", target: allowed, userNS: true},
		{name: "the allowed file in another mount namespace: refused unless asked",
			allowed: allowed, steps: "mntns", target: allowed, userNS: true, admittedAnyNS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t, &peercred.ListenConfig{Mode: 0666})
			opts := testutil.Options{As: other, Args: []string{l.Addr().String()}}
			role := "connect"
			if tt.steps != "" {
				role = "exec-as"
				opts.Args = append([]string{tt.steps, tt.target, l.Addr().String()}, roleEnv...)
			}
			if tt.userNS {
				opts.As, opts.UserNS = nsUser, true
			}
			p := testutil.Start(t, role, opts)
			if line := p.Line(t); line != "connected" {
				t.Fatalf("peer said %q", line)
			}
			c := acceptTimeout(t, l)
			for _, rule := range []struct {
				name string
				auth peercred.Authorizer
				want bool
			}{
				{"AllowExecutables", peercred.AllowExecutables(tt.allowed), tt.admitted},
				{"with AnyMountNamespace", peercred.Executables{Paths: []string{tt.allowed}, AnyMountNamespace: true}.Authorizer(), tt.admittedAnyNS},
			} {
				err := rule.auth(c.Cred())
				t.Logf("%s: %v", rule.name, err)
				if got := err == nil; got != rule.want {
					t.Errorf("%s(%s) for pid %d: %v; want admitted=%v", rule.name, tt.allowed, p.PID(), err, rule.want)
				}
				if err != nil && !errors.Is(err, peercred.ErrUnauthorized) {
					t.Errorf("%s: refusal %v does not wrap ErrUnauthorized", rule.name, err)
				}
			}
		})
	}
}

// TestAllowExecutablesRefusesOtherRoot: the allowed program, started from
// the right file but chrooted (a user namespace allows it) resolves its
// loader, libraries and every path in a tree its user chose: refused like
// a peer in another mount namespace, unless AnyMountNamespace.
func TestAllowExecutablesRefusesOtherRoot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	allowed, _ := testutil.HelperExec(t, "chroot-connect")
	l, err := peercred.Listen(context.Background(), "@peercred-chroot-"+strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	p := testutil.Start(t, "chroot-connect", testutil.Options{
		As:     &testutil.User{UID: 1234, GID: 2345},
		UserNS: true,
		Args:   []string{publicDir(t), l.Addr().String()},
	})
	if line := p.Line(t); line != "connected" {
		t.Fatalf("peer said %q", line)
	}
	c := acceptTimeout(t, l)
	if err := peercred.AllowExecutables(allowed)(c.Cred()); err == nil {
		t.Errorf("AllowExecutables admitted the allowed program chrooted elsewhere")
	} else {
		t.Log(err)
	}
	if err := (peercred.Executables{Paths: []string{allowed}, AnyMountNamespace: true}).Authorizer()(c.Cred()); err != nil {
		t.Errorf("with AnyMountNamespace: %v", err)
	}
}

// TestAllowExecutablesListener: the same, end to end: a Listener refuses
// the user's own program at the allowed path in its mount namespace, and
// accepts the allowed program.
func TestAllowExecutablesListener(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	allowed, roleEnv := testutil.HelperExec(t, "connect")
	var log syncBuffer
	l := listen(t, &peercred.ListenConfig{
		Mode:      0666,
		Authorize: peercred.AllowExecutables(allowed),
		Logger:    slog.New(slog.NewTextHandler(&log, nil)),
	})
	path := l.Addr().String()
	attacker := testutil.Start(t, "exec-as", testutil.Options{
		As:     &testutil.User{UID: 1234, GID: 2345},
		UserNS: true,
		Args:   append([]string{"mntns,tmpfs,copy", allowed, path}, roleEnv...),
	})
	if line := attacker.Line(t); line != "connected" {
		t.Fatalf("attacker said %q", line)
	}
	waitLog(t, l, &log, "another mount namespace")
	admitted := testutil.Start(t, "connect", testutil.Options{As: other, Args: []string{path}})
	if c := acceptTimeout(t, l); c.Cred().PID != admitted.PID() {
		t.Errorf("accepted pid %d, want the allowed program's %d", c.Cred().PID, admitted.PID())
	}
}

// TestAllowExecutablesAfterReplace pins what a package upgrade does: the
// allowed path is looked up at each check, so once a new file replaces the
// allowed one, processes started from the new file are admitted and
// processes still running the old one are refused.
func TestAllowExecutablesAfterReplace(t *testing.T) {
	_, roleEnv := testutil.HelperExec(t, "connect")
	dir := publicDir(t)
	allowed := filepath.Join(dir, "app")
	if err := copyFile("/proc/self/exe", allowed); err != nil {
		t.Fatal(err)
	}
	auth := peercred.AllowExecutables(allowed)
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	start := func() *peercred.Conn {
		t.Helper()
		p := testutil.Start(t, "exec-as", testutil.Options{As: otherOrSelf(),
			Args: append([]string{"-", allowed, l.Addr().String()}, roleEnv...)})
		if line := p.Line(t); line != "connected" {
			t.Fatalf("peer said %q", line)
		}
		return acceptTimeout(t, l)
	}
	old := start()
	if err := auth(old.Cred()); err != nil {
		t.Fatalf("before the upgrade: %v", err)
	}
	// The upgrade: a new file renamed over the old one, as package
	// managers do.
	tmp := filepath.Join(dir, ".app.new")
	if err := copyFile("/proc/self/exe", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, allowed); err != nil {
		t.Fatal(err)
	}
	if err := auth(old.Cred()); err == nil {
		t.Errorf("a process still running the replaced file was admitted")
	}
	if err := auth(start().Cred()); err != nil {
		t.Errorf("a process started from the new file: %v", err)
	}
}
