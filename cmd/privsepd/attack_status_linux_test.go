package main

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/testutil"
)

func init() {
	// status-flood ADDR N: ask the control socket ADDR for "status" N
	// times, one connection after another; print "done".
	testutil.Register("status-flood", func(args []string) int {
		n, _ := strconv.Atoi(args[1])
		for range n {
			c, err := net.Dial("unix", args[0])
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			io.WriteString(c, "status\n")
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			b, err := io.ReadAll(c)
			c.Close()
			if err != nil || !strings.HasPrefix(string(b), replyOK+"\n") {
				fmt.Printf("error: %q, %v\n", b, err)
				return 1
			}
		}
		fmt.Println("done")
		return 0
	})
}

// TestControlStatusFlood: an allowed user asks for the status in a loop;
// the daemon logs a few of its commands per interval, and counts the
// others, not a line per command.
func TestControlStatusFlood(t *testing.T) {
	testutil.RequireRoot(t)
	bin := build(t, "privsepd")
	addr := freePrivilegedPort(t)
	d := startDaemon(t, bin, nil, addr, "-allow-uid", "1234")
	const n = 500
	start := time.Now()
	p := testutil.Start(t, "status-flood", testutil.Options{
		As: &testutil.User{UID: 1234, GID: 1234}, Args: []string{d.control, strconv.Itoa(n)}, Timeout: 2 * time.Minute,
	})
	if line := p.Line(t); line != "done" {
		t.Fatalf("flood: %s", line)
	}
	elapsed := time.Since(start)
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	checkRateLimited(t, d.Stderr(), `msg="control command" cmd=status .* uid=1234\b`,
		`msg="control: commands not logged" uid=1234 .*dropped=(\d+)`, n, elapsed)
}
