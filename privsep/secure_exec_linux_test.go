package privsep_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/testutil"
)

// What the exec that makes a worker not dumpable from execve on must not
// cost it (spawnids_linux.go): found by the red team.

func init() {
	privsep.Register("print-env", func(ctx context.Context, w *privsep.Worker) error {
		wd, _ := os.Getwd()
		for _, k := range w.Args() {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
		fmt.Printf("wd=%s\n", wd)
		return nil
	})
}

// TestSecureExecKeepsWhatTheSpecGives: a Spec.Dir that only the worker's
// GID may enter is its working directory, and the variables of Spec.Env
// that the C library drops from a setgid program's environment (TMPDIR,
// TZDIR) reach the worker all the same.
func TestSecureExecKeepsWhatTheSpecGives(t *testing.T) {
	requireRoot(t, "the setgid exec of a worker under other IDs")
	dir := filepath.Join(testutil.SocketDir(t), "gid-only")
	if err := os.Mkdir(dir, 0o710); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, 2345); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		t.Fatal(err)
	}
	s, _ := newSupervisor(t, privsep.Config{})
	p, out := spawn(t, s, privsep.Spec{Role: "print-env", UID: 1234, GID: 2345, Dir: dir,
		Env:  []string{"TMPDIR=/private/tmp", "TZDIR=/private/zoneinfo", "PLAIN=1"},
		Args: []string{"TMPDIR", "TZDIR", "PLAIN", "PEERCRED_PRIVSEP_KEEP_TMPDIR"}})
	waitDone(t, p)
	want := "TMPDIR=/private/tmp\nTZDIR=/private/zoneinfo\nPLAIN=1\nPEERCRED_PRIVSEP_KEEP_TMPDIR=\nwd=" + dir
	if got := strings.TrimSpace(out.String()); got != want {
		t.Errorf("worker printed:\n%s\nwant:\n%s", got, want)
	}
}
