// Package testutil starts real peers for tests: helper processes under other
// UIDs and GIDs, in new user and PID namespaces, and external programs run the
// same way. It is for peercred's own tests and for users' integration tests
// that run as root; library code never imports it.
//
// A helper is the test binary itself, re-executed with a role name. Register
// the roles, call Main from TestMain, and Start a role from a test:
//
//	func init() {
//		testutil.Register("whoami", func(args []string) int {
//			fmt.Println(os.Getuid())
//			return 0
//		})
//	}
//
//	func TestMain(m *testing.M) { testutil.Main(m) }
//
//	func TestWhoami(t *testing.T) {
//		testutil.RequireRoot(t)
//		p := testutil.Start(t, "whoami", testutil.Options{
//			As: &testutil.User{UID: 65534, GID: 65534},
//		})
//		if got := p.Line(t); got != "65534" {
//			t.Errorf("helper uid = %s, want 65534", got)
//		}
//		if err := p.Wait(); err != nil {
//			t.Fatal(err)
//		}
//	}
//
// Every process is ended by the test's cleanup: its whole process group gets
// SIGKILL and the process is reaped, and its stderr is logged when the test
// failed.
//
// Kernel facts this package handles, and that tests written with it meet:
//
//   - go test builds the test binary in a directory only its owner can
//     search, so another UID cannot execute it (EACCES). The first Start copies
//     the binary into a world-readable directory under [os.TempDir]; Main
//     removes the copy when the tests are done. Directories on a socket's path
//     must also be searchable by the peer's UID: use [SocketDir], not
//     t.TempDir, whose parent is private (and whose path can exceed the 108-byte
//     sun_path limit).
//   - IDs are set by the kernel at exec (setgroups, setgid, setuid in the
//     child before exec), so the helper's real, effective and saved IDs are all
//     the requested ones and no code of the helper runs as root.
//   - In a new user namespace the helper is UID and GID 0 inside, and its
//     kernel UID outside is the mapped one: peers outside see that UID, not 0.
//     As root, the namespace allows setgroups(2) and the helper's groups are
//     cleared; without root the kernel requires setgroups to be denied before
//     gid_map is written, so the helper keeps the test's groups. Inside,
//     the one mapped (the test's GID) reads as 0, the others as the
//     overflow GID 65534.
//   - In a new PID namespace the helper is PID 1 and getppid returns 0 inside;
//     [Proc.PID] is its PID in the test's namespace. Peer credentials from
//     inside report PIDs of that namespace.
//   - The parent-death signal (SIGKILL, so helpers die with the test binary)
//     is tied to the thread that forked, not to the process. Helpers are
//     therefore forked from one OS thread that Main locks for the life of the
//     test binary, never from the caller's thread, which Go may retire. A
//     consequence: per-thread state of the calling goroutine (setns or
//     unshare after LockOSThread) does not reach the helper.
package testutil
