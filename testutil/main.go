//go:build unix

package testutil

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// roleEnv is the environment variable that marks a helper process and names
// its role.
const roleEnv = "PEERCRED_TESTUTIL_ROLE"

// probeRole is the built-in role RequireUserNS starts: it exits 0.
const probeRole = "testutil.probe"

var (
	rolesMu sync.Mutex
	roles   = map[string]func(args []string) int{}

	// builtinRoles are testutil's own, run by helpers of its functions.
	builtinRoles = map[string]func(args []string) int{}

	// mainStarted is set when Main runs the tests; Start refuses to run
	// before, because a re-executed binary without Main would run the tests
	// again instead of the role.
	mainStarted atomic.Bool
)

// Register registers a helper role: a function the test binary runs, with the
// helper's arguments, when it is re-executed as a helper; its result is the
// helper's exit code. Call it from init or from TestMain before Main, so that
// the re-executed binary has the role too. Register panics on an empty or
// duplicate name and when called after Main.
func Register(name string, fn func(args []string) int) {
	if name == "" || name == probeRole || strings.HasPrefix(name, "testutil.") {
		panic(fmt.Sprintf("testutil: Register: invalid role name %q", name))
	}
	if fn == nil {
		panic(fmt.Sprintf("testutil: Register(%q): nil function", name))
	}
	if mainStarted.Load() {
		panic(fmt.Sprintf("testutil: Register(%q) after Main: register roles in init or in TestMain before Main", name))
	}
	rolesMu.Lock()
	defer rolesMu.Unlock()
	if _, ok := roles[name]; ok {
		panic(fmt.Sprintf("testutil: Register: role %q registered twice", name))
	}
	roles[name] = fn
}

func lookupRole(name string) (func(args []string) int, bool) {
	if fn, ok := builtinRoles[name]; ok {
		return fn, true
	}
	rolesMu.Lock()
	defer rolesMu.Unlock()
	fn, ok := roles[name]
	return fn, ok
}

// Main is the body of TestMain:
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
// In a helper process (started by Start) it runs the role with the helper's
// arguments and exits with the role's result; an unknown role prints a message
// on stderr and exits 2. The tests are not run in a helper. Otherwise Main runs
// the tests with m.Run, removes the copy of the test binary that Start made
// and the commands Build made, and exits with m.Run's result.
//
// Before the tests, Main marks every descriptor above 2 close-on-exec (on
// Linux), so that descriptors the test binary inherited from whatever started
// it reach no helper and no other child; pass descriptors to a child with
// Options.ExtraFiles or exec.Cmd.ExtraFiles.
func Main(m *testing.M) {
	if role, ok := os.LookupEnv(roleEnv); ok {
		// Programs the helper starts are not helpers.
		os.Unsetenv(roleEnv)
		os.Exit(runRole(role, os.Args[1:]))
	}
	mainStarted.Store(true)
	closeInheritedOnExec()
	startStarter()
	code := m.Run()
	if err := removeHelperBinary(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	if err := removeBuilds(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func runRole(role string, args []string) int {
	if role == probeRole {
		return 0
	}
	fn, ok := lookupRole(role)
	if !ok {
		rolesMu.Lock()
		names := make([]string, 0, len(roles))
		for name := range roles {
			names = append(names, name)
		}
		rolesMu.Unlock()
		slices.Sort(names)
		fmt.Fprintf(os.Stderr, "testutil: unknown helper role %q (registered: %s)\n", role, strings.Join(names, ", "))
		return 2
	}
	return fn(args)
}
