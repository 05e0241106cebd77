package peercred_test

import (
	"os"

	"github.com/peercred/peercred/testutil"
)

// otherOrSelf is how tests start a peer whose UID does not matter to what
// they test: as another user (other) when the tests run as root, so that
// the peer is not root; otherwise as the test itself.
func otherOrSelf() *testutil.User {
	if os.Geteuid() == 0 {
		return other
	}
	return nil
}
