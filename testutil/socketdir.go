//go:build unix

package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// SocketDir returns a new, empty directory in which processes of any UID can
// create sockets and connect to them: mode 01777 (sticky, like /tmp), in
// /tmp, whose path leaves most of the 108-byte sun_path limit for socket
// names. It fails the test if a parent directory is not searchable by
// everyone. The test's cleanup removes the directory and its contents.
//
// It is in /tmp rather than under t.TempDir, whose parent only the test's
// user can search and whose path can be too long for a socket address.
func SocketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "peercred-")
	if err != nil {
		t.Fatalf("testutil: socket directory: %v", err)
		return ""
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("testutil: remove socket directory: %v", err)
		}
	})
	if err := os.Chmod(dir, os.ModeSticky|0o777); err != nil {
		t.Fatalf("testutil: socket directory: %v", err)
		return ""
	}
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatalf("testutil: socket directory %s: %v", dir, err)
			return ""
		}
		if fi.Mode().Perm()&0o001 == 0 {
			t.Fatalf("testutil: socket directory %s: parent %s (mode %v) is not searchable by other users", dir, d, fi.Mode())
			return ""
		}
		if d == "/" {
			break
		}
	}
	return dir
}
