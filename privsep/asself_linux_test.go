package privsep_test

import (
	"os"
	"strconv"

	"github.com/peercred/peercred/testutil"
)

// wUID and wGID are what the tests spawn workers as where the behaviour under
// test needs no other user: 1234 when the tests run as root, so that the
// worker is unprivileged as it is in production; otherwise the test's own
// IDs, since a parent that is not root can spawn workers only as itself.
// Spawning, verification, calls, the broker, Landlock, seccomp and
// no_new_privs all work without root, and so are tested as a normal user too.
var wUID, wGID = workerIDs()

// workerIDs returns the IDs a worker runs as: see wUID.
func workerIDs() (uid, gid uint32) {
	if os.Geteuid() == 0 {
		return 1234, 1234
	}
	return uint32(os.Geteuid()), uint32(os.Getegid())
}

// wUIDs is wUID in decimal, for expected output and log lines.
var wUIDs = strconv.FormatUint(uint64(wUID), 10)

// asRoot reports whether the tests run as root; rows and checks that need
// another user or a privilege only root has are skipped otherwise.
var asRoot = os.Geteuid() == 0

// asWorker is how testutil starts a client (of a named socket) as the
// worker user: as 1234 when the tests run as root, else as the test itself.
func asWorker() *testutil.User {
	if asRoot {
		return &testutil.User{UID: wUID, GID: wGID}
	}
	return nil
}
