package peercred_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

func init() {
}

// TestRefusalLogFlood: two users who may not connect open thousands of
// connections each. The listener logs the first refusals of each user in
// full, then counts the rest and reports the count in a summary line; by
// Close every refusal is either logged or counted.
func TestRefusalLogFlood(t *testing.T) {
	testutil.RequireRoot(t)
	var buf testutil.Buffer
	sock := filepath.Join(testutil.SocketDir(t), "flood.sock")
	lc := peercred.ListenConfig{
		Mode:      0o666,
		Authorize: peercred.AllowUIDs(0),
		Logger:    slog.New(slog.NewTextHandler(&buf, nil)),
	}
	l, err := lc.Listen(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan error, 1)
	go func() {
		c, err := l.AcceptPeerCred()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()

	const n = 2000
	start := time.Now()
	var floods []*testutil.Proc
	uids := []uint32{1234, 2345}
	for _, uid := range uids {
		floods = append(floods, testutil.ConnectFlood(t, sock, n, testutil.Options{
			As: &testutil.User{UID: uid, GID: uid}, Timeout: 2 * time.Minute,
		}))
	}
	for _, p := range floods {
		if line := p.Line(t); line != "done" {
			t.Fatalf("flood: %s", line)
		}
	}
	// Conns are accepted in order: once root's is, every refusal before it
	// has been dealt with.
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	l.Close()

	for _, uid := range uids {
		checkRateLimited(t, buf.String(), fmt.Sprintf(`msg="peercred: peer refused" addr=%s pid=\d+ uid=%d `, regexp.QuoteMeta(sock), uid),
			fmt.Sprintf(`uid=%d`, uid), n, elapsed)
	}
}

var droppedRE = regexp.MustCompile(`msg="peercred: refusals not logged".* dropped=(\d+)`)

// checkRateLimited checks in log that of n refusals, those whose lines
// match full were logged in full, within the limit for a flood that lasted
// elapsed, and that the summary lines with summary in them count all the
// others.
func checkRateLimited(t *testing.T, log, full, summary string, n int, elapsed time.Duration) {
	t.Helper()
	fullRE := regexp.MustCompile(full)
	var logged, dropped, summaries int
	for line := range strings.Lines(log) {
		if fullRE.MatchString(line) {
			logged++
		}
		if m := droppedRE.FindStringSubmatch(line); m != nil && strings.Contains(line, " "+summary+" ") {
			d, _ := strconv.Atoi(m[1])
			dropped += d
			summaries++
		}
	}
	// A new interval may begin at most every RefusalLogInterval, with
	// RefusalLogBurst lines in full, and ends with at most one summary.
	intervals := int(elapsed/peercred.RefusalLogInterval) + 2
	if max := intervals * peercred.RefusalLogBurst; logged > max || summaries > intervals {
		t.Errorf("%d of %d refusals (%s) logged in full, %d summaries, in %v; want at most %d lines in full and %d summaries",
			logged, n, summary, summaries, elapsed.Round(time.Millisecond), max, intervals)
	}
	if logged+dropped != n {
		t.Errorf("%d refusals (%s) logged in full and %d counted in summaries: %d in all, want %d",
			logged, summary, dropped, logged+dropped, n)
	}
}
