package main

import (
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/internal/ratelog"
	"github.com/peercred/peercred/testutil"
)

// TestEchoAdmittedFlood: an allowed user connects in a loop; echo logs a
// few of its connections ("admitted", and then "closed", for each) per
// interval, and counts the others, not two lines per connection.
func TestEchoAdmittedFlood(t *testing.T) {
	testutil.RequireRoot(t)
	bin := build(t, "peercred")
	sock := filepath.Join(testutil.SocketDir(t), "echo.sock")
	srv := startCmd(t, testutil.Options{Timeout: 2 * time.Minute}, bin, "echo", "-allow-uid", "0,1234", sock)
	waitSocket(t, srv, sock)

	const n = 1000
	start := time.Now()
	flood := testutil.ConnectFlood(t, sock, n, testutil.Options{
		As: &testutil.User{UID: 1234, GID: 1234}, Timeout: 2 * time.Minute,
	})
	if line := flood.Line(t); line != "done" {
		t.Fatalf("flood: %s", line)
	}
	// Conns are accepted in order: once root's is served, every one of
	// the flood has been accepted too.
	p := testutil.Start(t, "roundtrip", testutil.Options{Args: []string{sock, "hello\n"}})
	if err := p.Wait(); err != nil || p.Stdout() != "hello\n" {
		t.Fatalf("root's client: %v, received %q", err, p.Stdout())
	}
	elapsed := time.Since(start)
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("echo after SIGTERM: %v", err)
	}

	admitted := regexp.MustCompile(`msg=admitted pid=\d+ uid=1234 `)
	closed := regexp.MustCompile(`msg=closed pid=\d+ uid=1234 `)
	summary := regexp.MustCompile(`msg="connections not logged" uid=1234 dropped=(\d+) `)
	var nAdmitted, nClosed, dropped, summaries int
	for line := range strings.Lines(srv.Stderr()) {
		switch {
		case admitted.MatchString(line):
			nAdmitted++
		case closed.MatchString(line):
			nClosed++
		}
		if m := summary.FindStringSubmatch(line); m != nil {
			d, _ := strconv.Atoi(m[1])
			dropped += d
			summaries++
		}
	}
	intervals := int(elapsed/ratelog.DefaultInterval) + 2
	if max := intervals * ratelog.DefaultBurst; nAdmitted > max || summaries > intervals {
		t.Errorf("%d of %d connections logged in full, %d summaries, in %v; want at most %d and %d",
			nAdmitted, n, summaries, elapsed.Round(time.Millisecond), max, intervals)
	}
	if nAdmitted+dropped != n {
		t.Errorf("%d connections logged and %d counted: %d in all, want %d", nAdmitted, dropped, nAdmitted+dropped, n)
	}
	if nClosed != nAdmitted {
		t.Errorf("%d connections logged as closed, want the %d logged as admitted", nClosed, nAdmitted)
	}
}
