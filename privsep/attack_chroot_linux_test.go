package privsep_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

// Attack: a chrooted worker walks out of its chroot with a directory
// descriptor from the broker ("..", fchdir).

func init() {
	// walker asks the broker for the directory in its first argument and
	// walks from it: to the file named by its second argument (relative
	// to the directory), to /etc/hostname and to / (by as many ".." as it
	// takes), and out with fchdir.
	privsep.Register("walker", func(ctx context.Context, w *privsep.Worker) error {
		dir, rel := w.Args()[0], w.Args()[1]
		d, err := w.Open(dir)
		if err != nil {
			fmt.Printf("open dir: denied=%v %v\n", errors.Is(err, privsep.ErrDenied), err)
			return nil
		}
		defer d.Close()
		fmt.Println("open dir: ok")
		up := strings.Repeat("../", 64)
		read := func(name string) string {
			fd, err := unix.Openat(int(d.Fd()), name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return errText(err)
			}
			f := os.NewFile(uintptr(fd), name)
			defer f.Close()
			b := make([]byte, 256)
			n, _ := f.Read(b)
			return fmt.Sprintf("%q", strings.TrimSpace(string(b[:n])))
		}
		fmt.Println("marker:", read(rel))
		fmt.Println("hostname:", read(up+"etc/hostname"))
		if fd, err := unix.Openat(int(d.Fd()), up, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			fmt.Println("root:", errText(err))
		} else {
			f := os.NewFile(uintptr(fd), "/")
			names, _ := f.Readdirnames(-1)
			f.Close()
			sort.Strings(names)
			fmt.Println("root:", strings.Join(names, " "))
		}
		if err := unix.Fchdir(int(d.Fd())); err != nil {
			fmt.Println("fchdir:", errText(err))
		} else {
			b, err := os.ReadFile(up + "etc/hostname")
			fmt.Printf("fchdir: %q %v\n", strings.TrimSpace(string(b)), err)
		}
		return nil
	})
}

// chrootWithWorker makes a root directory holding this test binary as
// /bin/worker, and the libraries it needs.
func chrootWithWorker(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	os.Chmod(root, 0o755)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "worker"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	copyLibs(t, exe, root)
	return root
}

// TestAttackChrootWalkOut: a chrooted worker gets no directory descriptor
// from the broker, and so reads nothing outside its chroot with one; a
// worker whose root is the parent's still gets directories, which lead it
// nowhere it could not go by path.
func TestAttackChrootWalkOut(t *testing.T) {
	requireRoot(t, "chroot")
	base := testutil.SocketDir(t) // 0755 up to /
	allowed := filepath.Join(base, "allowed")
	if err := os.Mkdir(allowed, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "marker"), []byte("outside the chroot"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := chrootWithWorker(t)
	s, log := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"walker": {Files: []privsep.PathRule{{Path: allowed, Beneath: true}}},
	}})

	t.Run("a chrooted worker is refused the directory", func(t *testing.T) {
		p, out := spawn(t, s, privsep.Spec{Role: "walker", UID: 1234, GID: 1234, Chroot: root, Path: "/bin/worker",
			Args: []string{allowed, "../marker"}})
		waitDone(t, p)
		got := out.String()
		if !strings.Contains(got, "open dir: denied=true") {
			t.Errorf("chrooted worker walked out:\n%s", got)
		}
		if !strings.Contains(log.String(), "root directory") {
			t.Errorf("log lacks the reason:\n%s", log)
		}
	})
	t.Run("a worker in the parent's root gets it", func(t *testing.T) {
		p, out := spawn(t, s, privsep.Spec{Role: "walker", UID: 1234, GID: 1234, Args: []string{allowed, "../marker"}})
		waitDone(t, p)
		if got := out.String(); !strings.Contains(got, "open dir: ok") || !strings.Contains(got, `marker: "outside the chroot"`) {
			t.Errorf("worker in the parent's root:\n%s", got)
		}
	})
}
