//go:build unix

package testutil

import (
	"fmt"
	"net"
	"strconv"
	"testing"
)

const connectFloodRole = "testutil.connect-flood"

func init() { builtinRoles[connectFloodRole] = connectFlood }

// ConnectFlood starts a helper, as opts says (opts.Args is ignored), that
// connects to the Unix stream socket addr n times, one after another,
// closing each connection at once, and then prints "done" (or "error: ..."
// and exits 1): a user that floods a server with connections. Read its
// line with [Proc.Line].
func ConnectFlood(t testing.TB, addr string, n int, opts Options) *Proc {
	t.Helper()
	opts.Args = []string{addr, strconv.Itoa(n)}
	return Start(t, connectFloodRole, opts)
}

func connectFlood(args []string) int {
	n, _ := strconv.Atoi(args[1])
	for range n {
		c, err := net.Dial("unix", args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		c.Close()
	}
	fmt.Println("done")
	return 0
}
