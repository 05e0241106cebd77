package peercred_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// authorize-foreign-proc PID EXE ANCESTOR ALLOWED ENV...: as
	// attest-foreign-proc, in a PID namespace of its own that kept the
	// /proc of the test's, with the peer EXE at PID PID there; print what
	// DescendantOf(ANCESTOR) and AllowExecutables(ALLOWED) say of it, one
	// line each: "admitted" or "refused ERROR".
	testutil.Register("authorize-foreign-proc", func(args []string) int {
		ancestor, err := strconv.Atoi(args[2])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		err = acceptAtPID(args[0], args[1], args[4:], func(c *peercred.Conn) {
			for _, auth := range []peercred.Authorizer{
				peercred.DescendantOf(ancestor),
				peercred.AllowExecutables(args[3]),
			} {
				if err := auth(c.Cred()); err != nil {
					fmt.Println("refused", err)
				} else {
					fmt.Println("admitted")
				}
			}
		})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return 0
	})
}

// TestProcessAuthorizersForeignProc: the Authorizers that read /proc by
// the peer's PID (DescendantOf, AllowExecutables) must not read it in a
// /proc of another PID namespace, where that PID names another process. A
// server that made a PID namespace of its own and kept the test's /proc
// accepts a peer whose PID there is this test process's PID here; the
// peer is neither a descendant of this test's parent nor the test binary
// (it runs a copy of it), and both must refuse it rather than judge this test
// process.
func TestProcessAuthorizersForeignProc(t *testing.T) {
	testutil.RequireRoot(t)
	exe, env := testutil.HelperExec(t, "connect")
	cp := filepath.Join(t.TempDir(), "peer")
	if err := copyFile(exe, cp); err != nil {
		t.Fatal(err)
	}
	ours, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getpid()
	p := testutil.Start(t, "authorize-foreign-proc", testutil.Options{PIDNS: true,
		Args: append([]string{strconv.Itoa(me), cp, strconv.Itoa(os.Getppid()), ours}, append(os.Environ(), env...)...)})
	for _, name := range []string{"DescendantOf(our parent)", "AllowExecutables(our executable)"} {
		line := p.Line(t)
		t.Logf("%s: %s", name, line)
		if !strings.HasPrefix(line, "refused ") {
			t.Errorf("%s: server said %q, want a refusal (it judged this test process, pid %d in its /proc)", name, line, me)
		}
	}
}
