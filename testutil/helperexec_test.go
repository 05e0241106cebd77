//go:build linux

package testutil_test

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/testutil"
)

// A wrapper that clears the environment (env -i) still starts the helper
// role, as another user (when the tests run as root), when given
// HelperExec's entries.
func TestHelperExecThroughWrapper(t *testing.T) {
	exe, env := testutil.HelperExec(t, "echo")
	if !strings.HasPrefix(exe, "/") {
		t.Errorf("HelperExec path %q is not absolute", exe)
	}
	args := append(append([]string{"-i"}, env...), exe, "one", "two")
	p := testutil.Command(t, testutil.Options{As: otherUser()}, "env", args...)
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("one\ntwo\n", p.Stdout()); diff != "" {
		t.Errorf("helper output (-want +got):\n%s", diff)
	}
}

func TestHelperExecUnknownRole(t *testing.T) {
	var r fatalRecorder
	testutil.HelperExec(&r, "no-such-role")
	if len(r.fatal) != 1 || !strings.Contains(r.fatal[0], "no such role") {
		t.Errorf("HelperExec of an unknown role: fatal messages %q, want one saying \"no such role\"", r.fatal)
	}
}

// otherUser is another user (1234) when the tests run as root, else nil: the
// test's own.
func otherUser() *testutil.User {
	if os.Geteuid() == 0 {
		return &testutil.User{UID: 1234, GID: 1234}
	}
	return nil
}
